/**
 * The Consul KV contract between projects and the shared modules. The paths are the ones the
 * rollyourown modules use, so projects written for them keep working; the renderers read the
 * same prefixes that the registration constructs write.
 */

export const KV_PREFIX = {
  certbot: "service/certbot",
  haproxy: "service/haproxy",
  wellknown: "service/wellknown",
  coturn: "service/coturn",
  postgres: "service/postgres",
} as const;

export const kvPaths = {
  certificateDomain: (fqdn: string) => `${KV_PREFIX.certbot}/${fqdn}`,
  backend: (service: string, ssl: boolean) => `${KV_PREFIX.haproxy}/backends/${ssl ? "ssl" : "no-ssl"}/${service}`,
  /** A path prefix that the backend `service` never receives, whichever route sends a request there. */
  backendDeny: (service: string, name: string) => `${KV_PREFIX.haproxy}/backend-deny/${service}/${name}`,
  aclHost: (acl: string) => `${KV_PREFIX.haproxy}/acl/${acl}/host`,
  aclPath: (acl: string) => `${KV_PREFIX.haproxy}/acl/${acl}/path`,
  deny: (acl: string) => `${KV_PREFIX.haproxy}/deny/${acl}`,
  redirect: (acl: string) => `${KV_PREFIX.haproxy}/redirect/${acl}`,
  useBackend: (acl: string) => `${KV_PREFIX.haproxy}/use-backend/${acl}`,
  tcpListener: (port: number) => `${KV_PREFIX.haproxy}/tcp-listeners/${port}`,
  wellknownJson: (domain: string, rule: string) => `${KV_PREFIX.wellknown}/json/${domain}/${rule}`,
  wellknownRedirect: (domain: string, rule: string) => `${KV_PREFIX.wellknown}/redirects/${domain}/${rule}`,
  coturnDomain: `${KV_PREFIX.coturn}/coturn-domain`,
  coturnDomainAdminEmail: `${KV_PREFIX.coturn}/coturn-domain-admin-email`,
  coturnPort: (setting: "ip-addr-host-part" | "listening-port" | "tls-listening-port" | "min-port" | "max-port") =>
    `${KV_PREFIX.coturn}/${setting}`,
  /** An address (IPv4 or IPv6) that the PostgreSQL server's firewall admits to its port. */
  postgresClient: (name: string) => `${KV_PREFIX.postgres}/clients/${name}`,
  postgresDatabase: (database: string) => `${KV_PREFIX.postgres}/databases/${database}`,
  postgresDatabaseSetting: (
    database: string,
    setting: "owner" | "encoding" | "lc-collate" | "lc-ctype" | "template" | "password-sha256" | "password-verifier",
  ) => `${KV_PREFIX.postgres}/databases/${database}/${setting}`,
} as const;
