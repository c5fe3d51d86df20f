/**
 * coturn's configuration: a consul-template template for turnserver.conf that reads the ports
 * and the TURN domain from Consul KV (`service/coturn/*`), the systemd drop-in that runs coturn
 * only with that file and lets it read the certificate key, and a timer that restarts coturn
 * when the ingress proxy has renewed the certificate on the shared volume.
 */
import { SPECIAL_PURPOSE_NETWORKS } from "../special-networks";
import type { CloudInitFile } from "./cloud-init";
import { kvPaths } from "../kv";
import { SHARED_CERT_DIR, SHARED_CERTS_GID, sharedCertificateFiles } from "./certbot";

/**
 * Where consul-template writes the configuration. Not Debian's /etc/turnserver.conf: the
 * package starts coturn with that file's defaults (no authentication, every interface) as soon
 * as it is installed, so coturn runs only once this file exists (see COTURN_DROP_IN).
 */
export const COTURN_CONFIG_PATH = "/etc/coturn/turnserver.conf";
export const COTURN_PREPARE_SCRIPT = "/usr/local/sbin/coturn-prepare";
export const COTURN_CERT_STAMP = "/run/coturn-certificate.sha256";
/** Name of the group that may read the keys on the shared certificate volume. */
export const SHARED_CERTS_GROUP = "shared-certs";

/**
 * Peer ranges coturn refuses to relay to: private, loopback, link-local, shared, reserved,
 * documentation and multicast space, so that a TURN client cannot reach the host network or
 * anything else that is not the public Internet. IPv4 is ryo's list; IPv6 adds what ryo's
 * dynamic template lost (§13.11), including the ranges that embed IPv4 addresses (mapped,
 * NAT64, 6to4, Teredo) and so could reach private IPv4 space.
 */
export const DENIED_PEER_NETWORKS: readonly string[] = SPECIAL_PURPOSE_NETWORKS;

export interface TurnserverPorts {
  readonly listeningPort: number;
  readonly tlsListeningPort: number;
  readonly minPort: number;
  readonly maxPort: number;
}

export interface TurnserverOptions {
  /**
   * The shared secret of the TURN REST API (`static-auth-secret`). At synth time a Terraform
   * token, so the secret reaches the container through the user-data and never cdktf.out.
   */
  readonly staticAuthSecret: string;
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

/** coturn's peer syntax for a CIDR: `first-last`, or the single address of a /32 or /128. */
export function peerRange(cidr: string): string {
  const [address, prefixText] = cidr.split("/");
  const v6 = address.includes(":");
  const bits = v6 ? 128 : 32;
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits) throw new Error(`not a CIDR: ${cidr}`);
  const value = v6 ? parseIpv6(address) : parseIpv4(address);
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  const first = value & ~hostMask;
  const last = first | hostMask;
  const format = v6 ? formatIpv6 : formatIpv4;
  return first === last ? format(first) : `${format(first)}-${format(last)}`;
}

/** A port read from KV, falling back to the module's own value when missing or not a number. */
function kvPort(setting: "listening-port" | "tls-listening-port" | "min-port" | "max-port", fallback: number): string {
  const key = kvPaths.coturnPort(setting);
  return `${setting}={{ with $v := keyOrDefault \`${key}\` "${fallback}" }}{{ if regexMatch \`${PORT_PATTERN}\` $v }}{{ $v }}{{ else }}${fallback}{{ end }}{{ end }}`;
}

/**
 * The consul-template template for COTURN_CONFIG_PATH. Authentication is the TURN REST API's
 * shared secret (Synapse hands out time-limited credentials); the TLS certificate is the full
 * chain of the TURN domain from the ingress proxy's shared volume, or the proxy's self-signed
 * fallback while no domain is registered.
 */
export function renderTurnserverTemplate(options: TurnserverOptions): string {
  if (/[\r\n]/.test(options.staticAuthSecret)) throw new Error("staticAuthSecret must be a single line");
  const addresses = [options.ipv4, ...(options.ipv6 ? [options.ipv6] : [])];
  const external = [`${options.externalIpv4}/${options.ipv4}`];
  if (options.ipv6 && options.externalIpv6) external.push(`${options.externalIpv6}/${options.ipv6}`);
  const domainCert = sharedCertificateFiles("{{ $domain }}", SHARED_CERT_DIR);
  const fallbackCert = sharedCertificateFiles("fallback", SHARED_CERT_DIR);
  const denied = [...DENIED_PEER_NETWORKS, ...(options.deniedNetworks ?? [])];

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
    "# TURN REST API credentials: time-limited users derived from the shared secret.",
    "fingerprint",
    "use-auth-secret",
    `static-auth-secret=${options.staticAuthSecret}`,
    `user-quota=${options.userQuota ?? 12}`,
    `total-quota=${options.totalQuota ?? 1200}`,
    "",
    "# TLS: the full chain (the leaf alone fails validation in many clients) and key of the",
    "# TURN domain, from the ingress proxy's certificate volume.",
    `{{- if regexMatch \`${FQDN_PATTERN}\` $domain }}`,
    "realm={{ $domain }}",
    `cert=${domainCert.fullchain}`,
    `pkey=${domainCert.key}`,
    "{{- else }}",
    "# No TURN domain registered yet: the ingress proxy's self-signed fallback certificate.",
    `cert=${fallbackCert.fullchain}`,
    `pkey=${fallbackCert.key}`,
    "{{- end }}",
    "no-tlsv1",
    "no-tlsv1_1",
    "",
    "# Relay UDP to public peers only.",
    "no-tcp-relay",
    "no-multicast-peers",
    ...denied.map((n) => `denied-peer-ip=${peerRange(n)}`),
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
 * only with the rendered configuration, let it read the certificate key through the
 * shared-certs group, allow listening ports below 1024, and record which certificate it loaded.
 * (Its static addresses may come up after it starts: COTURN_SYSCTL lets it bind them anyway.)
 */
export const COTURN_DROP_IN = `[Unit]
ConditionPathExists=${COTURN_CONFIG_PATH}
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
 * COTURN_PREPARE_SCRIPT. `start` (as root before coturn starts): let coturn read the
 * configuration, which holds the secret, and record a checksum of the certificate it is about
 * to load. `refresh` (from the timer): restart coturn when the certificate on the shared volume
 * differs from that checksum, i.e. the ingress proxy has renewed it or issued the first one.
 */
export function renderCoturnPrepareScript(): string {
  return [
    "#!/bin/sh",
    "set -eu",
    `conf=${COTURN_CONFIG_PATH}`,
    `stamp=${COTURN_CERT_STAMP}`,
    "",
    "certificate_sum() {",
    '  cert="$(sed -n "s/^cert=//p" "$conf")"',
    '  pkey="$(sed -n "s/^pkey=//p" "$conf")"',
    '  cat "$cert" "$pkey" 2>/dev/null | sha256sum',
    "}",
    "",
    'case "$*" in',
    "  start)",
    '    chown root:turnserver "$conf"',
    '    chmod 0640 "$conf"',
    '    certificate_sum > "$stamp"',
    "    ;;",
    "  refresh)",
    '    [ -f "$conf" ] && systemctl -q is-active coturn.service || exit 0',
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
// event would leave coturn serving an expired certificate. The check costs two file reads an
// hour, and coturn restarts (dropping its relays) only when the certificate really changed.
const REFRESH_SERVICE = `[Unit]
Description=Restart coturn when its TLS certificate was renewed

[Service]
Type=oneshot
ExecStart=${COTURN_PREPARE_SCRIPT} refresh
`;

const REFRESH_TIMER = `[Unit]
Description=Check hourly whether coturn's TLS certificate was renewed

[Timer]
OnCalendar=hourly
RandomizedDelaySec=5min
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
