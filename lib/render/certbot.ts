/**
 * Let's Encrypt certificates for the ingress proxy. Projects ask for a certificate by writing
 * `service/certbot/<fqdn>` = account e-mail (constructs/modules/certificate-domains.ts); a
 * consul-template template turns those keys into an issuance script that runs certbot's
 * standalone HTTP-01 server on 127.0.0.1:8080, where HAProxy forwards ACME challenges.
 * A deploy hook hands each new or renewed certificate to HAProxy (chain + key in one PEM) and,
 * for coturn, to the shared certificate volume (full chain and key as separate files).
 * Renewal is Debian's `certbot.timer`: `certbot renew` reuses the authenticator, port and
 * deploy hook that `certbot certonly` stored in each lineage's renewal configuration.
 * A self-signed fallback certificate lets HAProxy start before the first certificate exists.
 */
import type { CloudInitFile } from "./cloud-init";
import { KV_PREFIX } from "../kv";
import { CERTBOT_HTTP_PORT, HAPROXY_CERT_DIR, HAPROXY_FALLBACK_PEM } from "./haproxy";
import { shellQuote } from "./shell";

/** Certificates for other containers (coturn): `<fqdn>.fullchain.pem` and `<fqdn>.key.pem`. */
export const SHARED_CERT_DIR = "/var/certs";
/**
 * Group that owns the private keys in SHARED_CERT_DIR (mode 0640). A container that mounts the
 * shared volume lets its service read the keys by giving it this group id.
 */
export const SHARED_CERTS_GID = 4443;
export const LETSENCRYPT_DIR = "/etc/letsencrypt";
export const CERTBOT_ISSUE_SCRIPT = "/usr/local/bin/certbot-issue.sh";
export const CERT_DEPLOY_HOOK = "/usr/local/bin/cert-deploy.sh";
export const FALLBACK_CERT_SCRIPT = "/usr/local/bin/ensure-fallback-cert.sh";
/** The systemd unit that runs the issuance script (consul-template starts it; a timer retries). */
export const CERTBOT_ISSUE_UNIT = "certbot-issue.service";

/** File names of a domain's certificate on the shared volume, under `dir` (its mount point). */
export function sharedCertificateFiles(domain: string, dir = SHARED_CERT_DIR): { fullchain: string; key: string } {
  return { fullchain: `${dir}/${domain}.fullchain.pem`, key: `${dir}/${domain}.key.pem` };
}

/** The self-signed certificate that exists before any Let's Encrypt certificate does. */
export const FALLBACK_CERT = {
  haproxyPem: HAPROXY_FALLBACK_PEM,
  ...sharedCertificateFiles("fallback"),
};

export interface CertbotIssueOptions {
  /**
   * ACME directory URL, e.g. Let's Encrypt's staging directory for tests.
   * @default certbot's default (Let's Encrypt production)
   */
  readonly acmeServer?: string;
}

// Go (RE2) patterns for KV values that end up in a shell command: a lower-case DNS name and
// a plain e-mail address. Neither can contain a quote, so single-quoting them is safe.
const FQDN_PATTERN = "^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$";
const EMAIL_PATTERN = "^[A-Za-z0-9._%+-]+@[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$";


/**
 * The consul-template template for CERTBOT_ISSUE_SCRIPT: one `certbot certonly` per key under
 * `service/certbot`. Idempotent: certbot keeps a certificate that is not due for renewal, and
 * a certificate that exists but is missing from HAProxy (say the container was replaced and
 * only /etc/letsencrypt kept) is deployed again.
 */
export function renderCertbotIssueTemplate(options: CertbotIssueOptions = {}): string {
  const server = options.acmeServer ? ` --server ${shellQuote(options.acmeServer)}` : "";
  const certonly =
    `certbot certonly --standalone --http-01-port ${CERTBOT_HTTP_PORT} --http-01-address 127.0.0.1 --preferred-challenges http` +
    ` --non-interactive --agree-tos -m '{{ .Value }}' -d '{{ .Key }}' --cert-name '{{ .Key }}' --keep-until-expiring${server}` +
    ` --deploy-hook ${CERT_DEPLOY_HOOK}`;
  return [
    "#!/bin/sh",
    `# Rendered by consul-template from the keys under ${KV_PREFIX.certbot} (domain = account e-mail); do not edit.`,
    "set -u",
    // consul-template, the retry timer and a manual run must not run certbot concurrently.
    "exec 9>/run/certbot-issue.lock",
    "flock 9",
    "status=0",
    "",
    "deploy_if_missing() {",
    `  if [ -f "${LETSENCRYPT_DIR}/live/$1/fullchain.pem" ] && [ ! -f "${HAPROXY_CERT_DIR}/$1.pem" ]; then`,
    `    RENEWED_LINEAGE="${LETSENCRYPT_DIR}/live/$1" ${CERT_DEPLOY_HOOK} || status=1`,
    "  fi",
    "}",
    `{{ range ls \`${KV_PREFIX.certbot}\` }}{{ if and (regexMatch \`${FQDN_PATTERN}\` .Key) (regexMatch \`${EMAIL_PATTERN}\` .Value) }}`,
    `${certonly} || status=1`,
    "deploy_if_missing '{{ .Key }}'",
    "{{ end }}{{ end }}",
    'exit "$status"',
    "",
  ].join("\n");
}

/** CERT_DEPLOY_HOOK: run by certbot with RENEWED_LINEAGE after every issuance and renewal. */
export function renderCertDeployHook(): string {
  const shared = sharedCertificateFiles("$domain");
  return [
    "#!/bin/sh",
    "# certbot deploy hook: hand a new or renewed certificate to HAProxy and to the shared",
    "# certificate volume (coturn), then reload HAProxy.",
    "set -eu",
    'lineage="${RENEWED_LINEAGE:?certbot sets RENEWED_LINEAGE}"',
    'domain="$(basename "$lineage")"',
    "umask 077",
    "",
    "# HAProxy wants chain and key in one file; write it beside the target and rename it, so a",
    "# reload never sees half a file (HAProxy skips names that start with a dot).",
    `tmp="$(mktemp "${HAPROXY_CERT_DIR}/.$domain.pem.XXXXXX")"`,
    'cat "$lineage/fullchain.pem" "$lineage/privkey.pem" > "$tmp"',
    'chmod 0600 "$tmp"',
    `mv -f "$tmp" "${HAPROXY_CERT_DIR}/$domain.pem"`,
    "",
    "# coturn needs the full chain (the leaf alone fails validation in many clients) and the",
    "# key, which only root and the shared-certs group may read.",
    `install -m 0644 -o root -g root "$lineage/fullchain.pem" "${shared.fullchain}"`,
    `install -m 0640 -o root -g ${SHARED_CERTS_GID} "$lineage/privkey.pem" "${shared.key}"`,
    "",
    "systemctl try-reload-or-restart haproxy.service",
    "",
  ].join("\n");
}

export interface FallbackCertOptions {
  /** Subject common name of the self-signed certificate. @default "ingress-proxy.invalid" */
  readonly commonName?: string;
}

/**
 * FALLBACK_CERT_SCRIPT: makes the self-signed fallback certificate unless all three files
 * exist. HAProxy refuses to start with an empty certificate directory, and coturn needs a
 * certificate to load before its domain has one.
 */
export function renderFallbackCertScript(options: FallbackCertOptions = {}): string {
  const cn = options.commonName ?? "ingress-proxy.invalid";
  return [
    "#!/bin/sh",
    "# Make the self-signed fallback certificate, once (the volumes keep it).",
    "set -eu",
    `if [ -s ${FALLBACK_CERT.haproxyPem} ] && [ -s ${FALLBACK_CERT.fullchain} ] && [ -s ${FALLBACK_CERT.key} ]; then`,
    "  exit 0",
    "fi",
    "umask 077",
    'work="$(mktemp -d)"',
    `trap 'rm -rf "$work"' EXIT`,
    "openssl req -x509 -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 3650 \\",
    `  -subj ${shellQuote(`/CN=${cn}`)} -addext ${shellQuote(`subjectAltName=DNS:${cn}`)} \\`,
    '  -keyout "$work/key.pem" -out "$work/cert.pem"',
    `mkdir -p ${HAPROXY_CERT_DIR} ${SHARED_CERT_DIR}`,
    `cat "$work/cert.pem" "$work/key.pem" > ${FALLBACK_CERT.haproxyPem}`,
    `chmod 0600 ${FALLBACK_CERT.haproxyPem}`,
    `install -m 0644 -o root -g root "$work/cert.pem" ${FALLBACK_CERT.fullchain}`,
    `install -m 0640 -o root -g ${SHARED_CERTS_GID} "$work/key.pem" ${FALLBACK_CERT.key}`,
    "",
  ].join("\n");
}

const ISSUE_SERVICE = `[Unit]
Description=Obtain the Let's Encrypt certificates requested in Consul KV
After=network-online.target haproxy.service
Wants=network-online.target

[Service]
Type=oneshot
ExecStart=${CERTBOT_ISSUE_SCRIPT}
`;

// consul-template starts the issuance when the KV changes; this timer retries domains whose
// validation failed (DNS not pointing here yet, Let's Encrypt unreachable). Domains with a
// certificate cost no ACME request, and a failing one stays well under Let's Encrypt's limit
// of 5 failed validations per hour.
const ISSUE_TIMER = `[Unit]
Description=Retry obtaining the Let's Encrypt certificates requested in Consul KV

[Timer]
OnBootSec=10min
OnUnitInactiveSec=1h
RandomizedDelaySec=5min

[Install]
WantedBy=timers.target
`;

/** Static files: the deploy hook, the fallback certificate script and the issuance units. */
export function certbotFiles(options: FallbackCertOptions = {}): CloudInitFile[] {
  return [
    { path: CERT_DEPLOY_HOOK, content: renderCertDeployHook(), permissions: "0755" },
    { path: FALLBACK_CERT_SCRIPT, content: renderFallbackCertScript(options), permissions: "0755" },
    { path: `/etc/systemd/system/${CERTBOT_ISSUE_UNIT}`, content: ISSUE_SERVICE },
    { path: "/etc/systemd/system/certbot-issue.timer", content: ISSUE_TIMER },
  ];
}

/**
 * First-boot commands, in order: the shared-certs group, the fallback certificate, then
 * renewal (Debian's certbot.timer) and the retry timer. HAProxy is started after these.
 */
export function certbotCommands(): string[] {
  return [
    `getent group ${SHARED_CERTS_GID} >/dev/null || groupadd --system --gid ${SHARED_CERTS_GID} shared-certs`,
    FALLBACK_CERT_SCRIPT,
    "systemctl daemon-reload",
    "systemctl enable --now certbot.timer certbot-issue.timer",
  ];
}
