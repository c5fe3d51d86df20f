/**
 * Replacing containers: a row in PostgreSQL survives deleting and re-creating the container
 * (the cluster is adopted from the volume), Synapse serves again afterwards, and a module
 * container stops gracefully in time. These disturb the deployment, so the sequencer runs
 * this file last.
 */
import { adminLogin, deployment, eventually } from "./support/deployment";
import { SUITE_MARKER, createInstance, curl, inContainer, lxc, pushFile, run, waitForCloudInit } from "./support/lxd";

const d = deployment();

describe("persistent volume", () => {
  const pg = d.name("postgres");
  const plan = d.state.plan.instances.find((i) => i.name === pg)!;
  const sql = (q: string) => inContainer(pg, ["runuser", "-u", "postgres", "--", "psql", "-XAtq", "-d", "postgres", "-c", q]);

  let token = "";
  beforeAll(() => {
    token = JSON.parse(adminLogin(d).body).access_token;
  });

  test("a row written to PostgreSQL survives deleting and re-creating the container", () => {
    const marker = `lxd-suite-${Date.now()}`;
    expect(sql(`CREATE TABLE IF NOT EXISTS lxd_suite_marker (v text); INSERT INTO lxd_suite_marker VALUES ('${marker}')`).code).toBe(0);

    // Stop as the provider does (graceful), then delete and create again from the plan.
    const stopped = run("lxc", ["stop", pg, "--timeout", "120"], { timeoutMs: 150_000 });
    if (stopped.code !== 0) lxc("stop", pg, "--force");
    lxc("delete", pg);
    createInstance({ ...plan, config: { ...plan.config, [SUITE_MARKER]: "true" } });
    lxc("start", pg);
    // As Terraform does for a replaced container: its secrets (and the registration's database
    // passwords) are pushed into the new one, whose first boot waits for them.
    for (const file of d.state.plan.files.filter((f) => f.container === pg)) pushFile(file);
    const boot = waitForCloudInit(pg);
    expect(boot.status).toBe("done");
    expect(inContainer(pg, ["cat", "/var/log/cloud-init-output.log"]).stdout).toMatch(/adopting the existing cluster/);
    expect(sql(`SELECT v FROM lxd_suite_marker WHERE v = '${marker}'`).stdout.trim()).toBe(marker);
  });

  test("Synapse serves again after PostgreSQL was replaced: a database query, then the admin's login", async () => {
    // Each pooled connection to the old server fails one query, then Synapse reconnects. Polled
    // with an admin token from before the replacement: failed logins would hit the login rate limit.
    const query = () => curl(["-H", `Authorization: Bearer ${token}`, `http://${d.address("synapse")}:8008/_synapse/admin/v2/users?limit=1`]).status === 200;
    expect(await eventually(query, 60_000, 1000)).toBe(true);
    expect(adminLogin(d).status).toBe(200);
  });

  test("a module container with consul-template stops within 30 s (graceful stop)", () => {
    const t0 = Date.now();
    const r = run("lxc", ["stop", pg, "--timeout", "120"], { timeoutMs: 150_000 });
    const seconds = (Date.now() - t0) / 1000;
    process.stderr.write(`[lxd-suite] lxc stop ${pg}: ${seconds.toFixed(1)} s\n`);
    lxc("start", pg);
    waitForCloudInit(pg);
    run("lxc", ["exec", pg, "--", "sh", "-c", "for i in $(seq 60); do runuser -u postgres -- pg_isready -q && exit 0; sleep 1; done; exit 1"], { timeoutMs: 90_000 });
    expect(r.code).toBe(0);
    expect(seconds).toBeLessThanOrEqual(30);
  });
});
