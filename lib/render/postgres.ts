/**
 * PostgreSQL 15 (Debian 12) in a module container: the cluster configuration, the client
 * authentication rules, a bootstrap script that initialises the cluster on the data volume
 * once and adopts it after the container is replaced, and the machinery that creates the
 * databases projects register in Consul KV (`service/postgres/databases/<db>/*`):
 * consul-template renders the registrations as JSON, a root-only program turns the passwords
 * delivered to the container (never through KV) into SCRAM-SHA-256 verifiers, and a static SQL
 * script validates the registrations and creates the roles and databases with quoted
 * identifiers, so a registration cannot inject SQL. Clients log in with SCRAM over TLS only.
 */
import type { CloudInitFile } from "./cloud-init";
import { KV_PREFIX } from "../kv";
import { renderNftablesTemplate, FirewallRule } from "./nftables";

export const POSTGRES_VERSION = "15";
export const POSTGRES_PORT = 5432;
/** Mount point of the data volume. */
export const POSTGRES_DATA_MOUNT = "/srv/postgresql";
/** The cluster's data directory, on the volume; the major version in the path allows a side-by-side pg_upgrade. */
export const POSTGRES_DATA_DIR = `${POSTGRES_DATA_MOUNT}/${POSTGRES_VERSION}/main`;
/** Debian's cluster configuration directory (postgresql-common finds the cluster here). */
export const POSTGRES_CONF_DIR = `/etc/postgresql/${POSTGRES_VERSION}/main`;
export const POSTGRES_BOOTSTRAP_SCRIPT = "/usr/local/sbin/postgres-bootstrap";
export const POSTGRES_ENSURE_SCRIPT = "/usr/local/sbin/postgres-ensure-databases";
export const POSTGRES_ENSURE_SQL = "/usr/local/share/postgres-ensure-databases.sql";
export const POSTGRES_VERIFIERS_PROGRAM = "/usr/local/sbin/postgres-registration-verifiers";
/** The registrations as consul-template renders them: `{ "<db>": { "owner": …, … } }`. */
export const POSTGRES_DATABASES_JSON = "/etc/postgresql/databases.json";
/** The registrations with the verifiers computed from the delivered passwords added (root and postgres only). */
export const POSTGRES_REGISTRATIONS_JSON = "/etc/postgresql/registrations.json";
/**
 * Root-only directory the registrations' passwords are delivered to (one file per database,
 * named after it, written by PostgresDatabase through the LXD API). Not on the data volume: a
 * replaced container has no passwords until the registrations are applied again, and the roles
 * keep their verifiers meanwhile.
 */
export const POSTGRES_PASSWORDS_DIR = "/etc/postgresql/registration-passwords";
/** The server's TLS key and self-signed certificate, made once on the data volume. */
export const POSTGRES_TLS_DIR = `${POSTGRES_DATA_MOUNT}/tls`;
export const POSTGRES_UNIT = `postgresql@${POSTGRES_VERSION}-main.service`;

/** Keys under `service/postgres/databases/<db>/` (lib/kv.ts kvPaths.postgresDatabaseSetting). */
export type PostgresDatabaseSetting = "owner" | "encoding" | "lc-collate" | "lc-ctype" | "template" | "password-sha256" | "password-verifier";

/** Role and database names: lower-case letters, digits and underscores, starting with a letter, at most 63 characters. */
export const IDENTIFIER_PATTERN = "^[a-z][a-z0-9_]{0,62}$";
export const IDENTIFIER_RULE = "lower-case letters, digits and underscores, starting with a letter, at most 63 characters";
/** Names a registration may not take: the built-in databases, the superuser and the reserved `pg_` roles. */
export const RESERVED_DATABASES: readonly string[] = ["postgres", "template0", "template1"];
export const RESERVED_ROLES: readonly string[] = ["postgres", "public"];

export function isPostgresIdentifier(value: string): boolean {
  return new RegExp(IDENTIFIER_PATTERN).test(value);
}

/** An encoding name such as UTF8. */
export const ENCODING_PATTERN = "^[A-Za-z0-9_]{1,32}$";
/** A locale name such as C, C.UTF-8 or en_US.UTF-8. */
export const LOCALE_PATTERN = "^[A-Za-z0-9_.@-]{1,64}$";

/** The verifier PostgreSQL stores for an md5 password: `md5` + md5(password + role). Password-equivalent, refused. */
export const MD5_VERIFIER_PATTERN = "^md5[0-9a-f]{32}$";
/** A SCRAM-SHA-256 verifier as PostgreSQL stores it: `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`. */
export const SCRAM_VERIFIER_PATTERN = "^SCRAM-SHA-256\\$[1-9][0-9]{0,6}:[A-Za-z0-9+/]+={0,2}\\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$";
/** The hex SHA-256 of a delivered password, published in KV to say which password is current. */
export const PASSWORD_SHA256_PATTERN = "^[0-9a-f]{64}$";
/** PostgreSQL's default SCRAM iteration count. */
export const SCRAM_ITERATIONS = 4096;

export interface PostgresConfigOptions {
  /** Addresses to listen on (the container's static addresses). */
  readonly listenAddresses: readonly string[];
  /** @default 5432 */
  readonly port?: number;
  /** Further postgresql.conf settings (tuning). @default none */
  readonly settings?: Readonly<Record<string, string | number | boolean>>;
}

/** Settings the renderer owns; `settings` may not override them. */
export const MANAGED_SETTINGS: readonly string[] = [
  "data_directory",
  "hba_file",
  "ident_file",
  "external_pid_file",
  "cluster_name",
  "listen_addresses",
  "port",
  "unix_socket_directories",
  "password_encryption",
  "ssl",
  "ssl_cert_file",
  "ssl_key_file",
  "ssl_min_protocol_version",
  "include",
  "include_dir",
  "include_if_exists",
  "config_file",
];

const confValue = (value: string | number | boolean): string => {
  if (typeof value === "number") return String(value);
  if (typeof value === "boolean") return value ? "on" : "off";
  if (/[\r\n]/.test(value)) throw new Error(`postgresql.conf values must be single lines, got ${JSON.stringify(value)}`);
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
};

export function renderPostgresqlConf(options: PostgresConfigOptions): string {
  const settings: [string, string | number | boolean][] = [
    ["data_directory", POSTGRES_DATA_DIR],
    ["hba_file", `${POSTGRES_CONF_DIR}/pg_hba.conf`],
    ["ident_file", `${POSTGRES_CONF_DIR}/pg_ident.conf`],
    ["external_pid_file", `/var/run/postgresql/${POSTGRES_VERSION}-main.pid`],
    ["cluster_name", `${POSTGRES_VERSION}/main`],
    ["listen_addresses", options.listenAddresses.join(",")],
    ["port", options.port ?? POSTGRES_PORT],
    ["unix_socket_directories", "/var/run/postgresql"],
    ["password_encryption", "scram-sha-256"],
    // The bridge is shared by every container on the host: clients must use TLS (pg_hba), with
    // the self-signed certificate the bootstrap makes once on the data volume.
    ["ssl", true],
    ["ssl_cert_file", `${POSTGRES_TLS_DIR}/server.crt`],
    ["ssl_key_file", `${POSTGRES_TLS_DIR}/server.key`],
    ["ssl_min_protocol_version", "TLSv1.2"],
    ["max_connections", 100],
    ["shared_buffers", "128MB"],
    ["dynamic_shared_memory_type", "posix"],
    ["log_line_prefix", "%m [%p] %q%u@%d "],
    ["log_timezone", "Etc/UTC"],
    ["timezone", "Etc/UTC"],
    ["datestyle", "iso, ymd"],
    ["lc_messages", "C"],
    ["lc_monetary", "C"],
    ["lc_numeric", "C"],
    ["lc_time", "C"],
    ["default_text_search_config", "pg_catalog.english"],
  ];
  const extra = options.settings ?? {};
  for (const key of Object.keys(extra)) {
    if (!/^[a-z][a-z0-9_.]*$/.test(key)) throw new Error(`not a postgresql.conf setting name: ${JSON.stringify(key)}`);
    if (MANAGED_SETTINGS.includes(key)) throw new Error(`postgresql.conf setting ${key} is managed by the module`);
  }
  const merged = new Map<string, string | number | boolean>(settings);
  for (const [key, value] of Object.entries(extra)) merged.set(key, value);
  return [
    "# PostgreSQL configuration, rendered by matrix-lxd-cdktf; replaced with the container.",
    ...[...merged].map(([key, value]) => `${key} = ${confValue(value)}`),
    "",
  ].join("\n");
}

export interface PgHbaOptions {
  /** Networks whose clients may log in with a password (the host network). */
  readonly clientCidrs: readonly string[];
}

/**
 * Client authentication: the superuser only through the local socket as the `postgres` system
 * user (peer), never over the network; every other role from the host network over TLS with
 * SCRAM-SHA-256 only (`scram-sha-256` refuses roles whose stored password is an md5 hash, and
 * SCRAM never sends the password). Connections without TLS are refused.
 */
export function renderPgHba(options: PgHbaOptions): string {
  const row = (...columns: string[]) => columns.map((c, i) => (i < columns.length - 1 ? c.padEnd(i === 3 ? 24 : 10) : c)).join(" ").trimEnd();
  return [
    "# Client authentication, rendered by matrix-lxd-cdktf; the first matching line decides.",
    row("# TYPE", "DATABASE", "USER", "ADDRESS", "METHOD"),
    row("local", "all", "postgres", "", "peer"),
    ...options.clientCidrs.map((cidr) => row("host", "all", "postgres", cidr, "reject")),
    ...options.clientCidrs.map((cidr) => row("hostnossl", "all", "all", cidr, "reject")),
    ...options.clientCidrs.map((cidr) => row("hostssl", "all", "all", cidr, "scram-sha-256")),
    "",
  ].join("\n");
}

/** The consul-template template: every registration, as JSON (an empty object when there are none). */
export const POSTGRES_DATABASES_TEMPLATE = `{{ tree \`${KV_PREFIX.postgres}/databases\` | explode | toJSON }}\n`;

/**
 * POSTGRES_VERIFIERS_PROGRAM (python3, run as root): reads the registrations, and for each one
 * that names its password by `password-sha256`, reads the password delivered to
 * POSTGRES_PASSWORDS_DIR/<db>, checks it against that digest and adds the SCRAM-SHA-256 verifier
 * PostgreSQL will store (`password-verifier`). Only verifiers leave this program, so the SQL
 * script, psql and the server log never see a password. The salt is derived from the password
 * and the role, so the verifier is the same on every run and the role is altered only when the
 * password changes. Usage: `<program> <registrations.json> <passwords-dir>`; JSON on stdout.
 */
export function renderVerifiersProgram(): string {
  return `#!/usr/bin/python3
import base64, hashlib, hmac, json, os, re, sys

IDENTIFIER = re.compile(r"${IDENTIFIER_PATTERN.replace("$", "\\Z")}")
DIGEST = re.compile(r"${PASSWORD_SHA256_PATTERN.replace("$", "\\Z")}")
ITERATIONS = ${SCRAM_ITERATIONS}


def scram_verifier(password, role):
    # RFC 5802 / RFC 7677 as PostgreSQL stores it. Printable ASCII is its own SASLprep form.
    salt = hmac.new(password, b"salt:" + role.encode(), hashlib.sha256).digest()[:16]
    salted = hashlib.pbkdf2_hmac("sha256", password, salt, ITERATIONS)
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", hashlib.sha256).digest()).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda raw: base64.b64encode(raw).decode()
    return "SCRAM-SHA-256$%d:%s$%s:%s" % (ITERATIONS, b64(salt), b64(stored_key), b64(server_key))


def main(spec_file, passwords_dir):
    with open(spec_file) as f:
        spec = json.load(f)
    for db, registration in sorted(spec.items()):
        if not isinstance(registration, dict) or "password-sha256" not in registration:
            continue
        # The verifier comes from the delivered password only, never from KV.
        registration.pop("password-verifier", None)
        digest, owner = registration["password-sha256"], registration.get("owner")
        if not (IDENTIFIER.match(db) and isinstance(owner, str) and IDENTIFIER.match(owner) and isinstance(digest, str) and DIGEST.match(digest)):
            continue  # the SQL script reports the invalid registration
        try:
            with open(os.path.join(passwords_dir, db), "rb") as f:
                password = f.read()
        except FileNotFoundError:
            print("postgres-registration-verifiers: no password delivered for %r" % db, file=sys.stderr)
            continue
        if not hmac.compare_digest(hashlib.sha256(password).hexdigest(), digest):
            print("postgres-registration-verifiers: the password delivered for %r is not the one its registration names" % db, file=sys.stderr)
            continue
        if not re.fullmatch(rb"[!-~]{16,1024}", password):
            print("postgres-registration-verifiers: the password delivered for %r must be 16-1024 printable ASCII characters" % db, file=sys.stderr)
            continue
        registration["password-verifier"] = scram_verifier(password, owner)
    json.dump(spec, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
`;
}

/**
 * The SQL run by POSTGRES_ENSURE_SCRIPT (psql, as postgres, with `-v spec_file=<json>`, the
 * output of POSTGRES_VERIFIERS_PROGRAM). Idempotent; creates what is missing, sets passwords
 * that differ, never changes an owner or drops.
 */
export function renderEnsureDatabasesSql(): string {
  const valid = [
    `db ~ '${IDENTIFIER_PATTERN}'`,
    `db NOT IN (${RESERVED_DATABASES.map((d) => `'${d}'`).join(", ")})`,
    `owner ~ '${IDENTIFIER_PATTERN}'`,
    `owner NOT IN (${RESERVED_ROLES.map((r) => `'${r}'`).join(", ")})`,
    "owner !~ '^pg_'",
    `encoding ~ '${ENCODING_PATTERN}'`,
    `lc_collate ~ '${LOCALE_PATTERN}'`,
    `lc_ctype ~ '${LOCALE_PATTERN}'`,
    `template ~ '${IDENTIFIER_PATTERN}'`,
    `(digest IS NULL OR digest ~ '${PASSWORD_SHA256_PATTERN}')`,
  ];
  return `-- Creates the roles and databases registered under ${KV_PREFIX.postgres}/databases in Consul KV.
-- Every value is validated here and quoted with format() (%I identifiers, %L literals), so a
-- registration cannot inject SQL, and it cannot take over the superuser or a reserved role.
-- Roles get SCRAM-SHA-256 verifiers only: an md5 verifier logs in as the role to whoever reads it.
-- Idempotent: creates what is missing, updates its own roles' passwords, never drops anything.
\\set ON_ERROR_STOP on
\\set spec \`cat :'spec_file'\`

CREATE TEMPORARY TABLE registration AS
SELECT r.key AS db,
       r.value->>'owner' AS owner,
       r.value->>'password-verifier' AS verifier,
       r.value->>'password-sha256' AS digest,
       coalesce(r.value->>'encoding', 'UTF8') AS encoding,
       coalesce(r.value->>'lc-collate', 'C') AS lc_collate,
       coalesce(r.value->>'lc-ctype', 'C') AS lc_ctype,
       coalesce(r.value->>'template', 'template0') AS template
  FROM jsonb_each(:'spec'::jsonb) AS r
 WHERE jsonb_typeof(r.value) = 'object';

ALTER TABLE registration ADD COLUMN valid boolean;
UPDATE registration SET valid = coalesce(
       ${valid.join("\n   AND ")},
       false);
-- Without a SCRAM verifier (none delivered yet, or only a refused md5 one) a registration waits.
ALTER TABLE registration ADD COLUMN ready boolean;
UPDATE registration SET ready = valid AND coalesce(verifier ~ '${SCRAM_VERIFIER_PATTERN}', false);

-- One role per owner; should two registrations share an owner, the first database's password wins.
-- A role that already owns databases takes its password only from the registration of one of
-- them, so a registration that merely names an existing owner cannot take that role over.
CREATE TEMPORARY VIEW wanted_role AS
SELECT DISTINCT ON (g.owner) g.owner, g.verifier
  FROM registration g LEFT JOIN pg_database d ON d.datname = g.db
 WHERE g.ready
   AND (pg_get_userbyid(d.datdba) = g.owner
        OR NOT EXISTS (SELECT FROM pg_database o WHERE pg_get_userbyid(o.datdba) = g.owner))
 ORDER BY g.owner, g.db;

SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', w.owner, w.verifier)
  FROM wanted_role w
 WHERE NOT EXISTS (SELECT FROM pg_roles r WHERE r.rolname = w.owner) \\gexec

SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', w.owner, w.verifier)
  FROM wanted_role w JOIN pg_authid a ON a.rolname = w.owner
 WHERE NOT a.rolsuper AND (NOT a.rolcanlogin OR a.rolpassword IS DISTINCT FROM w.verifier) \\gexec

SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L LC_COLLATE %L LC_CTYPE %L TEMPLATE %I',
              g.db, g.owner, g.encoding, g.lc_collate, g.lc_ctype, g.template)
  FROM registration g
 WHERE g.ready AND NOT EXISTS (SELECT FROM pg_database d WHERE d.datname = g.db)
   AND EXISTS (SELECT FROM pg_roles r WHERE r.rolname = g.owner) \\gexec

-- What was left undone and why, one line each (consul-template's log). An existing database
-- keeps its owner: a registration cannot hand another project's data over.
\\pset tuples_only on
SELECT problem FROM (
  SELECT db, format('skipping the invalid registration %L', db) FROM registration WHERE NOT valid
  UNION ALL
  SELECT db, format('refusing the md5 password-verifier of %L: it logs in as the role; publish password-sha256 and deliver the password instead', db)
    FROM registration WHERE valid AND verifier ~ '${MD5_VERIFIER_PATTERN}'
  UNION ALL
  SELECT db, format('no password for %L yet: its role and database wait for one', db)
    FROM registration WHERE valid AND NOT ready AND verifier IS NULL
  UNION ALL
  SELECT db, format('skipping %L: its password-verifier is not a SCRAM-SHA-256 verifier', db)
    FROM registration WHERE valid AND NOT ready AND verifier !~ '${MD5_VERIFIER_PATTERN}'
  UNION ALL
  SELECT g.db, format('database %I belongs to %I, not %I: left as it is', g.db, pg_get_userbyid(d.datdba), g.owner)
    FROM registration g JOIN pg_database d ON d.datname = g.db
   WHERE g.valid AND pg_get_userbyid(d.datdba) <> g.owner
) AS p (db, problem) ORDER BY db;

-- Only the owner (and the superuser) may connect: projects sharing the server stay apart.
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', g.db)
  FROM registration g JOIN pg_database d ON d.datname = g.db
 WHERE g.valid AND (d.datacl IS NULL OR EXISTS (SELECT FROM aclexplode(d.datacl) a WHERE a.grantee = 0)) \\gexec
`;
}

/** POSTGRES_ENSURE_SCRIPT: run by consul-template after each render of POSTGRES_DATABASES_JSON. */
export function renderEnsureDatabasesScript(): string {
  return `#!/bin/sh
# Creates the databases registered in Consul KV (see ${POSTGRES_ENSURE_SQL}).
set -eu
# The registrations and the verifiers made from them: readable by root and postgres only.
for file in ${POSTGRES_DATABASES_JSON} ${POSTGRES_REGISTRATIONS_JSON}; do
  touch "$file"
  chgrp postgres "$file"
  chmod 0640 "$file"
done
${POSTGRES_VERIFIERS_PROGRAM} ${POSTGRES_DATABASES_JSON} ${POSTGRES_PASSWORDS_DIR} > ${POSTGRES_REGISTRATIONS_JSON}
tries=0
until runuser -u postgres -- pg_isready -q; do
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then
    echo "postgres-ensure-databases: PostgreSQL is not accepting connections" >&2
    exit 1
  fi
  sleep 2
done
exec runuser -u postgres -- psql -X -q -d postgres -v spec_file=${POSTGRES_REGISTRATIONS_JSON} -f ${POSTGRES_ENSURE_SQL}
`;
}

/**
 * POSTGRES_BOOTSTRAP_SCRIPT, run once per container: initialise the cluster on the data volume
 * when the volume is empty, adopt the existing one otherwise (the container was replaced), and
 * refuse anything else (a foreign directory, another major version) rather than touch data.
 */
export function renderBootstrapScript(): string {
  return `#!/bin/sh
set -eu
data=${POSTGRES_DATA_DIR}
conf=${POSTGRES_CONF_DIR}

# An image may have started its own default cluster before this runs.
systemctl stop ${POSTGRES_UNIT} 2>/dev/null || true

if [ -f "$data/PG_VERSION" ]; then
  version="$(cat "$data/PG_VERSION")"
  if [ "$version" != "${POSTGRES_VERSION}" ]; then
    echo "postgres-bootstrap: $data holds a PostgreSQL $version cluster, this is ${POSTGRES_VERSION}; upgrade it with pg_upgrade first" >&2
    exit 1
  fi
  echo "postgres-bootstrap: adopting the existing cluster in $data"
  # The postgres user's id may differ from the previous container's.
  chown -R postgres:postgres ${POSTGRES_DATA_MOUNT}/${POSTGRES_VERSION}
elif [ -d "$data" ] && [ -n "$(ls -A "$data")" ]; then
  echo "postgres-bootstrap: $data is not empty but holds no cluster; refusing to touch it" >&2
  exit 1
else
  install -d -o postgres -g postgres -m 0700 ${POSTGRES_DATA_MOUNT}/${POSTGRES_VERSION} "$data"
  runuser -u postgres -- /usr/lib/postgresql/${POSTGRES_VERSION}/bin/initdb --pgdata="$data" \\
    --encoding=UTF8 --locale=C --auth-local=peer --auth-host=scram-sha-256 --username=postgres
fi

# The TLS key and certificate are made once and kept on the volume with the cluster.
if [ ! -f ${POSTGRES_TLS_DIR}/server.key ] || [ ! -f ${POSTGRES_TLS_DIR}/server.crt ]; then
  install -d -o postgres -g postgres -m 0700 ${POSTGRES_TLS_DIR}
  runuser -u postgres -- sh -c '${tlsCertificateCommand(POSTGRES_TLS_DIR, "$(hostname)")}'
fi
chown -R postgres:postgres ${POSTGRES_TLS_DIR}

# The registrations' passwords are delivered here; only root reads them.
install -d -o root -g root -m 0700 ${POSTGRES_PASSWORDS_DIR}
chmod 0700 ${POSTGRES_PASSWORDS_DIR}

chown -R postgres:postgres "$conf"
echo auto > "$conf/start.conf"
systemctl daemon-reload
systemctl enable postgresql.service
systemctl start ${POSTGRES_UNIT}
`;
}

/**
 * Shell that makes the server's private key and a self-signed certificate in `dir` (run as the
 * user that owns them). Clients use `sslmode=require` with `channel_binding=require`: nobody
 * checks the certificate, but SCRAM with channel binding ties the login to this TLS session, so
 * a machine in the middle can neither read the traffic nor relay the login.
 */
export function tlsCertificateCommand(dir: string, commonName: string): string {
  return [
    "umask 077",
    `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 36500 -subj "/CN=${commonName}" -keyout ${dir}/server.key.new -out ${dir}/server.crt.new 2>/dev/null`,
    `mv ${dir}/server.key.new ${dir}/server.key`,
    `mv ${dir}/server.crt.new ${dir}/server.crt`,
  ].join(" && ");
}

/** Files that make the container a PostgreSQL server (besides consul-template's). */
export function postgresFiles(options: PostgresConfigOptions & PgHbaOptions): CloudInitFile[] {
  return [
    { path: `${POSTGRES_CONF_DIR}/postgresql.conf`, content: renderPostgresqlConf(options) },
    { path: `${POSTGRES_CONF_DIR}/pg_hba.conf`, content: renderPgHba(options), permissions: "0640" },
    { path: `${POSTGRES_CONF_DIR}/pg_ident.conf`, content: "# No user name maps.\n", permissions: "0640" },
    // Written before the package is installed: postgresql-common then sees a cluster and does
    // not create its default one, and "manual" keeps it from starting before the bootstrap.
    { path: `${POSTGRES_CONF_DIR}/start.conf`, content: "manual\n" },
    // Listen on the static addresses even when they come up after PostgreSQL starts.
    { path: "/etc/sysctl.d/60-postgres-nonlocal-bind.conf", content: "net.ipv4.ip_nonlocal_bind = 1\nnet.ipv6.ip_nonlocal_bind = 1\n" },
    { path: POSTGRES_BOOTSTRAP_SCRIPT, content: renderBootstrapScript(), permissions: "0755" },
    { path: POSTGRES_ENSURE_SCRIPT, content: renderEnsureDatabasesScript(), permissions: "0755" },
    { path: POSTGRES_ENSURE_SQL, content: renderEnsureDatabasesSql() },
    { path: POSTGRES_VERIFIERS_PROGRAM, content: renderVerifiersProgram(), permissions: "0755" },
    {
      path: "/etc/systemd/system/consul-template.service.d/postgres.conf",
      content: `[Unit]\n# The database script needs the server.\nAfter=${POSTGRES_UNIT}\n`,
    },
  ];
}

/** First-boot commands, before consul-template starts. */
export function postgresCommands(): string[] {
  return ["sysctl -p /etc/sysctl.d/60-postgres-nonlocal-bind.conf", POSTGRES_BOOTSTRAP_SCRIPT];
}

// ------------------------------------------------------------------ firewall

/** Checks on a client address from KV (RE2): a dotted IPv4 address, or IPv6 hextets with at most one `::`. */
export const POSTGRES_CLIENT_PATTERNS = {
  ipv4: "^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$",
  ipv6: "^[0-9a-f]{0,4}(:[0-9a-f]{0,4}){2,7}$",
} as const;

/**
 * The PostgreSQL server's nftables ruleset as a consul-template template: `rules`, plus port
 * 5432 for each client address under `service/postgres/clients` (written by PostgresDatabase).
 * An address that fails the checks is left out, so one bad key cannot make `nft -f` refuse the
 * whole ruleset.
 */
export function renderPostgresNftablesTemplate(rules: readonly FirewallRule[]): string {
  const pattern = (family: keyof typeof POSTGRES_CLIENT_PATTERNS) => `(regexMatch \`${POSTGRES_CLIENT_PATTERNS[family]}\` .Value)`;
  const accept = (family: "ip" | "ip6") => `\n    ${family} saddr {{ .Value }} tcp dport ${POSTGRES_PORT} accept comment "PostgreSQL client {{ .Key }}"`;
  const range =
    `{{- range ls \`${KV_PREFIX.postgres}/clients\` }}{{- if regexMatch \`^[a-z0-9_-]+$\` .Key }}` +
    `{{- if ${pattern("ipv4")} }}${accept("ip")}` +
    `{{- else if and ${pattern("ipv6")} (not (regexMatch \`::.*::\` .Value)) }}${accept("ip6")}` +
    "{{- end }}{{- end }}{{- end }}";
  return renderNftablesTemplate(rules, range);
}
