/**
 * The ingress proxy's HAProxy configuration as a consul-template template: TLS termination
 * for every certificate in /etc/haproxy/ssl, HTTP→HTTPS redirect except ACME challenges,
 * and routing rules, backends and TCP listeners read from the KV under `service/haproxy`
 * (lib/kv.ts). Backends are Consul catalog services found through Consul DNS (SRV records).
 * Also renders the proxy's nftables ruleset as a template that opens the TCP listener ports.
 *
 * Values come from KV that any project on the host may write, so every value is checked with
 * a regular expression before it reaches haproxy.cfg; an entry that fails the check, a rule
 * whose ACL or backend does not exist yet, or a listener on a reserved port is left out
 * instead of breaking the whole configuration (HAProxy refuses a reload with one bad line).
 */
import { KV_PREFIX } from "../kv";
import { renderNftablesTemplate, FirewallRule } from "./nftables";

export interface HaproxyTemplateOptions {
  /** Consul DNS as `ip:port`, e.g. `10.10.1.1:8600` (IPv6 as `[addr]:port`). */
  readonly dnsServer: string;
  /** Consul's DNS domain, e.g. `consul`. */
  readonly dnsDomain: string;
  /** Prefer the IPv6 address of a backend when Consul DNS offers both. */
  readonly preferIpv6: boolean;
  /** Also listen on IPv6 (`:::port v6only`); needs IPv6 in the container. @default true */
  readonly listenIpv6?: boolean;
}

/** Where HAProxy finds its certificates: every PEM (chain + key) in this directory. */
export const HAPROXY_CERT_DIR = "/etc/haproxy/ssl";
/**
 * The self-signed certificate (chain + key) made at first boot. The 443 bind names it before the
 * directory, which makes it HAProxy's default certificate: every handshake whose SNI matches no
 * Let's Encrypt certificate (none issued yet, issuance failing, no SNI at all) gets it, instead
 * of whichever domain's file sorts first, or a refused handshake as with `strict-sni`.
 */
export const HAPROXY_FALLBACK_PEM = `${HAPROXY_CERT_DIR}/fallback.pem`;
export const HAPROXY_CONFIG_PATH = "/etc/haproxy/haproxy.cfg";
/** certbot's standalone HTTP-01 server, reached by HAProxy for `/.well-known/acme-challenge/`. */
export const CERTBOT_HTTP_PORT = 8080;
/** HAProxy's statistics page, on the proxy container's loopback only. */
export const HAPROXY_STATS_PORT = 6080;
/** Ports the proxy itself uses; a TCP listener cannot take them. */
export const INGRESS_RESERVED_PORTS: readonly number[] = [80, 443, CERTBOT_HTTP_PORT, HAPROXY_STATS_PORT];

// Mozilla's "intermediate" profile, ECDHE suites only: no DH parameter file to ship and keep,
// and every client that negotiates DHE also negotiates ECDHE.
const TLS12_CIPHERS = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");
const TLS13_SUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

/** HSTS for two years, as the Mozilla guideline recommends. */
export const HSTS_HEADER = "max-age=63072000; includeSubDomains";

// ------------------------------------------------------------------ template building blocks

/** A Go template raw string (no escapes), so regular expressions need no double escaping. */
const raw = (text: string): string => `\`${text}\``;

/** Checks on KV values, as Go (RE2) regular expressions: nothing that HAProxy or a shell would interpret. */
export const KV_VALUE_PATTERNS = {
  host: "^[A-Za-z0-9][A-Za-z0-9.-]*$",
  path: "^/[^\\s\"'{}#\\\\]*$",
  service: "^[A-Za-z0-9][A-Za-z0-9_-]*$",
  redirect: "^https?://[^\\s\"'{}#\\\\]+$",
  port: "^[1-9][0-9]{0,4}$",
} as const;

const P = KV_PREFIX.haproxy;
const aclKey = (part: "host" | "path", nameExpr: string) => `(printf ${raw(`${P}/acl/%s/${part}`)} ${nameExpr})`;
const backendKey = (kind: "no-ssl" | "ssl", nameExpr: string) => `(printf ${raw(`${P}/backends/${kind}/%s`)} ${nameExpr})`;
const matches = (pattern: keyof typeof KV_VALUE_PATTERNS, expr: string) => `(regexMatch ${raw(KV_VALUE_PATTERNS[pattern])} ${expr})`;

/**
 * The Go template condition for a usable TCP listener: port `portExpr` (a string) is valid and
 * not the proxy's own, and service `serviceExpr` is a valid name that is not an HTTP backend.
 * Raw TCP to an HTTP backend would pass every HTTP rule (the admin-path deny, the forwarded
 * headers), so such a listener is left out.
 */
export function tcpListenerCondition(portExpr: string, serviceExpr: string): string {
  const notReserved = INGRESS_RESERVED_PORTS.map((p) => `(ne ${portExpr} "${p}")`).join(" ");
  const notHttp = (["no-ssl", "ssl"] as const).map((kind) => `(not (keyExists ${backendKey(kind, serviceExpr)}))`).join(" ");
  return `and ${matches("port", portExpr)} (le (parseInt ${portExpr}) 65535) ${notReserved} ${matches("service", serviceExpr)} ${notHttp}`;
}

type AclKind = "host+path" | "path" | "host";
const ACL_KINDS: readonly AclKind[] = ["host+path", "path", "host"];

// Path rules of every kind match one normalized path, `txn.path_norm`, set at the top of the
// HTTPS frontend (PATH_NORMALIZATION): url-decoded once, with `//`, `/./` and their
// percent-encoded spellings merged into `/`. Paths that cannot be normalized safely (invalid
// percent-encoding, a backslash, a `..` segment) are refused with 400 before any rule runs,
// so no rule fails open on a path its converter cannot decode (`path,url_dec` fails on `%zz`,
// and an ACL on a failed sample is false). One matcher for all kinds means a path is never
// denied under one spelling and routed under another. `-i` makes the match case-insensitive,
// so a deny also covers spellings the backend would reject anyway. Denies also match the path
// decoded twice (`txn.path_norm2`), so `%2561` cannot hide an `a`. The Host header is
// matched without its port.
const hostMatch = "{ hdr(host),field(1,:) -i {{ $host }} }";
const pathMatchNorm = "{ var(txn.path_norm) -m beg -i {{ $path }} }";
/**
 * The deny condition for the path prefix `path` (text or a Go template expression), each
 * alternative preceded by `also` (e.g. a host match): HAProxy's `||` binds looser than the
 * implicit AND, so the host match is repeated on both sides.
 */
export const denyPathMatch = (path: string, also = "") =>
  ["path_norm", "path_norm2"].map((v) => `${also}{ var(txn.${v}) -m beg -i ${path} }`).join(" || ");

/** Merges `//`, `/./`, `/.//` ... into `/` (after decoding, so `%2F%2F` and `%2e` are covered). */
const MERGE_SEPARATORS = "regsub(/[./]*/,/,g)";

/**
 * The HTTPS frontend's first rules: refuse what cannot be normalized, then set the normalized
 * paths every path rule matches. A backslash (raw or `%5C`) and `..` segments are refused
 * rather than interpreted, since servers disagree on what they mean.
 */
export const PATH_NORMALIZATION: readonly string[] = [
  "http-request set-var(txn.path_dec) path,url_dec",
  "http-request deny deny_status 400 unless { var(txn.path_dec) -m found }",
  "http-request deny deny_status 400 if { var(txn.path_dec) -m sub '\\' }",
  "http-request deny deny_status 400 if { var(txn.path_dec) -m reg (^|/)[.][.](/|$) }",
  `http-request set-var(txn.path_norm) var(txn.path_dec),${MERGE_SEPARATORS}`,
  `http-request set-var(txn.path_norm2) var(txn.path_dec),url_dec,${MERGE_SEPARATORS}`,
];

function aclCondition(kind: AclKind, deny: boolean): { test: string; match: string } {
  const pathMatch = deny ? denyPathMatch("{{ $path }}") : pathMatchNorm;
  switch (kind) {
    case "host+path":
      return {
        test: `and ${matches("host", "$host")} ${matches("path", "$path")}`,
        match: deny ? denyPathMatch("{{ $path }}", `${hostMatch} `) : `${hostMatch} ${pathMatch}`,
      };
    case "path":
      return { test: `and (eq $host "") ${matches("path", "$path")}`, match: pathMatch };
    case "host":
      return { test: `and (eq $path "") ${matches("host", "$host")}`, match: hostMatch };
  }
}

/**
 * One pass over the rules under `service/haproxy/<action>` whose ACL is of `kind`; each rule
 * renders as "\n  <line>". `extra` adds conditions on `.Value` (e.g. the backend must exist).
 */
function rulePass(action: "deny" | "redirect" | "use-backend", kind: AclKind, line: (match: string) => string, extra = ""): string {
  const { test, match } = aclCondition(kind, action === "deny");
  return [
    `{{- range ls ${raw(`${P}/${action}`)} }}`,
    `{{- $host := keyOrDefault ${aclKey("host", ".Key")} "" }}`,
    `{{- $path := keyOrDefault ${aclKey("path", ".Key")} "" }}`,
    `{{- if ${test}${extra} }}\n  ${line(match)}`,
    "{{- end }}",
    "{{- end }}",
  ].join("");
}

const backendExists = `(or (keyExists ${backendKey("no-ssl", ".Value")}) (keyExists ${backendKey("ssl", ".Value")}))`;

function serverTemplate(options: HaproxyTemplateOptions, service: string, extra = ""): string {
  const prefer = options.preferIpv6 ? "ipv6" : "ipv4";
  return `server-template ${service} 1 _${service}._tcp.service.${options.dnsDomain} resolvers consul resolve-prefer ${prefer} init-addr none check${extra}`;
}

function backendPass(options: HaproxyTemplateOptions, kind: "no-ssl" | "ssl"): string {
  // The names `default` and `certbot` are the proxy's own backends; a service registered as
  // both ssl and no-ssl is rendered once, as no-ssl (two backends of one name are an error).
  const unique = kind === "ssl" ? ` (not (keyExists ${backendKey("no-ssl", ".Key")}))` : "";
  const body = [
    "",
    "backend {{ .Key }}",
    "  balance roundrobin",
    // The backend's own denies hold whichever route sent the request here (a whole host, a
    // path, a future rule); without a normalized path (not from https_443) nothing passes.
    "  http-request deny deny_status 400 unless { var(txn.path_norm) -m found }",
    `  {{- $service := .Key }}{{- range ls (printf ${raw(`${P}/backend-deny/%s`)} $service) }}{{- if ${matches("path", ".Value")} }}`,
    `  http-request deny deny_status 403 if ${denyPathMatch("{{ .Value }}")}`,
    "  {{- end }}{{- end }}",
    `  ${serverTemplate(options, "{{ .Key }}", kind === "ssl" ? " ssl verify none" : "")}`,
  ].join("\n");
  return [
    `{{- range ls ${raw(`${P}/backends/${kind}`)} }}`,
    `{{- if and ${matches("service", ".Key")} (ne .Key "default") (ne .Key "certbot")${unique} }}\n${body}`,
    "{{- end }}",
    "{{- end }}",
  ].join("");
}

function binds(port: number | string, options: HaproxyTemplateOptions, extra = ""): string[] {
  const lines = [`  bind :${port}${extra}`];
  if (options.listenIpv6 ?? true) lines.push(`  bind :::${port} v6only${extra}`);
  return lines;
}

function tcpListenersPass(options: HaproxyTemplateOptions): string {
  const body = [
    "",
    "listen tcp_{{ .Key }}",
    ...binds("{{ .Key }}", options),
    "  mode tcp",
    "  option tcplog",
    "  option tcpka",
    "  timeout connect 5s",
    "  timeout client 60s",
    "  timeout server 60s",
    "  balance leastconn",
    `  ${serverTemplate(options, "{{ .Value }}")}`,
  ].join("\n");
  return [
    `{{- range ls ${raw(`${P}/tcp-listeners`)} }}`,
    `{{- if ${tcpListenerCondition(".Key", ".Value")} }}\n${body}`,
    "{{- end }}",
    "{{- end }}",
  ].join("");
}

// ------------------------------------------------------------------ haproxy.cfg

/** The consul-template template that renders /etc/haproxy/haproxy.cfg. */
export function renderHaproxyTemplate(options: HaproxyTemplateOptions): string {
  const rules = (action: "deny" | "redirect" | "use-backend", line: (match: string) => string, extra = "") =>
    ACL_KINDS.map((kind) => rulePass(action, kind, line, extra)).join("");

  const lines = [
    "# Rendered by consul-template from the Consul KV under service/haproxy; do not edit.",
    "global",
    // Under systemd (-Ws) stdout is the journal, and it still works inside the chroot.
    "  log stdout format short local0 info",
    "  chroot /var/lib/haproxy",
    "  stats socket /run/haproxy/admin.sock mode 660 level admin",
    "  stats timeout 30s",
    "  user haproxy",
    "  group haproxy",
    "  ssl-default-bind-curves X25519:prime256v1:secp384r1",
    `  ssl-default-bind-ciphers ${TLS12_CIPHERS}`,
    `  ssl-default-bind-ciphersuites ${TLS13_SUITES}`,
    "  ssl-default-bind-options prefer-client-ciphers ssl-min-ver TLSv1.2 no-tls-tickets",
    `  ssl-default-server-ciphers ${TLS12_CIPHERS}`,
    `  ssl-default-server-ciphersuites ${TLS13_SUITES}`,
    "  ssl-default-server-options ssl-min-ver TLSv1.2 no-tls-tickets",
    "",
    "defaults",
    "  log global",
    "  mode http",
    "  option httplog",
    "  option dontlognull",
    "  timeout connect 5s",
    "  timeout client 50s",
    "  timeout server 50s",
    "  timeout http-request 10s",
    "  timeout tunnel 1h",
    "",
    "resolvers consul",
    `  nameserver consul ${options.dnsServer}`,
    "  accepted_payload_size 8192",
    "  hold valid 10s",
    "",
    // Loopback only: the page shows every backend and server address and needs no login, so
    // it is read from inside the container (`curl http://127.0.0.1:6080/`), never the bridge.
    "listen stats",
    `  bind 127.0.0.1:${HAPROXY_STATS_PORT}`,
    "  stats enable",
    "  stats uri /",
    "  stats refresh 10s",
    "",
    "frontend http_80",
    ...binds(80, options),
    "  acl acme_challenge path_beg /.well-known/acme-challenge/",
    "  http-request redirect scheme https code 301 unless acme_challenge",
    "  use_backend certbot if acme_challenge",
    "  default_backend default",
    "",
    "frontend https_443",
    ...binds(443, options, ` ssl crt ${HAPROXY_FALLBACK_PEM} crt ${HAPROXY_CERT_DIR}/ alpn h2,http/1.1`),
    "  http-request set-header X-Forwarded-Proto https",
    // Overwrite, never append: a client-supplied X-Forwarded-For must not reach the backends.
    "  http-request set-header X-Forwarded-For %[src]",
    // http-after-response: also on the responses HAProxy makes itself (denies, redirects).
    `  http-after-response set-header Strict-Transport-Security "${HSTS_HEADER}"`,
    ...PATH_NORMALIZATION.map((line) => `  ${line}`),
    "  # 1. denies, 2. redirects, 3. backends; within each: host+path, then path, then host.",
    "  # deny" + rules("deny", (m) => `http-request deny deny_status 403 if ${m}`),
    // A redirect prefix is a log-format string: `%` must be doubled, or `%20` breaks the
    // configuration and `%[...]` evaluates an expression.
    "  # redirect" +
      rules("redirect", (m) => `http-request redirect prefix {{ .Value | replaceAll "%" "%%" }} code 302 if ${m}`, ` ${matches("redirect", ".Value")}`),
    "  # use-backend" +
      rules("use-backend", (m) => `use_backend {{ .Value }} if ${m}`, ` ${matches("service", ".Value")} ${backendExists}`),
    "  default_backend default",
    "",
    "backend default",
    "  http-request deny deny_status 403",
    "",
    "backend certbot",
    `  server certbot 127.0.0.1:${CERTBOT_HTTP_PORT}`,
    "",
    "# backends: service/haproxy/backends/{no-ssl,ssl}/<service>" + backendPass(options, "no-ssl") + backendPass(options, "ssl"),
    "",
    "# TCP listeners: service/haproxy/tcp-listeners/<port> = <service>" + tcpListenersPass(options),
    "",
  ];
  return lines.join("\n");
}

// ------------------------------------------------------------------ nftables

/**
 * The proxy's nftables ruleset as a consul-template template: `rules` as rendered by
 * renderNftables, plus `tcp dport <port> accept` for each usable key under
 * `service/haproxy/tcp-listeners`. With no listeners in KV it renders exactly
 * `renderNftables({ rules })`.
 */
export function renderIngressNftablesTemplate(rules: readonly FirewallRule[]): string {
  const range =
    `{{- range ls ${raw(`${P}/tcp-listeners`)} }}{{- if ${tcpListenerCondition(".Key", ".Value")} }}\n` +
    '    tcp dport {{ .Key }} accept comment "ingress TCP listener"' +
    "{{- end }}{{- end }}";
  return renderNftablesTemplate(rules, range);
}
