/**
 * The shared STUN/TURN server of a host (ryo's coturn module): coturn in one container at a
 * static address, with the listening ports (UDP and TCP), the TLS/DTLS ports and the UDP relay
 * range forwarded from the host's public addresses. Clients authenticate with time-limited
 * credentials derived from a shared secret (the TURN REST API) that Synapse also holds.
 * It needs the ingress proxy's shared certificate volume (mounted read-only: the TURN domain's
 * full chain and key, or the self-signed fallback) and the host's Consul server, from which
 * consul-template reads the ports and the TURN domain (registered with TurnDomain).
 */
import { Construct } from "constructs";
import { Password } from "@cdktf/provider-random/lib/password";
import { ServiceContainer } from "../core/service-container";
import { KvEntries } from "../core/kv-entries";
import type { Host } from "../../lib/host";
import type { StaticAddress } from "../../lib/address-plan";
import { KV_PREFIX, kvPaths } from "../../lib/kv";
import { Problems, isResourceName } from "../../lib/problems";
import { MAX_RELAY_PORTS, TURN_DEFAULT_PORTS, TurnPorts, checkTurnPorts } from "../../lib/rules";
import { COTURN_RENDERED_PATH, COTURN_SECRET_PATH, coturnCommands, coturnFiles, renderStaticAuthSecret, renderTurnserverTemplate } from "../../lib/render/turnserver";
import { SHARED_CERT_DIR } from "../../lib/render/certbot";
import { CONSUL_TEMPLATE_PACKAGES, CONSUL_TEMPLATE_START, consulTemplateDownload } from "../../lib/render/consul-template";

/** ryo's address for the coturn module. */
export const COTURN_DEFAULT_HOST_PART = 15;
export const COTURN_DEFAULT_NAME = "coturn";
export { MAX_RELAY_PORTS };

/** What Synapse needs to hand out TURN credentials. `sharedSecret` is a Terraform token. */
export interface TurnServerRef {
  readonly host: Host;
  readonly sharedSecret: string;
  readonly listeningPort: number;
  readonly tlsListeningPort: number;
}

/** The part of the ingress proxy coturn needs: the LXD volume holding the shared certificates. */
export interface SharedCertificatesRef {
  readonly sharedCertsVolume: string;
}

export interface CoturnProps {
  readonly host: Host;
  /** Container and Consul service name. @default "coturn" */
  readonly name?: string;
  /** Last octet of the static address (and last IPv6 hextet). @default 15 */
  readonly hostPart?: number;
  /**
   * A pre-built image with coturn and consul-template installed.
   * @default the stock Debian 12 image; cloud-init installs coturn and consul-template
   */
  readonly image?: string;
  /** The ingress proxy (or anything holding its shared certificate volume). */
  readonly certificates: SharedCertificatesRef;
  /** STUN/TURN port, UDP and TCP. @default 3478 */
  readonly listeningPort?: number;
  /** TURN over TLS (TCP) and DTLS (UDP). @default 5349 */
  readonly tlsListeningPort?: number;
  /** First port of the UDP relay range. @default 50000 */
  readonly minPort?: number;
  /** Last port of the UDP relay range. @default 51000 */
  readonly maxPort?: number;
  /** Relays one user may hold at a time. @default 12 */
  readonly userQuota?: number;
  /** Relays the server holds at a time. @default 1200 */
  readonly totalQuota?: number;
  /** LXD resource limits such as `{ memory: "512MiB" }`. @default none */
  readonly limits?: Record<string, string>;
}

/** The `turn:`/`turns:` URIs of a TURN server reached at `domain`, as Synapse's `turn_uris`. */
export function turnUris(server: Pick<TurnServerRef, "listeningPort" | "tlsListeningPort">, domain: string): string[] {
  return [
    `turns:${domain}:${server.tlsListeningPort}?transport=udp`,
    `turns:${domain}:${server.tlsListeningPort}?transport=tcp`,
    `turn:${domain}:${server.listeningPort}?transport=udp`,
    `turn:${domain}:${server.listeningPort}?transport=tcp`,
  ];
}

export class Coturn extends Construct implements TurnServerRef {
  readonly host: Host;
  readonly name: string;
  readonly address: StaticAddress;
  /** The TURN REST API secret (a Terraform token; the value exists only in Terraform state). */
  readonly sharedSecret: string;
  readonly listeningPort: number;
  readonly tlsListeningPort: number;
  readonly minPort: number;
  readonly maxPort: number;
  readonly container: ServiceContainer;

  constructor(scope: Construct, id: string, props: CoturnProps) {
    super(scope, id);
    const { host } = props;
    const name = props.name ?? COTURN_DEFAULT_NAME;
    const ports: TurnPorts = {
      listeningPort: props.listeningPort ?? TURN_DEFAULT_PORTS.listeningPort,
      tlsListeningPort: props.tlsListeningPort ?? TURN_DEFAULT_PORTS.tlsListeningPort,
      minPort: props.minPort ?? TURN_DEFAULT_PORTS.minPort,
      maxPort: props.maxPort ?? TURN_DEFAULT_PORTS.maxPort,
    };
    validate(props, name, ports, this.node.path);

    this.host = host;
    this.name = name;
    this.listeningPort = ports.listeningPort;
    this.tlsListeningPort = ports.tlsListeningPort;
    this.minPort = ports.minPort;
    this.maxPort = ports.maxPort;
    this.address = host.addresses.reserve(name, props.hostPart ?? COTURN_DEFAULT_HOST_PART, "hostPart");

    const secret = new Password(this, "shared-secret", { length: 32, special: false });
    this.sharedSecret = secret.result;

    const template = renderTurnserverTemplate({
      ipv4: this.address.ipv4,
      ipv6: this.address.ipv6,
      externalIpv4: host.externalIpv4,
      externalIpv6: host.publicIpv6,
      defaults: ports,
      // Relaying into the host network is refused even where its range is public.
      deniedNetworks: host.networkCidrs,
      // The host's own public addresses (externalIpv4 and the IPv6 external address are denied anyway).
      hostAddresses: [host.publicIpv4, ...(host.publicIpv6 ? [host.publicIpv6] : [])],
      userQuota: props.userQuota,
      totalQuota: props.totalQuota,
    });
    // No secret in the template: coturn-prepare appends the pushed secret line before each start.
    const consulTemplate = {
      templates: [{ name: "turnserver.conf.ctmpl", template, destination: COTURN_RENDERED_PATH, perms: "0640", command: "systemctl restart coturn.service" }],
      reads: { keyPrefixes: [KV_PREFIX.coturn] },
    };

    const { listeningPort, tlsListeningPort, minPort, maxPort } = ports;
    this.container = new ServiceContainer(this, "container", {
      host,
      name,
      hostPart: this.address.hostPart,
      hostPartProp: "hostPart",
      image: props.image,
      packages: ["coturn", ...CONSUL_TEMPLATE_PACKAGES],
      stockImageCommands: consulTemplateDownload(),
      files: coturnFiles(),
      consulTemplate,
      secrets: [{ name: "static-auth-secret", path: COTURN_SECRET_PATH, content: renderStaticAuthSecret(this.sharedSecret) }],
      commands: [...coturnCommands(), CONSUL_TEMPLATE_START],
      firewall: [
        { protocol: "udp", ports: [listeningPort, tlsListeningPort], comment: "STUN/TURN and TURN over DTLS" },
        { protocol: "tcp", ports: [listeningPort, tlsListeningPort], comment: "TURN over TCP and TLS" },
        { protocol: "udp", ports: [[minPort, maxPort]], comment: "TURN relay range" },
      ],
      attachVolumes: [{ name: "shared-certs", volume: props.certificates.sharedCertsVolume, path: SHARED_CERT_DIR, readonly: true }],
      publicPorts: [
        { protocol: "udp", port: listeningPort },
        { protocol: "tcp", port: listeningPort },
        { protocol: "udp", port: tlsListeningPort },
        { protocol: "tcp", port: tlsListeningPort },
        { protocol: "udp", port: [minPort, maxPort] },
      ],
      service: { name, port: listeningPort, tags: ["stun", "turn"] },
      limits: props.limits,
    });

    // Written with the module, as ryo's ports module does; the template reads them.
    new KvEntries(this, "ports-kv", {
      [kvPaths.coturnPort("ip-addr-host-part")]: String(this.address.hostPart),
      [kvPaths.coturnPort("listening-port")]: String(listeningPort),
      [kvPaths.coturnPort("tls-listening-port")]: String(tlsListeningPort),
      [kvPaths.coturnPort("min-port")]: String(minPort),
      [kvPaths.coturnPort("max-port")]: String(maxPort),
    });
  }

  /** The `turn:`/`turns:` URIs for clients that reach this server at `domain`. */
  uris(domain: string): string[] {
    return turnUris(this, domain);
  }
}

function validate(props: CoturnProps, name: string, ports: TurnPorts, path: string): void {
  const problems = new Problems();
  problems.check(isResourceName(name, 63), "name", `must be lower-case letters, digits and dashes, starting with a letter, at most 63 characters, got ${JSON.stringify(name)}`);
  checkTurnPorts(ports, problems);
  problems.check(props.certificates?.sharedCertsVolume !== undefined && props.certificates.sharedCertsVolume !== "", "certificates", "must name the ingress proxy's shared certificate volume (sharedCertsVolume)");
  for (const prop of ["userQuota", "totalQuota"] as const) {
    const value = props[prop];
    if (value !== undefined) problems.check(Number.isInteger(value) && value >= 0, prop, `must be a whole number (0 = unlimited), got ${value}`);
  }
  problems.throwIfAny(`${path}: invalid Coturn props`);
}
