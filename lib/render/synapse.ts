/**
 * Synapse's files inside its container: homeserver.yaml and the log configuration (both built as
 * data and serialized with `yaml`), the Debian package installation for the stock image, and the
 * bootstrap that runs on every boot (installs the configuration, makes the signing key once,
 * waits for PostgreSQL, starts Synapse and creates the admin user once). Secrets come in as
 * strings: Terraform tokens at synth time, sample values in tests. They never go into
 * homeserver.yaml or the user-data: every section that holds one is rendered into a separate
 * conf.d fragment (renderSecretsConfig) and the admin's password into its own file, both pushed
 * into the container by the LXD API (synapseSecretFiles).
 */
import { SPECIAL_PURPOSE_NETWORKS } from "../special-networks";
import { stringify } from "yaml";
import type { CloudInitFile } from "./cloud-init";
import { SECRET_DELIVERY_TIMEOUT_SECONDS, SecretFile } from "./secret-files";
import { shellQuote } from "./shell";

/** Where Synapse keeps things. The data directory is a persistent volume. */
export const SYNAPSE_PATHS = {
  configDir: "/etc/matrix-synapse",
  homeserverConfig: "/etc/matrix-synapse/homeserver.yaml",
  logConfig: "/etc/matrix-synapse/log.yaml",
  dataDir: "/var/lib/matrix-synapse",
  mediaStore: "/var/lib/matrix-synapse/media",
  signingKey: "/var/lib/matrix-synapse/homeserver.signing.key",
  /** Marker on the data volume: the admin user exists, never create it again. */
  adminMarker: "/var/lib/matrix-synapse/.admin-user-created",
  pidFile: "/run/matrix-synapse/homeserver.pid",
  /** Root-only staging area written by cloud-init; the bootstrap installs from here. */
  stagingDir: "/etc/synapse-bootstrap",
  /**
   * The configuration sections that hold secrets (SYNAPSE_SECRET_SECTIONS), pushed root-only by
   * the LXD API; the bootstrap installs it as conf.d/secrets.yaml for the Synapse group.
   */
  secretsConfig: "/etc/synapse-bootstrap/conf.d/secrets.yaml",
  /** The admin's initial password, pushed root-only by the LXD API; read only by the bootstrap. */
  adminPasswordFile: "/etc/synapse-bootstrap/admin-password",
  bootstrapScript: "/usr/local/sbin/synapse-bootstrap",
  bootstrapUnit: "/etc/systemd/system/synapse-bootstrap.service",
  installScript: "/usr/local/sbin/synapse-install",
  /** The virtualenv of matrix.org's Debian package (pre-built images must use that package too). */
  venv: "/opt/venvs/matrix-synapse",
} as const;

export const SYNAPSE_PORT = 8008;

/** matrix.org's Debian repository and the fingerprint of its signing key (from Synapse's installation docs). */
export const MATRIX_ORG_APT = {
  url: "https://packages.matrix.org/debian/",
  keyUrl: "https://packages.matrix.org/debian/matrix-org-archive-keyring.gpg",
  keyFingerprint: "AAF9AE843A7584B5A3E4CD2BCF45A512DE2DA058",
  suite: "bookworm",
} as const;

export interface DatabaseConnection {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password: string;
}

export interface TurnOptions {
  readonly domain: string;
  readonly listeningPort: number;
  readonly tlsListeningPort: number;
  readonly sharedSecret: string;
}

export interface SmtpOptions {
  readonly host: string;
  readonly port: number;
  /** @default no authentication */
  readonly user?: string;
  /** @default no authentication */
  readonly password?: string;
  /** Refuse to send unless the server offers STARTTLS (`require_transport_security`). @default true */
  readonly requireStartTls?: boolean;
  /** TLS from the first byte (`force_tls`, usually port 465) instead of STARTTLS. @default false */
  readonly implicitTls?: boolean;
  /** Sender of notification mails. @default "Your %(app)s homeserver <noreply@<domain>>" */
  readonly notifFrom?: string;
}

export interface HomeserverOptions {
  /** The server name: users are `@user:<domain>`. */
  readonly domain: string;
  /** @default "https://matrix.<domain>/" */
  readonly publicBaseUrl?: string;
  /** Listen on `::` (IPv6 and IPv4) instead of `0.0.0.0`. */
  readonly dualStack: boolean;
  readonly database: DatabaseConnection;
  readonly registrationSharedSecret: string;
  readonly macaroonSecretKey: string;
  readonly formSecret: string;
  /** Mixed into password hashes; changing it later locks every user out. @default none */
  readonly passwordPepper?: string;
  readonly turn: TurnOptions;
  /** `admin_contact`, shown to users in server errors. */
  readonly adminEmail: string;
  /** @default no e-mail (no `email` section) */
  readonly smtp?: SmtpOptions;
  /** Remote rooms more complex than this cannot be joined (admins can). @default 100 */
  readonly roomComplexity?: number;
  /** @default false */
  readonly allowPublicRoomsWithoutAuth?: boolean;
  /** @default false */
  readonly allowPublicRoomsOverFederation?: boolean;
  /**
   * The host's own public addresses: Synapse never sends requests there (URL previews,
   * federation, push), so a user cannot make it reach the host's other services.
   * @default none
   */
  readonly hostPublicAddresses?: readonly string[];
  /**
   * Turns a value that may only be known at apply time (secrets, database and SMTP settings)
   * into a YAML double-quoted scalar. The Synapse construct passes Terraform's `jsonencode()`,
   * so the real value is escaped when Terraform knows it.
   * @default JSON.stringify (right for literal strings)
   */
  readonly quote?: (value: string) => string;
}

/** Synapse's password policy; the admin password is checked against the same rules (PASSWORD_RULES). */
export const PASSWORD_POLICY = {
  minimum_length: 12,
  require_digit: true,
  require_symbol: false,
  require_lowercase: true,
  require_uppercase: true,
} as const;

/** The policy as regular expressions (RE2 and JavaScript alike) with what each demands. */
export const PASSWORD_RULES: readonly { readonly pattern: string; readonly demand: string }[] = [
  { pattern: "[0-9]", demand: "a digit" },
  { pattern: "[a-z]", demand: "a lower-case letter" },
  { pattern: "[A-Z]", demand: "an upper-case letter" },
];

/**
 * Never reached on a user's behalf, neither for URL previews nor by federation, push or
 * identity-server requests: private, loopback, link-local, CGNAT, documentation, multicast and
 * reserved ranges, and the IPv6 ranges that embed IPv4 (NAT64, 6to4, Teredo). The host's own
 * public addresses are added per host (HomeserverOptions.hostPublicAddresses).
 */
export const URL_PREVIEW_IP_RANGE_BLOCKLIST: readonly string[] = SPECIAL_PURPOSE_NETWORKS;

// Synapse matches `hostname` (no user info, no port, IPv6 without brackets) with re.match for
// a pattern starting with `^`, else with a glob. Matching `netloc` let `1.2.3.4:80` through.
const URL_PREVIEW_URL_BLOCKLIST = [
  { username: "*" },
  { hostname: "google.com" },
  { hostname: "*.google.com" },
  { scheme: "http" },
  // IP literals: dotted, decimal and other all-digit forms, and any IPv6 literal.
  { hostname: "^[0-9.]+$" },
  { hostname: "*:*" },
];

/** `address/32` or `address/128`, as Synapse's range lists want. */
const hostRange = (address: string) => (address.includes("/") ? address : `${address}/${address.includes(":") ? 128 : 32}`);

/** The TURN URIs clients get: plain and TLS, each over UDP and TCP. */
export function turnUris(turn: Pick<TurnOptions, "domain" | "listeningPort" | "tlsListeningPort">): string[] {
  return [
    `turn:${turn.domain}:${turn.listeningPort}?transport=udp`,
    `turn:${turn.domain}:${turn.listeningPort}?transport=tcp`,
    `turns:${turn.domain}:${turn.tlsListeningPort}?transport=udp`,
    `turns:${turn.domain}:${turn.tlsListeningPort}?transport=tcp`,
  ];
}

/**
 * Values known only at apply time go into the document as placeholders, and after
 * serialization each placeholder is replaced by `quote(value)`, a double-quoted scalar.
 */
class DeferredValues {
  private readonly values: string[] = [];
  constructor(private readonly quote: (value: string) => string) {}

  add(value: string): string {
    this.values.push(value);
    return `__synapse_deferred_${this.values.length - 1}__`;
  }

  fill(text: string): string {
    return text.replace(/__synapse_deferred_(\d+)__/g, (_, i: string) => this.quote(this.values[Number(i)]));
  }
}

const serialize = (doc: unknown): string => stringify(doc, { lineWidth: 0 });

/**
 * The top-level settings that hold a secret. Synapse merges its config files key by key at the
 * top level only (a later file's `database` replaces the earlier one's whole), so each section
 * that holds a secret moves into the fragment whole, with its non-secret settings.
 */
export const SYNAPSE_SECRET_SECTIONS = [
  "database",
  "email",
  "password_config",
  "turn_shared_secret",
  "registration_shared_secret",
  "macaroon_secret_key",
  "form_secret",
] as const;

/** homeserver.yaml: everything but SYNAPSE_SECRET_SECTIONS, safe to ship in the user-data. */
export function renderHomeserverConfig(options: HomeserverOptions): string {
  const { doc, deferred } = homeserverDocument(options);
  const secret = new Set<string>(SYNAPSE_SECRET_SECTIONS);
  const header = "# Synapse configuration, rendered by the Synapse construct. Do not edit: redeploy instead.\n" +
    "# The sections that hold secrets are in conf.d/secrets.yaml (readable by root and the Synapse group only).\n";
  return header + deferred.fill(serialize(Object.fromEntries(Object.entries(doc).filter(([key]) => !secret.has(key)))));
}

/** conf.d/secrets.yaml: SYNAPSE_SECRET_SECTIONS, read by Synapse after homeserver.yaml. */
export function renderSecretsConfig(options: HomeserverOptions): string {
  const { doc, deferred } = homeserverDocument(options);
  const picked = Object.fromEntries(SYNAPSE_SECRET_SECTIONS.filter((key) => key in doc).map((key) => [key, doc[key]]));
  return "# Synapse's secrets, rendered by the Synapse construct and pushed by Terraform. Do not edit: redeploy instead.\n" + deferred.fill(serialize(picked));
}

function homeserverDocument(options: HomeserverOptions): { doc: Record<string, unknown>; deferred: DeferredValues } {
  const deferred = new DeferredValues(options.quote ?? JSON.stringify);
  const later = (value: string) => deferred.add(value);
  const { domain, database, turn, smtp } = options;
  const blockedRanges = [...new Set([...URL_PREVIEW_IP_RANGE_BLOCKLIST, ...(options.hostPublicAddresses ?? []).map(hostRange)])];

  const doc: Record<string, unknown> = {
    server_name: domain,
    public_baseurl: options.publicBaseUrl ?? `https://matrix.${domain}/`,
    pid_file: SYNAPSE_PATHS.pidFile,
    presence: { enabled: false },
    require_auth_for_profile_requests: true,
    include_profile_data_on_invite: false,
    allow_profile_lookup_over_federation: false,
    allow_public_rooms_without_auth: options.allowPublicRoomsWithoutAuth ?? false,
    allow_public_rooms_over_federation: options.allowPublicRoomsOverFederation ?? false,
    listeners: [
      {
        port: SYNAPSE_PORT,
        tls: false,
        type: "http",
        x_forwarded: true,
        bind_addresses: options.dualStack ? ["::"] : ["0.0.0.0"],
        resources: [{ names: ["client", "federation"], compress: false }],
      },
    ],
    admin_contact: `mailto:${options.adminEmail}`,
    limit_remote_rooms: {
      enabled: true,
      complexity: options.roomComplexity ?? 100,
      complexity_error: "This room is too complex.",
      admins_can_join: true,
    },
    request_token_inhibit_3pid_errors: true,
    database: {
      name: "psycopg2",
      txn_limit: 10000,
      args: {
        user: later(database.user),
        password: later(database.password),
        database: later(database.database),
        host: later(database.host),
        port: database.port,
        // TLS always, and SCRAM bound to the TLS session: the postgres module's certificate is
        // self-signed, so channel binding is what keeps a machine in the middle out.
        sslmode: "require",
        channel_binding: "require",
        cp_min: 5,
        cp_max: 10,
      },
    },
    log_config: SYNAPSE_PATHS.logConfig,
    media_store_path: SYNAPSE_PATHS.mediaStore,
    max_spider_size: "10M",
    url_preview_enabled: true,
    url_preview_ip_range_blacklist: [...blockedRanges],
    url_preview_url_blacklist: URL_PREVIEW_URL_BLOCKLIST,
    url_preview_accept_language: ["en-GB", "en;q=0.9", "de;q=0.8", "es;q=0.7", "fr;q=0.6", "*;q=0.5"],
    turn_uris: turnUris(turn),
    turn_shared_secret: later(turn.sharedSecret),
    turn_user_lifetime: "1h",
    turn_allow_guests: false,
    enable_registration: false,
    registration_shared_secret: later(options.registrationSharedSecret),
    allow_guest_access: false,
    report_stats: false,
    enable_metrics: false,
    macaroon_secret_key: later(options.macaroonSecretKey),
    form_secret: later(options.formSecret),
    signing_key_path: SYNAPSE_PATHS.signingKey,
    federation_client_minimum_tls_version: "1.2",
    // Synapse's default list lacks 0/8, 240/4, NAT64 and Teredo; this one also applies to
    // federation, push and identity-server requests.
    ip_range_blacklist: blockedRanges,
    trusted_key_servers: [{ server_name: "matrix.org" }],
    suppress_key_server_warning: true,
    password_config: {
      enabled: true,
      ...(options.passwordPepper !== undefined ? { pepper: later(options.passwordPepper) } : {}),
      policy: { enabled: true, ...PASSWORD_POLICY },
    },
    push: { include_content: false },
    encryption_enabled_by_default_for_room_type: "invite",
    user_directory: { enabled: true, search_all_users: true, prefer_local_users: true },
    server_notices: {
      system_mxid_localpart: "notices",
      system_mxid_display_name: "Server Notices",
      room_name: "Server Notices",
    },
  };

  if (smtp) {
    const implicitTls = smtp.implicitTls ?? false;
    doc.email = {
      smtp_host: later(smtp.host),
      smtp_port: smtp.port,
      ...(smtp.user !== undefined ? { smtp_user: later(smtp.user) } : {}),
      ...(smtp.password !== undefined ? { smtp_pass: later(smtp.password) } : {}),
      force_tls: implicitTls,
      require_transport_security: !implicitTls && (smtp.requireStartTls ?? true),
      enable_tls: true,
      notif_from: smtp.notifFrom ?? `Your %(app)s homeserver <noreply@${domain}>`,
      app_name: domain,
      client_base_url: `https://element.${domain}`,
      validation_token_lifetime: "15m",
    };
  }

  return { doc, deferred };
}

/** Logs go to stderr, which systemd hands to the journal (timestamps come from there). */
export function renderLogConfig(): string {
  return serialize({
    version: 1,
    formatters: { journal: { format: "%(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s" } },
    handlers: { console: { class: "logging.StreamHandler", formatter: "journal" } },
    // DEBUG on synapse.storage.SQL would log access tokens.
    loggers: { "synapse.storage.SQL": { level: "INFO" } },
    root: { level: "INFO", handlers: ["console"] },
    disable_existing_loggers: false,
  });
}

/**
 * The Debian package writes `server_name` and `report_stats` into conf.d, which Synapse reads
 * after homeserver.yaml; these overrides keep them equal to homeserver.yaml.
 */
export function renderConfDOverrides(domain: string): { serverName: string; reportStats: string } {
  return { serverName: serialize({ server_name: domain }), reportStats: serialize({ report_stats: false }) };
}

export interface BootstrapOptions {
  /** Local part of the admin user. */
  readonly adminUser: string;
  /** Talk to Synapse over `[::1]` instead of `127.0.0.1`. */
  readonly dualStack: boolean;
  /** @default 300 */
  readonly databaseTimeoutSeconds?: number;
  /** @default 300 */
  readonly healthTimeoutSeconds?: number;
  /** Pause between attempts while waiting. @default 5 */
  readonly retryIntervalSeconds?: number;
  /** How long to wait for the secret files Terraform pushes after the container started. @default 600 */
  readonly secretsTimeoutSeconds?: number;
}


/**
 * The bootstrap, run by synapse-bootstrap.service on every boot and retried by systemd until it
 * succeeds. Each step is idempotent; the signing key and the admin user are made only once,
 * and their evidence lives on the data volume, so a replaced container keeps them.
 */
export function renderSynapseBootstrap(options: BootstrapOptions): string {
  const p = SYNAPSE_PATHS;
  const local = options.dualStack ? "http://[::1]:8008" : "http://127.0.0.1:8008";
  return `#!/bin/bash
# Synapse bootstrap, rendered by the Synapse construct. Safe to run again: every step is idempotent.
set -euo pipefail

STAGING=${p.stagingDir}
CONFIG_DIR=${p.configDir}
DATA_DIR=${p.dataDir}
VENV=${p.venv}
SIGNING_KEY=${p.signingKey}
ADMIN_MARKER=${p.adminMarker}
SECRETS_FILE=${p.secretsConfig}
ADMIN_PASSWORD_FILE=${p.adminPasswordFile}
ADMIN_USER=${shellQuote(options.adminUser)}
LOCAL_URL=${local}
RETRY_INTERVAL=${options.retryIntervalSeconds ?? 5}
DATABASE_TIMEOUT=${options.databaseTimeoutSeconds ?? 300}
HEALTH_TIMEOUT=${options.healthTimeoutSeconds ?? 300}
SECRETS_TIMEOUT=${options.secretsTimeoutSeconds ?? SECRET_DELIVERY_TIMEOUT_SECONDS}
SYNAPSE_USER=matrix-synapse

log() { echo "synapse-bootstrap: $*"; }

# Calls "$@" every RETRY_INTERVAL seconds until it succeeds or <timeout> seconds have passed.
retry() {
  local what=$1 timeout=$2 start=$SECONDS output
  shift 2
  until output=$("$@" 2>&1); do
    if [ $((SECONDS - start)) -ge "$timeout" ]; then
      log "gave up waiting for $what after $timeout seconds: $output"
      return 1
    fi
    log "waiting for $what ($((SECONDS - start)) of $timeout seconds)"
    sleep "$RETRY_INTERVAL"
  done
  log "$what: ok"
}

delivered() {
  [ -s "$1" ] || { echo "$1 is missing: Terraform pushes it (lxd_instance_file or lxd_container_file) after the container started; was the apply interrupted?"; return 1; }
}

database_answers() {
  "$VENV/bin/python" - "$CONFIG_DIR/conf.d/secrets.yaml" <<'PY'
import sys, yaml, psycopg2
with open(sys.argv[1]) as f:
    args = yaml.safe_load(f)["database"]["args"]
# cp_* are connection-pool settings of Synapse, not libpq parameters.
psycopg2.connect(connect_timeout=5, **{k: v for k, v in args.items() if not k.startswith("cp_")}).close()
PY
}

synapse_healthy() {
  "$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/health", timeout=5)' "$LOCAL_URL"
}

id "$SYNAPSE_USER" >/dev/null 2>&1 || { log "user $SYNAPSE_USER is missing: is matrix-synapse-py3 installed?"; exit 1; }
group=$(id -gn "$SYNAPSE_USER")

retry "the secrets file $SECRETS_FILE" "$SECRETS_TIMEOUT" delivered "$SECRETS_FILE"
[ -e "$ADMIN_MARKER" ] || retry "the admin password file $ADMIN_PASSWORD_FILE" "$SECRETS_TIMEOUT" delivered "$ADMIN_PASSWORD_FILE"

log "installing the configuration"
install -d -o root -g "$group" -m 0750 "$CONFIG_DIR" "$CONFIG_DIR/conf.d"
changed=0
for file in homeserver.yaml log.yaml conf.d/server_name.yaml conf.d/report_stats.yaml conf.d/secrets.yaml; do
  if ! cmp -s "$STAGING/$file" "$CONFIG_DIR/$file"; then
    install -o root -g "$group" -m 0640 "$STAGING/$file" "$CONFIG_DIR/$file"
    changed=1
  fi
done

# The data volume outlives containers, whose matrix-synapse uid may differ.
if [ "$(stat -c %u "$DATA_DIR")" != "$(id -u "$SYNAPSE_USER")" ]; then
  log "handing $DATA_DIR to $SYNAPSE_USER"
  chown -R "$SYNAPSE_USER:$group" "$DATA_DIR"
fi
chmod 0750 "$DATA_DIR"
install -d -o "$SYNAPSE_USER" -g "$group" -m 0750 "$DATA_DIR/media"

if [ ! -s "$SIGNING_KEY" ]; then
  log "generating the signing key"
  (cd "$DATA_DIR" && runuser -u "$SYNAPSE_USER" -- "$VENV/bin/python" -m synapse.app.homeserver \\
    --config-path "$CONFIG_DIR/homeserver.yaml" --config-path "$CONFIG_DIR/conf.d/" --generate-keys)
fi

retry "the database" "$DATABASE_TIMEOUT" database_answers

systemctl enable matrix-synapse.service
if [ "$changed" = 1 ] && systemctl is-active --quiet matrix-synapse.service; then
  log "configuration changed: restarting Synapse"
  systemctl restart matrix-synapse.service
else
  systemctl start matrix-synapse.service
fi
retry "Synapse at $LOCAL_URL/health" "$HEALTH_TIMEOUT" synapse_healthy

if [ ! -e "$ADMIN_MARKER" ]; then
  log "creating the admin user $ADMIN_USER"
  # The shared secret comes from the secrets file, the password from its file: neither is on a command line.
  retry "admin user registration" 60 "$VENV/bin/register_new_matrix_user" \\
    --config "$CONFIG_DIR/conf.d/secrets.yaml" --user "$ADMIN_USER" \\
    --password-file "$ADMIN_PASSWORD_FILE" --admin --exists-ok "$LOCAL_URL"
  touch "$ADMIN_MARKER"
fi
log "done"
`;
}

const BOOTSTRAP_UNIT = `[Unit]
Description=Synapse bootstrap: configuration, signing key, database, admin user
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=${SYNAPSE_PATHS.bootstrapScript}
Restart=on-failure
RestartSec=30
TimeoutStartSec=30min
PrivateTmp=true

[Install]
WantedBy=multi-user.target
`;

/**
 * Stock image: adds matrix.org's apt repository (refusing its key unless the fingerprint
 * matches) and installs exactly `packageVersion` without starting it; the bootstrap does that.
 */
export function renderSynapseInstall(packageVersion: string): string {
  const apt = MATRIX_ORG_APT;
  const keyring = "/etc/apt/keyrings/matrix-org-archive-keyring.gpg";
  return `#!/bin/bash
# Installs matrix-synapse-py3 from matrix.org's Debian repository, rendered by the Synapse construct.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

install -d -m 0755 /etc/apt/keyrings
curl -fsSL --retry 5 -o ${keyring}.download ${apt.keyUrl}
GNUPGHOME=$(mktemp -d)
export GNUPGHOME
# Exactly one primary key, and it must be the documented one.
fingerprints=$(gpg --show-keys --with-colons ${keyring}.download | awk -F: '$1 == "pub" { want = 1 } $1 == "fpr" && want { print $10; want = 0 }')
rm -rf "$GNUPGHOME"
if [ "$fingerprints" != "${apt.keyFingerprint}" ]; then
  echo "synapse-install: refusing the matrix.org archive key: fingerprint(s) $fingerprints, expected ${apt.keyFingerprint}" >&2
  exit 1
fi
mv ${keyring}.download ${keyring}
chmod 0644 ${keyring}
echo "deb [signed-by=${keyring}] ${apt.url} ${apt.suite} main" > /etc/apt/sources.list.d/matrix-org.list

apt-get update -q
# Keep the package from starting Synapse with its own configuration.
printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d
chmod 0755 /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -q --no-install-recommends matrix-synapse-py3=${packageVersion}
`;
}

/** Debian packages the install script needs on the stock image. */
export const SYNAPSE_INSTALL_PACKAGES = ["ca-certificates", "curl", "gnupg"];

export interface SynapseFilesOptions {
  readonly homeserver: HomeserverOptions;
  readonly bootstrap: BootstrapOptions;
  /** The Debian package version to install (stock image only). @default none (a pre-built image) */
  readonly packageVersion?: string;
}

/**
 * Every file cloud-init writes for Synapse: none holds a secret (synapseSecretFiles carries
 * those). The staging copies are root-only anyway; the bootstrap installs them for the group.
 */
export function synapseFiles(options: SynapseFilesOptions): CloudInitFile[] {
  const p = SYNAPSE_PATHS;
  const overrides = renderConfDOverrides(options.homeserver.domain);
  const staged = (path: string, content: string): CloudInitFile => ({ path, content, permissions: "0600" });
  return [
    staged(`${p.stagingDir}/homeserver.yaml`, renderHomeserverConfig(options.homeserver)),
    staged(`${p.stagingDir}/log.yaml`, renderLogConfig()),
    staged(`${p.stagingDir}/conf.d/server_name.yaml`, overrides.serverName),
    staged(`${p.stagingDir}/conf.d/report_stats.yaml`, overrides.reportStats),
    { path: p.bootstrapScript, content: renderSynapseBootstrap(options.bootstrap), permissions: "0755" },
    { path: p.bootstrapUnit, content: BOOTSTRAP_UNIT },
    ...(options.packageVersion !== undefined
      ? [{ path: p.installScript, content: renderSynapseInstall(options.packageVersion), permissions: "0755" }]
      : []),
  ];
}

/**
 * Synapse's secret files, pushed root-only (0600) through the LXD API: the sections of the
 * configuration that hold secrets, and the admin's initial password (any characters: the file
 * holds it verbatim). The bootstrap waits for both and installs the first as conf.d/secrets.yaml
 * (root, the Synapse group, 0640); the password file stays root-only.
 */
export function synapseSecretFiles(homeserver: HomeserverOptions, adminPassword: string): SecretFile[] {
  return [
    { name: "synapse-config", path: SYNAPSE_PATHS.secretsConfig, content: renderSecretsConfig(homeserver) },
    { name: "admin-password", path: SYNAPSE_PATHS.adminPasswordFile, content: adminPassword },
  ];
}

/** Runs the bootstrap now (blocking, so cloud-init's status tells whether it worked) and on every boot. */
export const SYNAPSE_BOOTSTRAP_START = [
  "systemctl daemon-reload",
  "systemctl enable synapse-bootstrap.service",
  "systemctl start synapse-bootstrap.service",
];
