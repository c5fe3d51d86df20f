/**
 * PostgreSQL and Synapse with their real clients: the database the Synapse registration asks
 * for exists as asked, its role logs in from the Synapse container only, Synapse answers on
 * its address, and the admin created at first boot logs in.
 */
import { adminLogin, deployment } from "./support/deployment";
import { curl, inContainer, shIn } from "./support/lxd";

const d = deployment();
const pg = d.name("postgres");
const synapse = d.name("synapse");

// The registration as the stack writes it to Consul: service/postgres/databases/<db>/…
const dbKey = Object.keys(d.state.plan.kv).find((k) => /^service\/postgres\/databases\/[^/]+\/owner$/.test(k))!;
const database = dbKey.split("/")[3];
const owner = d.state.plan.kv[dbKey];
const dbPassword = d.secret("synapse-database_password");

const psqlAsPostgres = (sql: string) => inContainer(pg, ["runuser", "-u", "postgres", "--", "psql", "-XAtq", "-d", "postgres", "-c", sql]);

describe("PostgreSQL", () => {
  test("the Synapse database exists with UTF8 / C / C, owned by its role", () => {
    const r = psqlAsPostgres(
      `SELECT datname, pg_encoding_to_char(encoding), datcollate, datctype, pg_get_userbyid(datdba) FROM pg_database WHERE datname = '${database}'`,
    );
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe(`${database}|UTF8|C|C|${owner}`);
  });

  test("the Synapse role logs in from the Synapse container (its settings, from the pushed secrets fragment)", () => {
    const r = inContainer(synapse, [
      "/opt/venvs/matrix-synapse/bin/python",
      "-c",
      [
        "import yaml, psycopg2",
        "a = yaml.safe_load(open('/etc/matrix-synapse/conf.d/secrets.yaml'))['database']['args']",
        "c = psycopg2.connect(connect_timeout=5, **{k: v for k, v in a.items() if not k.startswith('cp_')})",
        "cur = c.cursor(); cur.execute('SELECT current_user, current_database()'); print('|'.join(cur.fetchone()))",
      ].join("\n"),
    ]);
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe(`${owner}|${database}`);
  });

  test("the Synapse role does not log in from another container, even with its password", () => {
    const r = shIn(d.client, `PGPASSWORD='${dbPassword}' PGCONNECT_TIMEOUT=5 psql -XAtq -h ${d.address("postgres")} -U ${owner} -d ${database} -c 'SELECT 1'`);
    expect(r.stdout.trim()).not.toBe("1");
    expect(r.code).not.toBe(0);
  });

  test("PostgreSQL drops containers that no registration names as a client", () => {
    const r = shIn(d.client, `PGPASSWORD=x PGCONNECT_TIMEOUT=5 psql -XAtq -h ${d.address("postgres")} -U postgres -d postgres -c 'SELECT 1'`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/timeout expired/);
  });

  test("the postgres superuser cannot log in over the network, not even from a registered client", () => {
    const r = inContainer(synapse, [
      "/opt/venvs/matrix-synapse/bin/python",
      "-c",
      [
        "import psycopg2",
        "try:",
        `    psycopg2.connect(host='${d.address("postgres")}', user='postgres', password='x', dbname='postgres', sslmode='require', connect_timeout=5)`,
        "    print('connected')",
        "except psycopg2.OperationalError as e:",
        "    print(str(e).strip().splitlines()[-1])",
      ].join("\n"),
    ]);
    expect(r.stdout).not.toMatch(/^connected/);
    expect(r.stdout).toMatch(/pg_hba\.conf rejects connection|no pg_hba\.conf entry/);
  });
});

describe("Synapse", () => {
  const base = `http://${d.address("synapse")}:8008`;

  test("/health answers OK on its address", () => {
    const r = curl([`${base}/health`]);
    expect(r.status).toBe(200);
    expect(r.body.trim()).toBe("OK");
  });

  test("/_matrix/client/versions lists client API versions", () => {
    const r = curl([`${base}/_matrix/client/versions`]);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).versions).toEqual(expect.arrayContaining(["v1.1"]));
  });

  test("the admin created at first boot logs in", () => {
    const user = d.state.facts.ADMIN_USER;
    const r = adminLogin(d);
    expect(r.status).toBe(200);
    const body = JSON.parse(r.body);
    expect(body.user_id).toBe(`@${user}:${d.state.facts.DOMAIN}`);
    expect(typeof body.access_token).toBe("string");
    // and is a server admin
    const who = curl(["-H", `Authorization: Bearer ${body.access_token}`, `${base}/_synapse/admin/v1/server_version`]);
    expect(who.status).toBe(200);
  });

  test("the bootstrap removed the admin's initial password from the container", () => {
    expect(inContainer(synapse, ["test", "-e", "/etc/synapse-bootstrap/admin-password.b64"]).code).toBe(1);
  });
});
