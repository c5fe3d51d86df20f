/**
 * coturn's configuration: a consul-template template for turnserver.conf that reads the ports
 * and the TURN domain from Consul KV (`service/coturn/*`) and holds no secret, the shared secret
 * as its own file (pushed root-only by the LXD API, never in the user-data), the systemd drop-in
 * that runs coturn only once both exist and has coturn-prepare assemble them into the file coturn
 * reads, points it at the TURN domain's certificate once the ingress proxy has
 * issued it (the self-signed fallback until then) and lets it read the key, and a timer that
 * restarts coturn when that certificate appears or is renewed on the shared volume.
 */
import { SPECIAL_PURPOSE_NETWORKS } from "../special-networks";
import type { CloudInitFile } from "./cloud-init";
import { kvPaths } from "../kv";
import { FALLBACK_CERT, SHARED_CERTS_GID, sharedCertificateFiles } from "./certbot";

/**
 * The configuration coturn reads, assembled by COTURN_PREPARE_SCRIPT before each start from
 * COTURN_RENDERED_PATH and COTURN_SECRET_PATH (root and the turnserver group, 0640). Not
 * Debian's /etc/turnserver.conf: the package starts coturn with that file's defaults (no
 * authentication, every interface) as soon as it is installed.
 */
export const COTURN_CONFIG_PATH = "/etc/coturn/turnserver.conf";
/** Where consul-template writes the configuration without the secret; coturn runs only once it exists (see COTURN_DROP_IN). */
export const COTURN_RENDERED_PATH = "/etc/coturn/turnserver.rendered.conf";
/** The `static-auth-secret=` line, pushed by the LXD API (root, 0600). */
export const COTURN_SECRET_PATH = "/etc/coturn/static-auth-secret.conf";
export const COTURN_PREPARE_SCRIPT = "/usr/local/sbin/coturn-prepare";
export const COTURN_CERT_STAMP = "/run/coturn-certificate.sha256";
/**
 * The certificate and key coturn loads: links that COTURN_PREPARE_SCRIPT points, before each
 * start, at the TURN domain's pair on the shared volume once both files exist, and at the
 * ingress proxy's self-signed fallback until then.
 */
export const COTURN_TLS_LINKS = { dir: "/run/coturn-tls", fullchain: "/run/coturn-tls/fullchain.pem", key: "/run/coturn-tls/key.pem" };
/** Name of the group that may read the keys on the shared certificate volume. */
export const SHARED_CERTS_GROUP = "shared-certs";

/**
 * Peer ranges coturn refuses to relay to: private, loopback, link-local, shared, reserved,
 * documentation and multicast space, so that a TURN client cannot reach the host network or
 * anything else that is not the public Internet. IPv4 is ryo's list; IPv6 adds what ryo's
 * dynamic template lost (§13.11), including the ranges that embed IPv4 addresses (mapped,
 * NAT64, 6to4, Teredo) and so could reach private IPv4 space. Rendered by coturnPeerRanges.
 */
export const DENIED_PEER_NETWORKS: readonly string[] = SPECIAL_PURPOSE_NETWORKS;

export interface TurnserverPorts {
  readonly listeningPort: number;
  readonly tlsListeningPort: number;
  readonly minPort: number;
  readonly maxPort: number;
}

export interface TurnserverOptions {
  /** The container's static IPv4 address: coturn listens and relays on it. */
  readonly ipv4: string;
  /** The container's static IPv6 address, on dual-stack hosts. @default IPv4 only */
  readonly ipv6?: string;
  /** The public IPv4 address clients reach the host on (`external-ip`). */
  readonly externalIpv4: string;
  /** The host's public IPv6 address; advertised for `ipv6` when both are set. @default none */
  readonly externalIpv6?: string;
  /** Port values used while the KV keys are missing (the module writes them itself). */
  readonly defaults: TurnserverPorts;
  /** Further networks to deny as peers, e.g. the host network when its IPv6 prefix is public. @default none */
  readonly deniedNetworks?: readonly string[];
  /**
   * The host's own public addresses (e.g. `publicIpv4` when `externalIpv4` differs), denied as
   * peers so that a client cannot reach what the host serves there through the relay. The
   * external addresses are always denied too (coturn 4.6 already refuses its own external-ip,
   * which it maps to the relay address; the explicit entry does not depend on that).
   * @default none besides externalIpv4 and externalIpv6
   */
  readonly hostAddresses?: readonly string[];
  /** Relays one user may hold at a time (Synapse's TURN guide suggests 12). @default 12 */
  readonly userQuota?: number;
  /** Relays the server holds at a time. @default 1200 */
  readonly totalQuota?: number;
}

// RE2 patterns for KV values that end up in the file: a lower-case DNS name (it names the
// certificate files, so no `/` or `..`) and a port number.
const FQDN_PATTERN = "^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$";
const PORT_PATTERN = "^[1-9][0-9]{0,4}$";

function parseIpv4(address: string): bigint {
  const octets = address.split(".").map(Number);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) throw new Error(`not an IPv4 address: ${address}`);
  return octets.reduce((n, o) => (n << 8n) | BigInt(o), 0n);
}

function parseIpv6(address: string): bigint {
  const halves = address.split("::");
  if (halves.length > 2) throw new Error(`not an IPv6 address: ${address}`);
  const groups = (part: string) => (part === "" ? [] : part.split(":"));
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  const all = [...head, ...Array<string>(Math.max(fill, 0)).fill("0"), ...tail];
  if (all.length !== 8 || fill < 0 || (halves.length === 2 && fill === 0) || all.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) {
    throw new Error(`not an IPv6 address: ${address}`);
  }
  return all.reduce((n, g) => (n << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function formatIpv4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 255n)).join(".");
}

/** RFC 5952 form: lower case, the longest run of two or more zero groups shortened to `::`. */
function formatIpv6(value: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(112 - 16 * i)) & 0xffffn));
  let best = { start: -1, length: 1 };
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.length) best = { start: i, length: j - i };
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.start < 0) return hex.join(":");
  return `${hex.slice(0, best.start).join(":")}::${hex.slice(best.start + best.length).join(":")}`;
}

/** The addresses of a CIDR as numbers, with the formatter of its family (RFC 5952 for IPv6). */
export function parseCidr(cidr: string): { first: bigint; last: bigint; hostBits: number; format: (value: bigint) => string } {
  const [address, prefixText] = cidr.split("/");
  const v6 = address.includes(":");
  const bits = v6 ? 128 : 32;
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits) throw new Error(`not a CIDR: ${cidr}`);
  const value = v6 ? parseIpv6(address) : parseIpv4(address);
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  const first = value & ~hostMask;
  return { first, last: first | hostMask, hostBits: bits - prefix, format: v6 ? formatIpv6 : formatIpv4 };
}

/** coturn's peer syntax for a CIDR: `first-last`, or the single address of a /32 or /128. */
export function peerRange(cidr: string): string {
  const { first, last, format } = parseCidr(cidr);
  return first === last ? format(first) : `${format(first)}-${format(last)}`;
}

/**
 * `cidr` as coturn `denied-peer-ip` values that deny exactly its addresses. coturn treats a
 * range that starts at the unspecified address (`0.0.0.0`, `::`) as open at the bottom and
 * compares addresses of the other family by family number, so `::` or `::-::ffff:ffff` denies
 * every IPv4 peer. Such a CIDR is therefore given without its first address, as ranges that
 * each start at a non-zero address; the unspecified address itself coturn always refuses as a
 * peer. Each range is byte-aligned (higher bytes zero, one byte from 1, lower bytes free), so it
 * holds the same addresses whether coturn compares addresses as numbers or byte by byte.
 */
export function coturnPeerRanges(cidr: string): string[] {
  const { first, hostBits, format } = parseCidr(cidr);
  if (first !== 0n) return [peerRange(cidr)];
  const ranges: string[] = [];
  for (let low = 0; low < hostBits; low += 8) {
    const from = 1n << BigInt(low);
    const to = (1n << BigInt(Math.min(low + 8, hostBits))) - 1n;
    ranges.push(from === to ? format(from) : `${format(from)}-${format(to)}`);
  }
  return ranges;
}

/** A port read from KV, falling back to the module's own value when missing or not a number. */
function kvPort(setting: "listening-port" | "tls-listening-port" | "min-port" | "max-port", fallback: number): string {
  const key = kvPaths.coturnPort(setting);
  return `${setting}={{ with $v := keyOrDefault \`${key}\` "${fallback}" }}{{ if regexMatch \`${PORT_PATTERN}\` $v }}{{ $v }}{{ else }}${fallback}{{ end }}{{ end }}`;
}

/**
 * The consul-template template for COTURN_CONFIG_PATH. Authentication is the TURN REST API's
 * shared secret (Synapse hands out time-limited credentials); the TLS certificate is the full
 * chain of the TURN domain from the ingress proxy's shared volume once it has been issued, or
 * the proxy's self-signed fallback until then (COTURN_TLS_LINKS).
 */
export function renderTurnserverTemplate(options: TurnserverOptions): string {
  const addresses = [options.ipv4, ...(options.ipv6 ? [options.ipv6] : [])];
  const external = [`${options.externalIpv4}/${options.ipv4}`];
  if (options.ipv6 && options.externalIpv6) external.push(`${options.externalIpv6}/${options.ipv6}`);
  const own = [options.externalIpv4, ...(options.externalIpv6 ? [options.externalIpv6] : []), ...(options.hostAddresses ?? [])];
  // A single address: `/32` or `/128`, which coturnPeerRanges renders as that address alone.
  const hostAddresses = [...new Set(own.map((a) => (a.includes(":") ? `${a}/128` : `${a}/32`)))];
  const denied = [...DENIED_PEER_NETWORKS, ...(options.deniedNetworks ?? []), ...hostAddresses];

  return [
    "# coturn configuration, rendered by consul-template from Consul KV service/coturn/*; do not edit.",
    `{{- $domain := keyOrDefault \`${kvPaths.coturnDomain}\` "" }}`,
    "",
    "# Ports (UDP and TCP; TLS and DTLS) and the UDP relay range.",
    kvPort("listening-port", options.defaults.listeningPort),
    kvPort("tls-listening-port", options.defaults.tlsListeningPort),
    kvPort("min-port", options.defaults.minPort),
    kvPort("max-port", options.defaults.maxPort),
    "",
    "# Listen and relay on the container's static address(es); the host's proxy devices forward",
    "# the public ports here, so clients are told the public address (public/private pairs).",
    ...addresses.map((a) => `listening-ip=${a}`),
    ...addresses.map((a) => `relay-ip=${a}`),
    ...external.map((e) => `external-ip=${e}`),
    "",
    "# TURN REST API credentials: time-limited users derived from the shared secret, whose",
    `# static-auth-secret line coturn-prepare appends from ${COTURN_SECRET_PATH}.`,
    "fingerprint",
    "use-auth-secret",
    `user-quota=${options.userQuota ?? 12}`,
    `total-quota=${options.totalQuota ?? 1200}`,
    "",
    "# TLS: coturn-prepare links these to the full chain (the leaf alone fails validation in many",
    "# clients) and key of the realm's domain from the ingress proxy's certificate volume once",
    "# Let's Encrypt has issued them, and to the proxy's self-signed fallback until then.",
    `{{- if regexMatch \`${FQDN_PATTERN}\` $domain }}`,
    "realm={{ $domain }}",
    "{{- end }}",
    `cert=${COTURN_TLS_LINKS.fullchain}`,
    `pkey=${COTURN_TLS_LINKS.key}`,
    "no-tlsv1",
    "no-tlsv1_1",
    "",
    "# Relay UDP to public peers only: not to special-purpose ranges, the host network or the host itself.",
    "no-tcp-relay",
    "no-multicast-peers",
    ...denied.flatMap(coturnPeerRanges).map((r) => `denied-peer-ip=${r}`),
    // No allowed-peer-ip: coturn itself allows the private part of each external-ip, so clients
    // relayed by this server still reach each other through its relay addresses.
    "",
    "no-cli",
    "no-software-attribute",
    "# Log to the journal, not to files.",
    "syslog",
    "no-stdout-log",
    "",
  ].join("\n");
}

/**
 * The drop-in for Debian's coturn.service (which runs as the `turnserver` user): run coturn
 * only once consul-template has rendered the configuration, assembled with the secret, let it read the certificate key through the
 * shared-certs group, allow listening ports below 1024, and record which certificate it loaded.
 * (Its static addresses may come up after it starts: COTURN_SYSCTL lets it bind them anyway.)
 */
export const COTURN_DROP_IN = `[Unit]
ConditionPathExists=${COTURN_RENDERED_PATH}
Wants=network-online.target
After=network-online.target

[Service]
SupplementaryGroups=${SHARED_CERTS_GROUP}
AmbientCapabilities=CAP_NET_BIND_SERVICE
ExecStartPre=+${COTURN_PREPARE_SCRIPT} start
ExecStart=
ExecStart=/usr/bin/turnserver -c ${COTURN_CONFIG_PATH} --pidfile=
`;

/**
 * COTURN_PREPARE_SCRIPT. `start` (as root before coturn starts): assemble COTURN_CONFIG_PATH from
 * the rendered configuration and the secret line (refusing to start without a well-formed one),
 * readable by root and the turnserver group only; point COTURN_TLS_LINKS at the realm's certificate if
 * both its files exist on the shared volume, else at the fallback; and record a checksum of that
 * choice. `refresh` (from the timer): restart coturn when the pair `start` would choose now
 * differs from that checksum, i.e. the ingress proxy has issued the first certificate or
 * renewed it.
 */
export function renderCoturnPrepareScript(): string {
  const domain = sharedCertificateFiles("$realm");
  return [
    "#!/bin/sh",
    "set -eu",
    `conf=${COTURN_CONFIG_PATH}`,
    `rendered=${COTURN_RENDERED_PATH}`,
    `secret=${COTURN_SECRET_PATH}`,
    `stamp=${COTURN_CERT_STAMP}`,
    `links=${COTURN_TLS_LINKS.dir}`,
    "",
    "# The realm's certificate and key once both exist, else the self-signed fallback.",
    "certificate_pair() {",
    '  realm="$(sed -n "s/^realm=//p" "$rendered")"',
    `  if [ -n "$realm" ] && [ -s "${domain.fullchain}" ] && [ -s "${domain.key}" ]; then`,
    `    echo "${domain.fullchain} ${domain.key}"`,
    "  else",
    `    echo "${FALLBACK_CERT.fullchain} ${FALLBACK_CERT.key}"`,
    "  fi",
    "}",
    "",
    "certificate_sum() {",
    "  set -- $(certificate_pair)",
    '  { echo "$1 $2"; cat "$1" "$2" 2>/dev/null; } | sha256sum',
    "}",
    "",
    'case "$*" in',
    "  start)",
    "    # One line, `static-auth-secret=` and the secret: nothing else may reach the configuration.",
    '    if [ "$(grep -c "" "$secret" 2>/dev/null)" != 1 ] || ! grep -qE "^static-auth-secret=[^[:space:]#]+$" "$secret"; then',
    '      echo "coturn-prepare: $secret is missing or not one static-auth-secret line: Terraform pushes it through the LXD API; was the apply interrupted?" >&2',
    "      exit 1",
    "    fi",
    "    # The directory may have been created by the secret's push with the file's mode (0600, which",
    "    # nobody but root can enter): coturn must reach its configuration, or it starts without one",
    "    # (no authentication, no denied peers).",
    '    chmod 0755 "$(dirname "$conf")"',
    "    # Never readable by others, not even while it is written; the secret is never on a command line.",
    '    (umask 077 && { cat "$rendered"; echo; cat "$secret"; } > "$conf.new")',
    '    chown root:turnserver "$conf.new"',
    '    chmod 0640 "$conf.new"',
    '    mv "$conf.new" "$conf"',
    '    if ! runuser -u turnserver -- test -r "$conf"; then',
    '      echo "coturn-prepare: the turnserver user cannot read $conf: refusing to start coturn without its configuration" >&2',
    "      exit 1",
    "    fi",
    "    set -- $(certificate_pair)",
    '    mkdir -p "$links"',
    '    ln -sfn "$1" "$links/fullchain.pem"',
    '    ln -sfn "$2" "$links/key.pem"',
    '    certificate_sum > "$stamp"',
    "    ;;",
    "  refresh)",
    '    [ -f "$rendered" ] && systemctl -q is-active coturn.service || exit 0',
    '    if [ "$(certificate_sum)" != "$(cat "$stamp" 2>/dev/null)" ]; then',
    '      echo "coturn-prepare: the TLS certificate changed, restarting coturn"',
    "      systemctl restart coturn.service",
    "    fi",
    "    ;;",
    "  *)",
    '    echo "usage: coturn-prepare start|refresh" >&2',
    "    exit 2",
    "    ;;",
    "esac",
    "",
  ].join("\n");
}

// A timer rather than a path unit: the certificate is written by another container onto a
// shared volume, where inotify events are not guaranteed on every storage driver, and a missed
// event would leave coturn serving an expired certificate (or the fallback after the first
// issuance). The check costs two file reads every 10 minutes, and coturn restarts (dropping its
// relays) only when the certificate really changed.
const REFRESH_SERVICE = `[Unit]
Description=Restart coturn when its TLS certificate was issued or renewed

[Service]
Type=oneshot
ExecStart=${COTURN_PREPARE_SCRIPT} refresh
`;

const REFRESH_TIMER = `[Unit]
Description=Check every 10 minutes whether coturn's TLS certificate was issued or renewed

[Timer]
OnCalendar=*:0/10
RandomizedDelaySec=1min
Persistent=true

[Install]
WantedBy=timers.target
`;

const COTURN_SYSCTL = "/etc/sysctl.d/60-coturn-nonlocal-bind.conf";

/** Static files: the coturn drop-in, the prepare script and the certificate refresh timer. */
export function coturnFiles(): CloudInitFile[] {
  return [
    { path: COTURN_SYSCTL, content: "net.ipv4.ip_nonlocal_bind = 1\nnet.ipv6.ip_nonlocal_bind = 1\n" },
    { path: "/etc/systemd/system/coturn.service.d/matrix-lxd.conf", content: COTURN_DROP_IN },
    { path: COTURN_PREPARE_SCRIPT, content: renderCoturnPrepareScript(), permissions: "0755" },
    { path: "/etc/systemd/system/coturn-certificate-refresh.service", content: REFRESH_SERVICE },
    { path: "/etc/systemd/system/coturn-certificate-refresh.timer", content: REFRESH_TIMER },
  ];
}

/** The content of COTURN_SECRET_PATH: coturn's `static-auth-secret` line. */
export function renderStaticAuthSecret(secret: string): string {
  if (/[\r\n]/.test(secret)) throw new Error("the TURN shared secret must be a single line");
  return `static-auth-secret=${secret}\n`;
}

/** First-boot commands: the group that may read the shared keys, then the units. */
export function coturnCommands(): string[] {
  return [
    `sysctl -p ${COTURN_SYSCTL}`,
    `getent group ${SHARED_CERTS_GROUP} >/dev/null || groupadd --system --gid ${SHARED_CERTS_GID} ${SHARED_CERTS_GROUP}`,
    "systemctl daemon-reload",
    "systemctl enable coturn.service",
    "systemctl enable --now coturn-certificate-refresh.timer",
  ];
}
