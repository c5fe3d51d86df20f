import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parse } from "yaml";
import { TerraformOutput } from "cdktf";
import { Postgres, PostgresProps } from "../constructs/modules/postgres";
import { PostgresDatabase } from "../constructs/modules/postgres-database";
import {
  POSTGRES_DATABASES_TEMPLATE,
  POSTGRES_DATA_DIR,
  POSTGRES_VERSION,
  renderEnsureDatabasesSql,
  renderPgHba,
  renderPostgresqlConf,
} from "../lib/render/postgres";
import { hostStack, kvEntries, synthJson, IPV4_HOST } from "./support/fixtures";
import { checkCloudInit, checkNftables } from "./support/validators";
import { freeLoopbackPorts, renderWithConsul } from "./support/consul-template-render";

function deploy(props: Partial<PostgresProps> = {}, hostProps?: typeof IPV4_HOST) {
  const { stack, host } = hostStack(hostProps);
  const postgres = new Postgres(stack, "postgres", { host, ...props });
  return { stack, host, postgres, json: () => synthJson(stack) };
}

const userDataOf = (postgres: Postgres) => parse(postgres.container.userData);
const fileAt = (doc: any, p: string): string => {
  const file = doc.write_files.find((f: any) => f.path === p);
  if (!file) throw new Error(`no ${p} in the user-data`);
  return file.content;
};
const significant = (text: string) => text.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#"));
const md5Verifier = (password: string, role: string) => `md5${createHash("md5").update(password + role).digest("hex")}`;

describe("PostgreSQL configuration", () => {
  test("listens only on the static addresses and keeps the cluster on the data volume", () => {
    const conf = renderPostgresqlConf({ listenAddresses: ["10.10.1.13", "fd10:10:10:1::1:13"] });
    expect(conf).toContain("listen_addresses = '10.10.1.13,fd10:10:10:1::1:13'\n");
    expect(conf).toContain(`data_directory = '${POSTGRES_DATA_DIR}'\n`);
    expect(POSTGRES_DATA_DIR).toBe("/srv/postgresql/15/main");
    expect(conf).toContain("password_encryption = 'scram-sha-256'\n");
  });

  test("extra settings are added and quoted, but cannot override the managed ones", () => {
    const conf = renderPostgresqlConf({ listenAddresses: ["10.10.1.13"], settings: { shared_buffers: "1GB", max_connections: 200, application_name: "it's" } });
    expect(conf).toContain("shared_buffers = '1GB'\n");
    expect(conf).toContain("max_connections = 200\n");
    expect(conf).toContain("application_name = 'it''s'\n");
    expect(conf.match(/^max_connections/gm)).toHaveLength(1);
    expect(() => renderPostgresqlConf({ listenAddresses: ["10.10.1.13"], settings: { listen_addresses: "*" } })).toThrow(/managed by the module/);
  });

  test("pg_hba: peer for the local superuser, never the superuser over the network, md5 for the host network, nothing else", () => {
    const hba = renderPgHba({ clientCidrs: ["10.10.1.0/24", "fd10:10:10:1::1:0/112"] });
    expect(significant(hba).map((l) => l.split(/\s+/))).toEqual([
      ["local", "all", "postgres", "peer"],
      ["host", "all", "postgres", "10.10.1.0/24", "reject"],
      ["host", "all", "postgres", "fd10:10:10:1::1:0/112", "reject"],
      ["host", "all", "all", "10.10.1.0/24", "md5"],
      ["host", "all", "all", "fd10:10:10:1::1:0/112", "md5"],
    ]);
  });
});

describe("Postgres", () => {
  test("cloud-init passes cloud-init schema; the firewall opens 5432 to the host network only and passes nft -c", () => {
    const { postgres } = deploy();
    checkCloudInit(postgres.container.userData);
    const nft = fileAt(userDataOf(postgres), "/etc/nftables.conf");
    const open = nft.split("\n").filter((l) => / dport /.test(l) && !l.includes("DHCPv6"));
    expect(open.map((l) => l.trim())).toEqual([
      'ip saddr { 10.10.1.0/24 } tcp dport { 5432 } accept comment "PostgreSQL from the host network"',
      'ip6 saddr { fd10:10:10:1::1:0/112 } tcp dport { 5432 } accept comment "PostgreSQL from the host network"',
    ]);
    checkNftables(nft);
  });

  test("runs at ryo's address with the cluster on a protected data volume, registered as a Consul service", () => {
    const { postgres, json } = deploy();
    expect(postgres.address).toEqual({ hostPart: 13, ipv4: "10.10.1.13", ipv6: "fd10:10:10:1::1:13" });
    const synthesized = json();
    expect(Object.values(synthesized.resource.lxd_storage_volume)).toEqual([
      expect.objectContaining({ name: "postgres-data", lifecycle: { prevent_destroy: true } }),
    ]);
    const instance = Object.values(synthesized.resource.lxd_instance)[0] as any;
    expect(instance.device.find((d: any) => d.name === "data-data").properties.path).toBe("/srv/postgresql");
    expect(instance.device.filter((d: any) => d.type === "proxy")).toEqual([]);
    expect(Object.values(synthesized.resource.consul_service)).toEqual([expect.objectContaining({ name: "postgres", port: 5432, address: "10.10.1.13" })]);
    const conf = fileAt(userDataOf(postgres), `/etc/postgresql/${POSTGRES_VERSION}/main/postgresql.conf`);
    expect(conf).toContain("listen_addresses = '10.10.1.13,fd10:10:10:1::1:13'");
  });

  test("the stock image installs postgresql-15 and consul-template; a pre-built image installs nothing", () => {
    const stock = userDataOf(deploy().postgres);
    expect(stock.packages).toEqual(expect.arrayContaining(["postgresql-15"]));
    expect(stock.runcmd.join("\n")).toContain("releases.hashicorp.com/consul-template");
    const prebuilt = userDataOf(deploy({ image: "local:postgres" }).postgres);
    expect(prebuilt.packages).toBeUndefined();
    expect(prebuilt.runcmd.join("\n")).not.toContain("curl");
    // The bootstrap runs before consul-template, whose database script needs the server.
    const cmds: string[] = prebuilt.runcmd;
    expect(cmds.indexOf("/usr/local/sbin/postgres-bootstrap")).toBeLessThan(cmds.findIndex((c) => c.includes("consul-template")));
  });

  test("the cluster config is written before the package, so Debian creates no default cluster and nothing starts early", () => {
    const doc = userDataOf(deploy().postgres);
    expect(fileAt(doc, "/etc/postgresql/15/main/start.conf")).toBe("manual\n");
    const bootstrap = fileAt(doc, "/usr/local/sbin/postgres-bootstrap");
    expect(bootstrap).toContain('if [ -f "$data/PG_VERSION" ]');
    expect(bootstrap).toContain("refusing to touch it");
    expect(bootstrap).toContain('echo auto > "$conf/start.conf"');
    for (const script of [bootstrap, fileAt(doc, "/usr/local/sbin/postgres-ensure-databases")]) {
      const sh = spawnSync("sh", ["-n"], { input: script, encoding: "utf8" });
      expect(sh.stderr).toBe("");
      expect(sh.status).toBe(0);
    }
  });

  test("IPv4-only hosts: listens and admits on IPv4 only", () => {
    const { postgres } = deploy({}, IPV4_HOST);
    const doc = userDataOf(postgres);
    expect(fileAt(doc, "/etc/postgresql/15/main/postgresql.conf")).toContain("listen_addresses = '10.20.1.13'\n");
    expect(significant(fileAt(doc, "/etc/postgresql/15/main/pg_hba.conf"))).toHaveLength(3);
  });

  test("user-data has no Terraform template sequences (they would be interpolated at apply)", () => {
    const { postgres } = deploy();
    expect(postgres.container.userData).not.toMatch(/[$%]\{/);
  });

  test("rejects bad props, naming them", () => {
    expect(() => deploy({ name: "Postgres_1", settings: { port: 5433, "bad key": 1 } })).toThrow(
      /- name: must be lower-case[\s\S]*- settings\.port: is set by the module[\s\S]*- settings\.bad key: is not a postgresql\.conf setting name/,
    );
    expect(() => deploy({ hostPart: 150 })).toThrow(/hostPart: 150 is not a usable address/);
  });
});

describe("PostgresDatabase", () => {
  function register() {
    const { stack, postgres, json } = deploy();
    const db = postgres.addDatabase("synapse-db", { database: "synapse", owner: "synapse_user" });
    // How a consumer uses the connection: the password arrives as a reference, never a value.
    new TerraformOutput(stack, "connection", { value: db.connection, sensitive: true });
    return { stack, postgres, db, json: json() };
  }

  test("registers a UTF8, C-collated database from template0 in Consul KV", () => {
    const { json } = register();
    const kv = kvEntries(json);
    expect(kv).toEqual({
      "service/postgres/databases/synapse/owner": "synapse_user",
      "service/postgres/databases/synapse/encoding": "UTF8",
      "service/postgres/databases/synapse/lc-collate": "C",
      "service/postgres/databases/synapse/lc-ctype": "C",
      "service/postgres/databases/synapse/template": "template0",
      "service/postgres/databases/synapse/password-verifier": expect.any(String),
    });
  });

  test("no password in the synthesized JSON: KV holds an md5 verifier computed by Terraform from the random password", () => {
    const { json } = register();
    const passwords = Object.entries(json.resource.random_password) as [string, any][];
    expect(passwords).toHaveLength(1);
    const [passwordId, config] = passwords[0];
    expect(config).toMatchObject({ length: 32, special: false });
    const reference = `\${random_password.${passwordId}.result}`;
    expect(kvEntries(json)["service/postgres/databases/synapse/password-verifier"]).toBe(`md5\${md5("${reference}synapse_user")}`);
    // The only secrets anywhere in the output are references to the random resource.
    const text = JSON.stringify(json);
    expect(text.match(/random_password\.[\w-]+\.result/g)?.every((m) => m === `random_password.${passwordId}.result`)).toBe(true);
    expect(text).not.toMatch(/md5[0-9a-f]{32}/);
    expect(json.output.connection.value).toEqual({ host: "10.10.1.13", port: 5432, database: "synapse", user: "synapse_user", password: reference });
  });

  test("works against a server deployed by another stack", () => {
    const { stack, host } = hostStack();
    const ref = Postgres.reference(host);
    const db = new PostgresDatabase(stack, "db", { postgres: ref, database: "app", owner: "app_owner", lcCollate: "en_US.UTF-8" });
    expect(db.connection.host).toBe("10.10.1.13");
    expect(kvEntries(synthJson(stack))["service/postgres/databases/app/lc-collate"]).toBe("en_US.UTF-8");
    expect(host.addresses.reservations.get(13)).toBe("postgres");
  });

  test("rejects names that are not plain identifiers or are reserved, naming the prop", () => {
    const { stack, host } = hostStack();
    const postgres = Postgres.reference(host);
    const bad = (id: string, props: Record<string, string>) => () =>
      new PostgresDatabase(stack, id, { postgres, database: "ok_db", owner: `${id}_owner`, ...props });
    expect(bad("a", { database: "synapse; DROP DATABASE x" })).toThrow(/- database: must be lower-case letters, digits and underscores/);
    expect(bad("b", { database: "Synapse" })).toThrow(/- database: must be lower-case/);
    expect(bad("c", { database: "x".repeat(64) })).toThrow(/- database: must be .* at most 63 characters/);
    expect(bad("d", { owner: "postgres" })).toThrow(/- owner: "postgres" is reserved/);
    expect(bad("e", { database: "template1" })).toThrow(/- database: "template1" is reserved/);
    expect(bad("f", { owner: "pg_monitor" })).toThrow(/- owner: "pg_monitor" is reserved/);
    expect(bad("g", { encoding: "UTF8'; --", lcCtype: "C'" })).toThrow(/- encoding: must be an encoding name[\s\S]*- lcCtype: must be a locale name/);
  });

  test("refuses a second registration of the same database or owner on the host", () => {
    const { stack, host } = hostStack();
    const postgres = Postgres.reference(host);
    new PostgresDatabase(stack, "one", { postgres, database: "app", owner: "app_owner" });
    expect(() => new PostgresDatabase(stack, "two", { postgres, database: "app", owner: "other" })).toThrow(/- database: "app" is already registered on this host by test\/one/);
    expect(() => new PostgresDatabase(stack, "three", { postgres, database: "app2", owner: "app_owner" })).toThrow(/- owner: "app_owner" already owns/);
  });
});

// ---------------------------------------------------------------------------------------------
// The database script against a real PostgreSQL 15 (Debian's postgresql-15) and the template
// through a real consul-template: KV as PostgresDatabase writes it → JSON → SQL → server.

const PG_BIN = `/usr/lib/postgresql/${POSTGRES_VERSION}/bin`;
const asRoot = process.getuid?.() === 0;

function pgRun(bin: string, args: string[], env: Record<string, string> = {}) {
  const command = asRoot ? ["runuser", "-u", "postgres", "--", `${PG_BIN}/${bin}`, ...args] : [`${PG_BIN}/${bin}`, ...args];
  const r = spawnSync(command[0], command.slice(1), { encoding: "utf8", timeout: 60_000, env: { ...process.env, ...env } });
  if (r.error) throw r.error;
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

class TestCluster {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "matrix-lxd-pg-"));
  readonly port = freeLoopbackPorts(1)[0];

  start(): void {
    if (!fs.existsSync(`${PG_BIN}/postgres`)) throw new Error(`PostgreSQL ${POSTGRES_VERSION} not found in ${PG_BIN}: install Debian's postgresql-15`);
    if (asRoot) spawnSync("chown", ["postgres:postgres", this.dir]);
    const data = path.join(this.dir, "data");
    const init = pgRun("initdb", ["--pgdata", data, "--encoding=UTF8", "--locale=C", "--username=postgres", "--auth-local=peer"]);
    if (init.status !== 0) throw new Error(`initdb failed:\n${init.out}`);
    // The rendered files are used as they are; only paths and the port are overridden.
    this.write("postgresql.conf", renderPostgresqlConf({ listenAddresses: ["127.0.0.1"] }));
    let hba = renderPgHba({ clientCidrs: ["127.0.0.1/32"] });
    if (!asRoot) hba = hba.replace(/peer$/m, "peer map=test");
    this.write("pg_hba.conf", hba);
    this.write("pg_ident.conf", asRoot ? "" : `test ${os.userInfo().username} postgres\n`);
    const settings = {
      data_directory: data,
      hba_file: this.file("pg_hba.conf"),
      ident_file: this.file("pg_ident.conf"),
      external_pid_file: this.file("pid"),
      unix_socket_directories: this.dir,
      port: String(this.port),
    };
    const options = Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`).join(" ");
    const started = pgRun("pg_ctl", ["start", "-w", "-D", data, "-l", this.file("log"), "-o", `--config-file=${this.file("postgresql.conf")} ${options}`]);
    if (started.status !== 0) throw new Error(`pg_ctl start failed:\n${started.out}\n${fs.existsSync(this.file("log")) ? fs.readFileSync(this.file("log"), "utf8") : ""}`);
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }

  write(name: string, content: string): string {
    fs.writeFileSync(this.file(name), content, { mode: 0o644 });
    return this.file(name);
  }

  /** psql as the superuser over the socket (peer), like the container's database script. */
  superuser(args: string[]) {
    return pgRun("psql", ["-X", "-q", "-h", this.dir, "-p", String(this.port), "-U", "postgres", "-d", "postgres", ...args]);
  }

  query(sql: string): string {
    const r = this.superuser(["-At", "-c", sql]);
    if (r.status !== 0) throw new Error(`${sql}\n${r.out}`);
    return r.out.trim();
  }

  /** Runs the rendered SQL with a registrations file, as POSTGRES_ENSURE_SCRIPT does. */
  ensure(spec: string) {
    const specFile = this.write("databases.json", spec);
    const sqlFile = this.write("ensure.sql", renderEnsureDatabasesSql());
    return this.superuser(["-v", `spec_file=${specFile}`, "-f", sqlFile]);
  }

  /** A password login over TCP, as a project container connects. */
  login(user: string, password: string, database: string) {
    return pgRun("psql", ["-X", "-At", "-h", "127.0.0.1", "-p", String(this.port), "-U", user, "-d", database, "-c", "select current_user"], { PGPASSWORD: password, PGCONNECT_TIMEOUT: "5" });
  }

  stop(): void {
    pgRun("pg_ctl", ["stop", "-m", "immediate", "-D", path.join(this.dir, "data")]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

describe("the database script against a real PostgreSQL", () => {
  const cluster = new TestCluster();
  beforeAll(() => cluster.start(), 60_000);
  afterAll(() => cluster.stop());

  test("KV written by PostgresDatabase, rendered by consul-template, creates the role and a UTF8/C database from template0", () => {
    const password = "Sample0Password0For0Tests0Only00";
    const kv = {
      "service/postgres/databases/synapse/owner": "synapse_user",
      "service/postgres/databases/synapse/encoding": "UTF8",
      "service/postgres/databases/synapse/lc-collate": "C",
      "service/postgres/databases/synapse/lc-ctype": "C",
      "service/postgres/databases/synapse/template": "template0",
      "service/postgres/databases/synapse/password-verifier": md5Verifier(password, "synapse_user"),
      // A hostile registration: SQL in the name, and a bid for the superuser's password.
      "service/postgres/databases/x'); DROP DATABASE postgres; --/owner": "evil",
      "service/postgres/databases/x'); DROP DATABASE postgres; --/password-verifier": md5Verifier("x", "evil"),
      "service/postgres/databases/takeover/owner": "postgres",
      "service/postgres/databases/takeover/password-verifier": md5Verifier("x", "postgres"),
    };
    const spec = renderWithConsul(POSTGRES_DATABASES_TEMPLATE, kv);
    expect(JSON.parse(spec).synapse).toEqual({
      owner: "synapse_user",
      encoding: "UTF8",
      "lc-collate": "C",
      "lc-ctype": "C",
      template: "template0",
      "password-verifier": md5Verifier(password, "synapse_user"),
    });

    const first = cluster.ensure(spec);
    expect(first.status).toBe(0);
    expect(first.out).toContain("skipping the invalid registration 'takeover'");
    expect(first.out).toContain("skipping the invalid registration 'x''); DROP DATABASE postgres; --'");
    expect(cluster.query("select datname, pg_encoding_to_char(encoding), datcollate, datctype, pg_get_userbyid(datdba) from pg_database where datname = 'synapse'")).toBe(
      "synapse|UTF8|C|C|synapse_user",
    );
    expect(cluster.query("select count(*) from pg_database where datname = 'postgres'")).toBe("1");
    expect(cluster.query("select count(*) from pg_roles where rolname in ('evil', 'takeover')")).toBe("0");
    expect(cluster.login("synapse_user", password, "synapse")).toEqual({ status: 0, out: "synapse_user\n" });
    expect(cluster.login("synapse_user", "wrong", "synapse").status).not.toBe(0);
    // Never the superuser over the network, whatever its password.
    expect(cluster.login("postgres", "x", "postgres").out).toMatch(/pg_hba\.conf rejects connection/);

    // Idempotent: a second run changes nothing and fails on nothing.
    const again = cluster.ensure(spec);
    expect(again.status).toBe(0);
    expect(again.out).not.toMatch(/ERROR/);
  }, 60_000);

  test("a new password replaces the old one; other roles cannot connect to the database", () => {
    const spec = (password: string) =>
      JSON.stringify({
        billing: { owner: "billing_owner", "password-verifier": md5Verifier(password, "billing_owner") },
        other: { owner: "other_owner", "password-verifier": md5Verifier("other-password", "other_owner") },
      });
    expect(cluster.ensure(spec("first-password")).status).toBe(0);
    expect(cluster.login("billing_owner", "first-password", "billing").status).toBe(0);
    expect(cluster.ensure(spec("second-password")).status).toBe(0);
    expect(cluster.login("billing_owner", "first-password", "billing").status).not.toBe(0);
    expect(cluster.login("billing_owner", "second-password", "billing").status).toBe(0);
    // Defaults: UTF8, C, C.
    expect(cluster.query("select pg_encoding_to_char(encoding), datcollate, datctype from pg_database where datname = 'billing'")).toBe("UTF8|C|C");
    expect(cluster.login("other_owner", "other-password", "billing").out).toMatch(/permission denied for database "billing"/);
  }, 60_000);

  test("a registration naming another project's owner or database cannot take it over", () => {
    const victim = { owner: "victim_owner", "password-verifier": md5Verifier("victim-password", "victim_owner") };
    expect(cluster.ensure(JSON.stringify({ victim_db: victim })).status).toBe(0);
    const hostile = JSON.stringify({
      victim_db: victim,
      // Sorts first, names the victim's role with the attacker's password.
      aaa: { owner: "victim_owner", "password-verifier": md5Verifier("attacker-password", "victim_owner") },
      // Claims the victim's database for the attacker's role.
      zzz: { owner: "attacker_owner", "password-verifier": md5Verifier("attacker-password", "attacker_owner") },
      victim_db_claim: { owner: "attacker_owner", "password-verifier": md5Verifier("attacker-password", "attacker_owner") },
    }).replace('"victim_db_claim"', '"victim_db"');
    const run = cluster.ensure(hostile);
    expect(run.status).toBe(0);
    expect(cluster.login("victim_owner", "victim-password", "victim_db").status).toBe(0);
    expect(cluster.login("victim_owner", "attacker-password", "victim_db").status).not.toBe(0);
    expect(cluster.query("select pg_get_userbyid(datdba) from pg_database where datname = 'victim_db'")).toBe("victim_owner");
  }, 60_000);
});
