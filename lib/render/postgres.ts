/**
 * PostgreSQL 15 (Debian 12) in a module container: the cluster configuration, the client
 * authentication rules, a bootstrap script that initialises the cluster on the data volume
 * once and adopts it after the container is replaced, and the machinery that creates the
 * databases projects register in Consul KV (`service/postgres/databases/<db>/*`):
 * consul-template renders the registrations as JSON, and a static SQL script validates them and
 * creates the roles and databases with quoted identifiers, so a registration cannot inject SQL.
 */
import type { CloudInitFile } from "./cloud-init";
import { KV_PREFIX } from "../kv";

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
/** The registrations as consul-template renders them: `{ "<db>": { "owner": …, … } }`. */
export const POSTGRES_DATABASES_JSON = "/etc/postgresql/databases.json";
export const POSTGRES_UNIT = `postgresql@${POSTGRES_VERSION}-main.service`;

/** Keys under `service/postgres/databases/<db>/` (lib/kv.ts kvPaths.postgresDatabaseSetting). */
export type PostgresDatabaseSetting = "owner" | "encoding" | "lc-collate" | "lc-ctype" | "template" | "password-verifier";

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

/** The verifier PostgreSQL stores for an md5 password: `md5` + md5(password + role). */
export const MD5_VERIFIER_PATTERN = "^md5[0-9a-f]{32}$";

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
    // Clients are other containers on the host bridge; the firewall and pg_hba admit only those.
    ["ssl", false],
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
 * user (peer), never over the network; every other role from the host network with a password.
 * `md5` because the registered verifiers are md5 hashes (computed by Terraform, which cannot
 * compute SCRAM); for roles with a SCRAM verifier the `md5` method negotiates SCRAM.
 */
export function renderPgHba(options: PgHbaOptions): string {
  const row = (...columns: string[]) => columns.map((c, i) => (i < columns.length - 1 ? c.padEnd(i === 3 ? 24 : 10) : c)).join(" ").trimEnd();
  return [
    "# Client authentication, rendered by matrix-lxd-cdktf; the first matching line decides.",
    row("# TYPE", "DATABASE", "USER", "ADDRESS", "METHOD"),
    row("local", "all", "postgres", "", "peer"),
    ...options.clientCidrs.map((cidr) => row("host", "all", "postgres", cidr, "reject")),
    ...options.clientCidrs.map((cidr) => row("host", "all", "all", cidr, "md5")),
    "",
  ].join("\n");
}

/** The consul-template template: every registration, as JSON (an empty object when there are none). */
export const POSTGRES_DATABASES_TEMPLATE = `{{ tree \`${KV_PREFIX.postgres}/databases\` | explode | toJSON }}\n`;

/**
 * The SQL run by POSTGRES_ENSURE_SCRIPT (psql, as postgres, with `-v spec_file=<json>`).
 * Idempotent; creates what is missing, sets passwords that differ, never changes an owner or drops.
 */
export function renderEnsureDatabasesSql(): string {
  const valid = [
    `db ~ '${IDENTIFIER_PATTERN}'`,
    `db NOT IN (${RESERVED_DATABASES.map((d) => `'${d}'`).join(", ")})`,
    `owner ~ '${IDENTIFIER_PATTERN}'`,
    `owner NOT IN (${RESERVED_ROLES.map((r) => `'${r}'`).join(", ")})`,
    "owner !~ '^pg_'",
    `verifier ~ '${MD5_VERIFIER_PATTERN}'`,
    `encoding ~ '${ENCODING_PATTERN}'`,
    `lc_collate ~ '${LOCALE_PATTERN}'`,
    `lc_ctype ~ '${LOCALE_PATTERN}'`,
    `template ~ '${IDENTIFIER_PATTERN}'`,
  ];
  return `-- Creates the roles and databases registered under ${KV_PREFIX.postgres}/databases in Consul KV.
-- Every value is validated here and quoted with format() (%I identifiers, %L literals), so a
-- registration cannot inject SQL, and it cannot take over the superuser or a reserved role.
-- Idempotent: creates what is missing, updates its own roles' passwords, never drops anything.
\\set ON_ERROR_STOP on
\\set spec \`cat :'spec_file'\`

CREATE TEMPORARY TABLE registration AS
SELECT r.key AS db,
       r.value->>'owner' AS owner,
       r.value->>'password-verifier' AS verifier,
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

SELECT format('skipping the invalid registration %L', db) AS problem FROM registration WHERE NOT valid;

-- One role per owner; should two registrations share an owner, the first database's password wins.
-- A role that already owns databases takes its password only from the registration of one of
-- them, so a registration that merely names an existing owner cannot take that role over.
CREATE TEMPORARY VIEW wanted_role AS
SELECT DISTINCT ON (g.owner) g.owner, g.verifier
  FROM registration g LEFT JOIN pg_database d ON d.datname = g.db
 WHERE g.valid
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
 WHERE g.valid AND NOT EXISTS (SELECT FROM pg_database d WHERE d.datname = g.db) \\gexec

-- An existing database keeps its owner: a registration cannot hand another project's data over.
SELECT format('database %I belongs to %I, not %I: left as it is', g.db, pg_get_userbyid(d.datdba), g.owner) AS problem
  FROM registration g JOIN pg_database d ON d.datname = g.db
 WHERE g.valid AND pg_get_userbyid(d.datdba) <> g.owner;

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
# The registrations hold password verifiers: readable by root and postgres only.
chgrp postgres ${POSTGRES_DATABASES_JSON}
chmod 0640 ${POSTGRES_DATABASES_JSON}
tries=0
until runuser -u postgres -- pg_isready -q; do
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then
    echo "postgres-ensure-databases: PostgreSQL is not accepting connections" >&2
    exit 1
  fi
  sleep 2
done
exec runuser -u postgres -- psql -X -q -d postgres -v spec_file=${POSTGRES_DATABASES_JSON} -f ${POSTGRES_ENSURE_SQL}
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

chown -R postgres:postgres "$conf"
echo auto > "$conf/start.conf"
systemctl daemon-reload
systemctl enable postgresql.service
systemctl start ${POSTGRES_UNIT}
`;
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
