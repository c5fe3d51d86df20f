/**
 * Rules that both the configuration file (lib/config.ts) and the constructs enforce, stated
 * once. Each check takes a `name` function that turns the rule's own field names into the
 * names the caller's user wrote (construct props such as `minPort`, or YAML paths such as
 * `modules.coturn.min_port`), so a message always names the field as it was given.
 */
import { Problems, isPort, PORT_RULE } from "./problems";
import schema from "../schema/matrix-config.schema.json";

/** Largest relay range accepted: each relayed call needs about two ports. */
export const MAX_RELAY_PORTS = 16384;
/** Relay ports are allocated by an unprivileged coturn process. */
export const FIRST_UNPRIVILEGED_PORT = 1024;

export interface TurnPorts {
  readonly listeningPort: number;
  readonly tlsListeningPort: number;
  readonly minPort: number;
  readonly maxPort: number;
}

/** coturn's ports when none are given (ryo's). */
export const TURN_DEFAULT_PORTS: TurnPorts = { listeningPort: 3478, tlsListeningPort: 5349, minPort: 50000, maxPort: 51000 };

/** The coturn listening ports and UDP relay range: valid ports, a usable range, no overlap. */
export function checkTurnPorts(ports: TurnPorts, problems: Problems, name: (field: keyof TurnPorts) => string = (f) => f): void {
  for (const field of ["listeningPort", "tlsListeningPort", "minPort", "maxPort"] as const) {
    problems.check(isPort(ports[field]), name(field), `must be ${PORT_RULE}, got ${ports[field]}`);
  }
  const { listeningPort, tlsListeningPort, minPort, maxPort } = ports;
  problems.check(listeningPort !== tlsListeningPort, name("tlsListeningPort"), `must differ from ${name("listeningPort")} (both are ${listeningPort})`);
  if (!isPort(minPort) || !isPort(maxPort)) return;
  if (minPort >= maxPort) {
    problems.add(name("minPort"), `must be less than ${name("maxPort")} (got ${minPort} >= ${maxPort})`);
    return;
  }
  problems.check(
    minPort >= FIRST_UNPRIVILEGED_PORT,
    name("minPort"),
    `relay ports must be unprivileged: must be at least ${FIRST_UNPRIVILEGED_PORT}, got ${minPort}`,
  );
  problems.check(
    maxPort - minPort + 1 <= MAX_RELAY_PORTS,
    name("maxPort"),
    `the relay range may span at most ${MAX_RELAY_PORTS} ports, got ${minPort}-${maxPort} (${maxPort - minPort + 1} ports)`,
  );
  for (const field of ["listeningPort", "tlsListeningPort"] as const) {
    const port = ports[field];
    problems.check(port < minPort || port > maxPort, name(field), `must lie outside the relay range ${minPort}-${maxPort}, got ${port}`);
  }
}

/** The ingress proxy's public ports (HAProxy: HTTP for ACME challenges and redirects, HTTPS). */
export const INGRESS_PUBLIC_PORTS = { http: 80, https: 443 } as const;

/** One port or range that an LXD proxy device listens on, on the host's public addresses. */
export interface PublicListener {
  /** Who listens, as the caller's user names it (e.g. `modules.coturn.tls_listening_port`). */
  readonly owner: string;
  readonly protocol: "tcp" | "udp";
  readonly first: number;
  /** @default first */
  readonly last?: number;
}

/** Two proxy devices on the same address, protocol and port: LXD refuses the second at deploy time. */
export function checkPublicListeners(listeners: readonly PublicListener[], problems: Problems): void {
  listeners.forEach((a, i) => {
    for (const b of listeners.slice(0, i)) {
      const overlap = a.protocol === b.protocol && a.first <= (b.last ?? b.first) && b.first <= (a.last ?? a.first);
      const span = (l: PublicListener) => (l.last !== undefined && l.last !== l.first ? `${l.first}-${l.last}` : `${l.first}`);
      if (overlap) {
        problems.add(a.owner, `${a.protocol} ${span(a)} on the public address is already taken by ${b.owner} (${b.protocol} ${span(b)}); choose another port`);
      }
    }
  });
}

/**
 * A release tarball URL: https, or a file:// path inside the container (for offline hosts,
 * e.g. a directory a disk device of one of the LXD profiles provides). No spaces or quotes:
 * it ends up in a shell command.
 */
export const RELEASE_URL_PATTERN = new RegExp(schema.definitions.releaseUrl.pattern);
/** A web app's release version: it ends up in paths and URLs. */
export const RELEASE_VERSION_PATTERN = new RegExp(schema.definitions.releaseVersion.pattern);
/** A Synapse release. */
export const SYNAPSE_VERSION_PATTERN = new RegExp(schema.definitions.version.pattern);
export const RELEASE_URL_RULE: string = schema.definitions.releaseUrl.rule;

const localpart = schema.properties.project.properties.admin.properties.username;
const LOCALPART = new RegExp(localpart.pattern);
/** A Matrix user localpart (the admin's user name). */
export function isMatrixLocalpart(value: string): boolean {
  return typeof value === "string" && value.length <= localpart.maxLength && LOCALPART.test(value);
}
export const LOCALPART_RULE = `${localpart.rule}, at most ${localpart.maxLength} characters`;

const lxdAddress = schema.properties.host.properties.lxd.properties.address;
/** Where Terraform reaches the LXD API. */
export const LXD_ADDRESS_PATTERN = new RegExp(lxdAddress.pattern);
export const LXD_ADDRESS_RULE: string = lxdAddress.rule;

/** Text that goes into one line of a config file or a mail header: no control characters (CR, LF, tab, NUL...). */
const SINGLE_LINE = new RegExp(schema.definitions.line.pattern);
export function isSingleLine(value: string): boolean {
  return SINGLE_LINE.test(value);
}
export const SINGLE_LINE_RULE: string = schema.definitions.line.rule;

/** IPv4 ranges a container network cannot use. */
const UNUSABLE_IPV4: readonly [first: number, second: number | undefined, what: string][] = [
  [0, undefined, "the \"this network\" range 0.0.0.0/8"],
  [127, undefined, "the loopback range 127.0.0.0/8"],
  [169, 254, "the link-local range 169.254.0.0/16"],
];

/** Why a /24 given as its first three octets cannot be a container network, or undefined when it can. */
export function unusableIpv4Network(networkPart: string): string | undefined {
  const [first, second] = networkPart.split(".").map(Number);
  if (first >= 224 && first <= 239) return "the multicast range 224.0.0.0/4";
  if (first >= 240) return "the reserved range 240.0.0.0/4";
  return UNUSABLE_IPV4.find(([f, s]) => f === first && (s === undefined || s === second))?.[2];
}

/** Why an IPv4 address cannot be one a proxy device listens on (not a single host's address), or undefined. */
export function notAHostIpv4(address: string): string | undefined {
  const why = unusableIpv4Network(address.split(".").slice(0, 3).join("."));
  return why && !/loopback|link-local/.test(why) ? why : undefined;
}

/** Why an IPv6 /64 prefix (four hextets) cannot be a container network, or undefined when it can. */
export function unusableIpv6Prefix(prefix: string): string | undefined {
  const first = parseInt(prefix.split(":")[0], 16);
  if (first === 0) return "the range ::/16 (unspecified, loopback and IPv4-mapped addresses)";
  if (first >= 0xff00) return "the multicast range ff00::/8";
  if (first >= 0xfe80 && first <= 0xfebf) return "the link-local range fe80::/10";
  return undefined;
}

/** `host:port` or `[v6]:port`; the port part, or undefined when there is none. */
export function portOfAddress(address: string): number | undefined {
  const match = /:(\d+)$/.exec(address);
  return match ? Number(match[1]) : undefined;
}
