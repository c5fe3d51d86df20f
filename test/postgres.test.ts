import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parse } from "yaml";
import { TerraformOutput } from "cdktf";
import { Postgres, PostgresProps } from "../constructs/modules/postgres";
import { PostgresDatabase } from "../constructs/modules/postgres-database";
import { kvPaths } from "../lib/kv";
import {
  POSTGRES_DATABASES_TEMPLATE,
  POSTGRES_DATA_DIR,
  POSTGRES_PASSWORDS_DIR,
  POSTGRES_VERSION,
  renderEnsureDatabasesSql,
  renderPgHba,
  renderPostgresqlConf,
  renderVerifiersProgram,
  tlsCertificateCommand,
} from "../lib/render/postgres";
import { hostStack, kvEntries, synthJson, IPV4_HOST } from "./support/fixtures";
import { renderSecretsConfig } from "../lib/render/synapse";
import { CONSUL_TOKEN_PATH } from "../lib/render/consul-acl";
import { CONSUL_TEMPLATE_START } from "../lib/render/consul-template";
import { checkCloudInit, checkNftables, synapseVenv } from "./support/validators";
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

  test("TLS is on, with the key and certificate the bootstrap makes once on the data volume", () => {
    const conf = renderPostgresqlConf({ listenAddresses: ["10.10.1.13"] });
    expect(conf).toContain("ssl = on\n");
    expect(conf).toContain("ssl_cert_file = '/srv/postgresql/tls/server.crt'\n");
    expect(conf).toContain("ssl_key_file = '/srv/postgresql/tls/server.key'\n");
    expect(conf).toContain("ssl_min_protocol_version = 'TLSv1.2'\n");
    expect(() => renderPostgresqlConf({ listenAddresses: ["10.10.1.13"], settings: { ssl: false } })).toThrow(/managed by the module/);
  });

  test("extra settings are added and quoted, but cannot override the managed ones", () => {
    const conf = renderPostgresqlConf({ listenAddresses: ["10.10.1.13"], settings: { shared_buffers: "1GB", max_connections: 200, application_name: "it's" } });
    expect(conf).toContain("shared_buffers = '1GB'\n");
    expect(conf).toContain("max_connections = 200\n");
    expect(conf).toContain("application_name = 'it''s'\n");
    expect(conf.match(/^max_connections/gm)).toHaveLength(1);
    expect(() => renderPostgresqlConf({ listenAddresses: ["10.10.1.13"], settings: { listen_addresses: "*" } })).toThrow(/managed by the module/);
  });

  test("pg_hba: peer for the local superuser, never the superuser over the network, SCRAM over TLS only for the host network", () => {
    const hba = renderPgHba({ clientCidrs: ["10.10.1.0/24", "fd10:10:10:1::1:0/112"] });
    expect(significant(hba).map((l) => l.split(/\s+/))).toEqual([
      ["local", "all", "postgres", "peer"],
      ["host", "all", "postgres", "10.10.1.0/24", "reject"],
      ["host", "all", "postgres", "fd10:10:10:1::1:0/112", "reject"],
      ["hostnossl", "all", "all", "10.10.1.0/24", "reject"],
      ["hostnossl", "all", "all", "fd10:10:10:1::1:0/112", "reject"],
      ["hostssl", "all", "all", "10.10.1.0/24", "scram-sha-256"],
      ["hostssl", "all", "all", "fd10:10:10:1::1:0/112", "scram-sha-256"],
    ]);
  });
});

describe("Postgres", () => {
  test("cloud-init passes cloud-init schema; the first-boot firewall opens no port, and nft -c accepts it", () => {
    const { postgres } = deploy();
    checkCloudInit(postgres.container.userData);
    const nft = fileAt(userDataOf(postgres), "/etc/nftables.conf");
    const open = nft.split("\n").filter((l) => / dport /.test(l) && !l.includes("DHCPv6"));
    expect(open).toEqual([]);
    checkNftables(nft);
  });

  test("consul-template opens 5432 to exactly the registered client addresses (real consul-template, nft -c)", () => {
    const { postgres } = deploy();
    const ctmpl = userDataOf(postgres).write_files.find((f: any) => f.path.endsWith("/nftables.conf.ctmpl"));
    expect(ctmpl).toBeDefined();
    // With no clients it renders exactly the first-boot ruleset.
    expect(renderWithConsul(ctmpl.content, {})).toBe(fileAt(userDataOf(postgres), "/etc/nftables.conf"));
    const nft = renderWithConsul(ctmpl.content, {
      [kvPaths.postgresClient("synapse-0")]: "10.10.1.20",
      [kvPaths.postgresClient("synapse-1")]: "fd10:10:10:1::1:20",
      [kvPaths.postgresClient("bad-v4")]: "10.10.1.256",
      [kvPaths.postgresClient("bad-v6")]: "fd10::1::2",
      [kvPaths.postgresClient("cidr")]: "10.10.1.0/24",
      [kvPaths.postgresClient("evil")]: '10.10.1.5 } accept; tcp dport 22 accept comment "x',
      [kvPaths.postgresClient('quote"key')]: "10.10.1.30",
    });
    checkNftables(nft);
    const open = nft.split("\n").filter((l) => / dport /.test(l) && !l.includes("DHCPv6"));
    expect(open.map((l) => l.trim())).toEqual([
      'ip saddr 10.10.1.20 tcp dport 5432 accept comment "PostgreSQL client synapse-0"',
      'ip6 saddr fd10:10:10:1::1:20 tcp dport 5432 accept comment "PostgreSQL client synapse-1"',
    ]);
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
    expect(cmds.indexOf("/usr/local/sbin/postgres-bootstrap")).toBeLessThan(cmds.indexOf(CONSUL_TEMPLATE_START));
  });

  test("the cluster config is written before the package, so Debian creates no default cluster and nothing starts early", () => {
    const doc = userDataOf(deploy().postgres);
    expect(fileAt(doc, "/etc/postgresql/15/main/start.conf")).toBe("manual\n");
    const bootstrap = fileAt(doc, "/usr/local/sbin/postgres-bootstrap");
    expect(bootstrap).toContain('if [ -f "$data/PG_VERSION" ]');
    expect(bootstrap).toContain("refusing to touch it");
    expect(bootstrap).toContain('echo auto > "$conf/start.conf"');
    // The TLS certificate is made once, on the volume, by the postgres user; the password directory is root's.
    expect(bootstrap).toContain("if [ ! -f /srv/postgresql/tls/server.key ] || [ ! -f /srv/postgresql/tls/server.crt ]; then");
    expect(bootstrap).toContain(`install -d -o root -g root -m 0700 ${POSTGRES_PASSWORDS_DIR}`);
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
    expect(significant(fileAt(doc, "/etc/postgresql/15/main/pg_hba.conf"))).toHaveLength(4);
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
      "service/postgres/databases/synapse/password-sha256": expect.any(String),
    });
  });

  test("no password in the synthesized JSON or KV: the password goes to a root-only file in the server's container, KV names it by its SHA-256", () => {
    const { json } = register();
    const passwords = Object.entries(json.resource.random_password) as [string, any][];
    expect(passwords).toHaveLength(1);
    const [passwordId, config] = passwords[0];
    expect(config).toMatchObject({ length: 32, special: false });
    const reference = `\${random_password.${passwordId}.result}`;
    expect(kvEntries(json)["service/postgres/databases/synapse/password-sha256"]).toBe(`\${sha256(random_password.${passwordId}.result)}`);
    // Besides the server's own Consul token, one pushed file: the password.
    const files = (Object.entries(json.resource.lxd_instance_file) as [string, any][]).filter(([, f]) => f.target_path !== CONSUL_TOKEN_PATH);
    expect(files).toHaveLength(1);
    const [fileId, file] = files[0];
    const instanceId = Object.keys(json.resource.lxd_instance)[0];
    expect(file).toMatchObject({
      instance: `\${lxd_instance.${instanceId}.name}`,
      target_path: `${POSTGRES_PASSWORDS_DIR}/synapse`,
      content: reference,
      mode: "0600",
      uid: 0,
      gid: 0,
    });
    // A replaced server container gets the password again in the same apply.
    const revisionId = Object.keys(json.resource.terraform_data).find((id) => id.startsWith("postgres_container_revision"));
    expect(file.lifecycle).toEqual({ replace_triggered_by: [`terraform_data.${revisionId}`] });
    // The server acts when KV changes, so the password must already be there.
    const keys = Object.values(json.resource.consul_keys) as any[];
    expect(keys[0].depends_on).toEqual([`lxd_instance_file.${fileId}`]);
    // The only secrets anywhere in the output are references to the random resource.
    const text = JSON.stringify(json);
    expect(text.match(/random_password\.[\w-]+\.result/g)?.every((m) => m === `random_password.${passwordId}.result`)).toBe(true);
    expect(JSON.stringify(json.resource.consul_keys)).not.toMatch(/md5|password-verifier/);
    expect(json.output.connection.value).toEqual({ host: "10.10.1.13", port: 5432, database: "synapse", user: "synapse_user", password: reference });
  });

  test("works against a server deployed by another stack", () => {
    const { stack, host } = hostStack();
    const ref = Postgres.reference(host);
    const db = new PostgresDatabase(stack, "db", { postgres: ref, database: "app", owner: "app_owner", lcCollate: "en_US.UTF-8" });
    expect(db.connection.host).toBe("10.10.1.13");
    const json = synthJson(stack);
    expect(kvEntries(json)["service/postgres/databases/app/lc-collate"]).toBe("en_US.UTF-8");
    expect(host.addresses.reservations.get(13)).toBe("postgres");
    // The password is delivered to the other stack's container, by its name.
    expect(Object.values(json.resource.lxd_instance_file)).toEqual([
      expect.objectContaining({ instance: "postgres", project: "default", target_path: `${POSTGRES_PASSWORDS_DIR}/app` }),
    ]);
    expect((Object.values(json.resource.lxd_instance_file)[0] as any).lifecycle).toBeUndefined();
  });

  test("names its client addresses in KV for the server's firewall, and rejects what is not an address", () => {
    const { stack, host } = hostStack();
    const postgres = Postgres.reference(host);
    new PostgresDatabase(stack, "db", { postgres, database: "app", owner: "app_owner", clients: ["10.10.1.20", "fd10:10:10:1::1:20"] });
    const kv = kvEntries(synthJson(stack));
    expect(Object.entries(kv).filter(([k]) => k.startsWith("service/postgres/clients/"))).toEqual([
      ["service/postgres/clients/app-0", "10.10.1.20"],
      ["service/postgres/clients/app-1", "fd10:10:10:1::1:20"],
    ]);
    expect(() => new PostgresDatabase(stack, "bad", { postgres, database: "other", owner: "other_owner", clients: ["10.10.1.0/24", "host.example"] })).toThrow(
      /- clients\[0\]: must be an IPv4 or IPv6 address[\s\S]*- clients\[1\]: must be/,
    );
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
// through a real consul-template: KV as PostgresDatabase writes it → JSON → the verifiers
// program (python3) with the delivered passwords → SQL → server, logged into over TLS.

const PG_BIN = `/usr/lib/postgresql/${POSTGRES_VERSION}/bin`;
const asRoot = process.getuid?.() === 0;
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

function run(command: string[], env: Record<string, string> = {}, input?: string) {
  const r = spawnSync(command[0], command.slice(1), { encoding: "utf8", timeout: 60_000, input, env: { ...process.env, ...env } });
  if (r.error) throw r.error;
  return { status: r.status, out: `${r.stdout}${r.stderr}`, stdout: r.stdout, stderr: r.stderr };
}

/** Runs as the postgres system user when the tests run as root (PostgreSQL refuses to run as root). */
const asPostgres = (command: string[]) => (asRoot ? ["runuser", "-u", "postgres", "--", ...command] : command);
const pgRun = (bin: string, args: string[], env: Record<string, string> = {}) => run(asPostgres([`${PG_BIN}/${bin}`, ...args]), env);

/**
 * Logs in with the md5 method using a stolen md5 verifier instead of the password (what the md5
 * method allows: the client's first step is the verifier). Takes TLS when the server offers it.
 */
const PASS_THE_HASH = `
import hashlib, socket, ssl, struct, sys
host, port, user, database, verifier = sys.argv[1:6]
sock = socket.create_connection((host, int(port)), timeout=5)
sock.sendall(struct.pack("!ii", 8, 80877103))
if sock.recv(1) == b"S":
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sock = context.wrap_socket(sock)
def exactly(n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            sys.exit("connection closed")
        data += chunk
    return data
def message():
    kind, length = struct.unpack("!ci", exactly(5))
    return kind, exactly(length - 4)
def fail(body):
    fields = dict((f[:1], f[1:]) for f in body.split(b"\\0") if f)
    sys.exit("refused: " + fields.get(b"M", b"").decode())
startup = struct.pack("!i", 196608) + b"user\\0" + user.encode() + b"\\0database\\0" + database.encode() + b"\\0\\0"
sock.sendall(struct.pack("!i", len(startup) + 4) + startup)
kind, body = message()
if kind == b"E":
    fail(body)
code = struct.unpack("!i", body[:4])[0]
if code != 5:
    sys.exit("the server asks for authentication method %d, not md5" % code)
answer = b"md5" + hashlib.md5(verifier[3:].encode() + body[4:8]).hexdigest().encode() + b"\\0"
sock.sendall(b"p" + struct.pack("!i", len(answer) + 4) + answer)
kind, body = message()
if kind == b"R" and struct.unpack("!i", body[:4])[0] == 0:
    print("logged in as " + user)
else:
    fail(body)
`;

class TestCluster {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "matrix-lxd-pg-"));
  readonly port = freeLoopbackPorts(1)[0];

  start(): void {
    if (!fs.existsSync(`${PG_BIN}/postgres`)) throw new Error(`PostgreSQL ${POSTGRES_VERSION} not found in ${PG_BIN}: install Debian's postgresql-15`);
    if (asRoot) spawnSync("chown", ["postgres:postgres", this.dir]);
    const data = path.join(this.dir, "data");
    const init = pgRun("initdb", ["--pgdata", data, "--encoding=UTF8", "--locale=C", "--username=postgres", "--auth-local=peer"]);
    if (init.status !== 0) throw new Error(`initdb failed:\n${init.out}`);
    // The bootstrap's certificate command, as the postgres user.
    const tls = path.join(this.dir, "tls");
    const cert = run(asPostgres(["sh", "-c", `mkdir -m 0700 ${tls} && ${tlsCertificateCommand(tls, "test")}`]));
    if (cert.status !== 0) throw new Error(`making the TLS certificate failed:\n${cert.out}`);
    // The rendered files are used as they are; only paths and the port are overridden.
    this.write("postgresql.conf", renderPostgresqlConf({ listenAddresses: ["127.0.0.1"] }));
    let hba = renderPgHba({ clientCidrs: ["127.0.0.1/32"] });
    if (!asRoot) hba = hba.replace(/peer$/m, "peer map=test");
    this.write("pg_hba.conf", hba);
    this.write("pg_ident.conf", asRoot ? "" : `test ${os.userInfo().username} postgres\n`);
    fs.mkdirSync(this.file("passwords"), { mode: 0o700 });
    const settings = {
      data_directory: data,
      hba_file: this.file("pg_hba.conf"),
      ident_file: this.file("pg_ident.conf"),
      external_pid_file: this.file("pid"),
      unix_socket_directories: this.dir,
      port: String(this.port),
      ssl_cert_file: path.join(tls, "server.crt"),
      ssl_key_file: path.join(tls, "server.key"),
    };
    const options = Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`).join(" ");
    const started = pgRun("pg_ctl", ["start", "-w", "-D", data, "-l", this.file("log"), "-o", `--config-file=${this.file("postgresql.conf")} ${options}`]);
    if (started.status !== 0) throw new Error(`pg_ctl start failed:\n${started.out}\n${fs.existsSync(this.file("log")) ? fs.readFileSync(this.file("log"), "utf8") : ""}`);
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }

  write(name: string, content: string, mode = 0o644): string {
    fs.writeFileSync(this.file(name), content, { mode });
    fs.chmodSync(this.file(name), mode);
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

  /** Delivers a password as PostgresDatabase does (a root-only file named after the database). */
  deliver(database: string, password: string): void {
    this.write(path.join("passwords", database), password, 0o600);
  }

  /** What POSTGRES_ENSURE_SCRIPT does: the verifiers program (as root), then the SQL (as postgres). */
  ensure(spec: string) {
    const specFile = this.write("databases.json", spec);
    const program = this.write("verifiers.py", renderVerifiersProgram(), 0o755);
    const verifiers = run(["python3", program, specFile, this.file("passwords")]);
    if (verifiers.status !== 0) throw new Error(`the verifiers program failed:\n${verifiers.out}`);
    const registrations = this.write("registrations.json", verifiers.stdout);
    const sqlFile = this.write("ensure.sql", renderEnsureDatabasesSql());
    const sql = this.superuser(["-v", `spec_file=${registrations}`, "-f", sqlFile]);
    return { status: sql.status, out: `${verifiers.stderr}${sql.out}`, registrations: JSON.parse(verifiers.stdout) };
  }

  /** A password login over TCP, as a project container connects (TLS unless told otherwise). */
  login(user: string, password: string, database: string, conninfo = "sslmode=require") {
    return pgRun("psql", ["-X", "-At", "-c", "select current_user", `host=127.0.0.1 port=${this.port} user=${user} dbname=${database} ${conninfo}`], {
      PGPASSWORD: password,
      PGCONNECT_TIMEOUT: "5",
    });
  }

  /** A login with a stolen md5 verifier instead of the password. */
  passTheHash(user: string, verifier: string, database: string) {
    return run(["python3", "-c", PASS_THE_HASH, "127.0.0.1", String(this.port), user, database, verifier]);
  }

  stop(): void {
    pgRun("pg_ctl", ["stop", "-m", "immediate", "-D", path.join(this.dir, "data")]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** KV as PostgresDatabase writes it, for one database. */
const registrationKv = (database: string, owner: string, password: string) => ({
  [`service/postgres/databases/${database}/owner`]: owner,
  [`service/postgres/databases/${database}/encoding`]: "UTF8",
  [`service/postgres/databases/${database}/lc-collate`]: "C",
  [`service/postgres/databases/${database}/lc-ctype`]: "C",
  [`service/postgres/databases/${database}/template`]: "template0",
  [`service/postgres/databases/${database}/password-sha256`]: sha256(password),
});

describe("the database script against a real PostgreSQL", () => {
  const cluster = new TestCluster();
  beforeAll(() => cluster.start(), 60_000);
  afterAll(() => cluster.stop());

  test("KV written by PostgresDatabase, rendered by consul-template, creates the role with a SCRAM verifier and a UTF8/C database from template0", () => {
    const password = "Sample0Password0For0Tests0Only00";
    const kv = {
      ...registrationKv("synapse", "synapse_user", password),
      // A hostile registration: SQL in the name, and a bid for the superuser's password.
      "service/postgres/databases/x'); DROP DATABASE postgres; --/owner": "evil",
      "service/postgres/databases/x'); DROP DATABASE postgres; --/password-sha256": sha256("x"),
      "service/postgres/databases/takeover/owner": "postgres",
      "service/postgres/databases/takeover/password-sha256": sha256("x"),
    };
    const spec = renderWithConsul(POSTGRES_DATABASES_TEMPLATE, kv);
    expect(JSON.parse(spec).synapse).toEqual({
      owner: "synapse_user",
      encoding: "UTF8",
      "lc-collate": "C",
      "lc-ctype": "C",
      template: "template0",
      "password-sha256": sha256(password),
    });
    cluster.deliver("synapse", password);
    cluster.deliver("takeover", "x".repeat(32));

    const first = cluster.ensure(spec);
    expect(first.status).toBe(0);
    expect(first.out).toContain("skipping the invalid registration 'takeover'");
    expect(first.out).toContain("skipping the invalid registration 'x''); DROP DATABASE postgres; --'");
    expect(cluster.query("select datname, pg_encoding_to_char(encoding), datcollate, datctype, pg_get_userbyid(datdba) from pg_database where datname = 'synapse'")).toBe(
      "synapse|UTF8|C|C|synapse_user",
    );
    expect(cluster.query("select count(*) from pg_database where datname = 'postgres'")).toBe("1");
    expect(cluster.query("select count(*) from pg_roles where rolname in ('evil', 'takeover')")).toBe("0");
    expect(cluster.query("select rolpassword ~ '^SCRAM-SHA-256[$]4096:' from pg_authid where rolname = 'synapse_user'")).toBe("t");
    expect(cluster.login("synapse_user", password, "synapse")).toMatchObject({ status: 0, out: "synapse_user\n" });
    expect(cluster.login("synapse_user", "wrong", "synapse").status).not.toBe(0);
    // Never the superuser over the network, whatever its password.
    expect(cluster.login("postgres", "x", "postgres").out).toMatch(/pg_hba\.conf rejects connection/);

    // Idempotent: a second run changes nothing and fails on nothing.
    const verifier = cluster.query("select rolpassword from pg_authid where rolname = 'synapse_user'");
    const again = cluster.ensure(spec);
    expect(again.status).toBe(0);
    expect(again.out).not.toMatch(/ERROR/);
    expect(cluster.query("select rolpassword from pg_authid where rolname = 'synapse_user'")).toBe(verifier);
  }, 60_000);

  test("what KV publishes does not log in: neither as the password nor as an md5 hash; the password does, with SCRAM over TLS", () => {
    const password = "Kv0Reader0Cannot0Log0In0With0It0";
    const kv = registrationKv("published", "published_owner", password);
    cluster.deliver("published", password);
    expect(cluster.ensure(renderWithConsul(POSTGRES_DATABASES_TEMPLATE, kv)).status).toBe(0);
    const published = Object.values(kv);
    expect(published.join("\n")).not.toContain(password);
    const md5 = md5Verifier(password, "published_owner");
    for (const value of [...published, md5]) {
      expect(cluster.login("published_owner", value, "published").out).toMatch(/password authentication failed for user "published_owner"/);
    }
    // What an md5 verifier allowed before: logging in with the hash itself. The server now asks for SCRAM.
    expect(cluster.passTheHash("published_owner", md5, "published").out).toMatch(/asks for authentication method 10, not md5/);
    expect(cluster.login("published_owner", password, "published")).toMatchObject({ status: 0, out: "published_owner\n" });
    // SCRAM bound to the TLS session, and nothing without TLS.
    expect(cluster.login("published_owner", password, "published", "sslmode=require channel_binding=require").status).toBe(0);
    expect(cluster.login("published_owner", password, "published", "sslmode=disable").out).toMatch(/no encryption/);
  }, 60_000);

  test("Synapse's database arguments connect with psycopg2 over TLS with channel binding", () => {
    const password = "Synapse0Connects0Over0Tls0000000";
    cluster.deliver("homeserver", password);
    expect(cluster.ensure(renderWithConsul(POSTGRES_DATABASES_TEMPLATE, registrationKv("homeserver", "homeserver_owner", password))).status).toBe(0);
    const homeserver = parse(
      renderSecretsConfig({
        domain: "example.com",
        dualStack: false,
        database: { host: "127.0.0.1", port: cluster.port, database: "homeserver", user: "homeserver_owner", password },
        registrationSharedSecret: "sample-registration-secret",
        macaroonSecretKey: "sample-macaroon-key",
        formSecret: "sample-form-secret",
        turn: { domain: "turn.example.com", listeningPort: 3478, tlsListeningPort: 5349, sharedSecret: "sample-turn-secret" },
        adminEmail: "admin@example.com",
      }),
    );
    // As the Synapse bootstrap's database check and Synapse itself connect: psycopg2 with these args.
    const python = path.join(synapseVenv(), "bin", "python");
    const probe = `
import json, sys, psycopg2
args = {k: v for k, v in json.loads(sys.argv[1]).items() if not k.startswith("cp_")}
with psycopg2.connect(connect_timeout=5, **args) as connection, connection.cursor() as cursor:
    cursor.execute("select current_user, ssl from pg_stat_ssl where pid = pg_backend_pid()")
    print("%s ssl=%s" % cursor.fetchone())
`;
    expect(run([python, "-c", probe, JSON.stringify(homeserver.database.args)])).toMatchObject({ status: 0, stdout: "homeserver_owner ssl=True\n" });
  }, 60_000);

  test("an md5 password-verifier in KV is refused; a SCRAM verifier published by other tooling is accepted", () => {
    const md5 = md5Verifier("legacy-password", "legacy_owner");
    const run1 = cluster.ensure(JSON.stringify({ legacy: { owner: "legacy_owner", "password-verifier": md5 } }));
    expect(run1.status).toBe(0);
    expect(run1.out).toContain("refusing the md5 password-verifier of 'legacy'");
    expect(cluster.query("select count(*) from pg_roles where rolname = 'legacy_owner'")).toBe("0");
    expect(cluster.query("select count(*) from pg_database where datname = 'legacy'")).toBe("0");
    // A verifier computed elsewhere (here: by PostgreSQL itself) is stored as it is.
    const verifier = computeScramWithServer(cluster, "Other0Tooling0Password0000000000");
    expect(verifier).toMatch(/^SCRAM-SHA-256\$/);
    expect(cluster.ensure(JSON.stringify({ legacy: { owner: "legacy_owner", "password-verifier": verifier } })).status).toBe(0);
    expect(cluster.login("legacy_owner", "Other0Tooling0Password0000000000", "legacy").status).toBe(0);
  }, 60_000);

  test("a password that is not the one KV names, or none, leaves the role waiting; a new password replaces the old one", () => {
    const kv = (password: string) => renderWithConsul(POSTGRES_DATABASES_TEMPLATE, registrationKv("billing", "billing_owner", password));
    cluster.deliver("billing", "Stale0Password0000000000000000000");
    const waiting = cluster.ensure(kv("First0Password00000000000000000"));
    expect(waiting.out).toContain("the password delivered for 'billing' is not the one its registration names");
    expect(waiting.out).toContain("no password for 'billing' yet");
    expect(cluster.query("select count(*) from pg_roles where rolname = 'billing_owner'")).toBe("0");
    cluster.deliver("billing", "First0Password00000000000000000");
    expect(cluster.ensure(kv("First0Password00000000000000000")).status).toBe(0);
    expect(cluster.login("billing_owner", "First0Password00000000000000000", "billing").status).toBe(0);
    cluster.deliver("billing", "Second0Password0000000000000000");
    expect(cluster.ensure(kv("Second0Password0000000000000000")).status).toBe(0);
    expect(cluster.login("billing_owner", "First0Password00000000000000000", "billing").status).not.toBe(0);
    expect(cluster.login("billing_owner", "Second0Password0000000000000000", "billing").status).toBe(0);
    // Defaults: UTF8, C, C; and only the owner may connect.
    expect(cluster.query("select pg_encoding_to_char(encoding), datcollate, datctype from pg_database where datname = 'billing'")).toBe("UTF8|C|C");
    expect(cluster.login("published_owner", "Kv0Reader0Cannot0Log0In0With0It0", "billing").out).toMatch(/permission denied for database "billing"/);
  }, 60_000);

  test("a registration's name cannot make the program read a file outside the password directory", () => {
    fs.writeFileSync(cluster.file("outside"), "Outside0The0Password0Directory00", { mode: 0o600 });
    const run1 = cluster.ensure(JSON.stringify({ "../outside": { owner: "escape_owner", "password-sha256": sha256("Outside0The0Password0Directory00") } }));
    expect(run1.registrations["../outside"]["password-verifier"]).toBeUndefined();
    expect(run1.out).toContain("skipping the invalid registration '../outside'");
    expect(cluster.query("select count(*) from pg_roles where rolname = 'escape_owner'")).toBe("0");
  }, 60_000);

  test("a registration naming another project's owner or database cannot take it over", () => {
    const victim = { owner: "victim_owner", "password-sha256": sha256("Victim0Password00000000000000000") };
    cluster.deliver("victim_db", "Victim0Password00000000000000000");
    expect(cluster.ensure(JSON.stringify({ victim_db: victim })).status).toBe(0);
    expect(cluster.login("victim_owner", "Victim0Password00000000000000000", "victim_db").status).toBe(0);
    const attacker = "Attacker0Password000000000000000";
    for (const db of ["aaa", "zzz"]) cluster.deliver(db, attacker);
    const hostile = JSON.stringify({
      victim_db: victim,
      // Sorts first, names the victim's role with the attacker's password.
      aaa: { owner: "victim_owner", "password-sha256": sha256(attacker) },
      // Claims the victim's database for the attacker's role.
      zzz: { owner: "attacker_owner", "password-sha256": sha256(attacker) },
      victim_db_claim: { owner: "attacker_owner", "password-sha256": sha256(attacker) },
    }).replace('"victim_db_claim"', '"victim_db"');
    const run1 = cluster.ensure(hostile);
    expect(run1.status).toBe(0);
    expect(run1.out).toContain("database victim_db belongs to victim_owner, not attacker_owner: left as it is");
    expect(cluster.login("victim_owner", "Victim0Password00000000000000000", "victim_db").status).toBe(0);
    expect(cluster.login("victim_owner", attacker, "victim_db").status).not.toBe(0);
    expect(cluster.login("attacker_owner", attacker, "victim_db").status).not.toBe(0);
    expect(cluster.query("select pg_get_userbyid(datdba) from pg_database where datname = 'victim_db'")).toBe("victim_owner");
  }, 60_000);
});

/** A SCRAM verifier made by PostgreSQL itself (a throw-away role), as other tooling would publish. */
function computeScramWithServer(cluster: TestCluster, password: string): string {
  cluster.query(`create role scram_probe password '${password}'`);
  const verifier = cluster.query("select rolpassword from pg_authid where rolname = 'scram_probe'");
  cluster.query("drop role scram_probe");
  return verifier;
}
