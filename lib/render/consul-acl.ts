/**
 * Consul ACL policies for the module containers. With ACLs on (default deny), each container
 * that runs consul-template gets its own token whose policy reads only the KV prefixes its
 * templates render (and, where its templates need it, the catalog). Nothing in a container can
 * write to Consul: the KV contract and the catalog are written by Terraform with its own token.
 * The policy text is HCL in the syntax of Consul 1.8 and later (`key_prefix`, `service_prefix`).
 */

export interface ConsulReadAccess {
  /** KV prefixes the container reads, without a trailing slash, e.g. `service/haproxy`. */
  readonly keyPrefixes: readonly string[];
  /** Read the service and node catalog (consul-template's `service`/`nodes`). @default false */
  readonly catalog?: boolean;
}

/** Where a container's Consul token lands: a pushed secret file, root-only. */
export const CONSUL_TOKEN_PATH = "/etc/consul-template/consul-token";

const hclString = (value: string): string => JSON.stringify(value);

/** The policy rules for a read-only token limited to `access`. */
export function renderConsulReadPolicy(access: ConsulReadAccess): string {
  const keys = [...new Set(access.keyPrefixes)].sort().map((prefix) => {
    // The trailing slash keeps `service/haproxy` from also opening `service/haproxy-other`.
    const withSlash = prefix.endsWith("/") ? prefix : `${prefix}/`;
    return `key_prefix ${hclString(withSlash)} {\n  policy = "read"\n}`;
  });
  const catalog = access.catalog
    ? ['service_prefix "" {\n  policy = "read"\n}', 'node_prefix "" {\n  policy = "read"\n}']
    : [];
  return [...keys, ...catalog, ""].join("\n");
}

/**
 * What the host's agent answers DNS queries with: its `default` token. HAProxy resolves its
 * backends through Consul DNS, so this token reads the catalog (services and nodes) and
 * nothing else; the anonymous token stays without any right.
 */
export const CONSUL_DNS_POLICY = renderConsulReadPolicy({ keyPrefixes: [], catalog: true });
