/**
 * scripts/consul-acl.sh (run by host:up, and by hand on a library user's own host) against a
 * real `consul agent -dev` whose ACLs are on with default deny and not yet bootstrapped: it
 * bootstraps once, keeps the tokens root-only, leaves the KV closed to requests without a
 * token, and Consul DNS keeps answering for the catalog (HAProxy's backend lookups).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { Resolver } from "node:dns/promises";
import { ConsulDevAgent } from "./support/consul-template-render";

const SCRIPT = path.join(__dirname, "..", "scripts", "consul-acl.sh");

describe("scripts/consul-acl.sh", () => {
  let agent: ConsulDevAgent;
  let dir: string;
  const runScript = () => spawnSync("bash", [SCRIPT, "--url", `http://${agent.httpAddress}`, "--dir", dir, "--node", "testhost"], { encoding: "utf8", timeout: 120_000 });
  const dns = () => {
    const resolver = new Resolver({ timeout: 2000, tries: 1 });
    resolver.setServers([`127.0.0.1:${agent.dnsPort}`]);
    return resolver.resolve4("synapse.service.consul").catch((err: NodeJS.ErrnoException) => err.code);
  };

  beforeAll(() => {
    agent = ConsulDevAgent.start({ acl: "unbootstrapped" });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "matrix-lxd-consul-acl-"));
  }, 60_000);
  afterAll(() => {
    agent?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("refuses without its arguments, naming them", () => {
    const r = spawnSync("bash", [SCRIPT], { encoding: "utf8" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("missing --url --dir --node");
  });

  test("bootstraps once, keeps the tokens root-only; DNS answers with the catalog token, the KV stays closed", async () => {
    const first = runScript();
    expect({ status: first.status, stderr: first.stderr }).toEqual({ status: 0, stderr: "" });
    expect(first.stdout).toContain("bootstrapped into");
    const management = fs.readFileSync(path.join(dir, "management-token"), "utf8");
    expect(management).toMatch(/^[0-9a-f-]{36}$/);
    for (const f of ["management-token", "dns-token"]) expect(fs.statSync(path.join(dir, f)).mode & 0o777).toBe(0o600);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);

    // A second run changes nothing: the same tokens.
    const dnsToken = fs.readFileSync(path.join(dir, "dns-token"), "utf8");
    const second = runScript();
    expect(second.status).toBe(0);
    expect(second.stdout).toContain("(present)");
    expect(fs.readFileSync(path.join(dir, "management-token"), "utf8")).toBe(management);
    expect(fs.readFileSync(path.join(dir, "dns-token"), "utf8")).toBe(dnsToken);

    // Terraform's side: the management token registers; HAProxy's side: DNS resolves it.
    const register = agent.http("PUT", "/v1/catalog/register", management, JSON.stringify({ Node: "synapse", Address: "10.10.1.20", Service: { Service: "synapse", Port: 8008 } }));
    expect(register.status).toBe(200);
    expect(await dns()).toEqual(["10.10.1.20"]);
    // A container without a token: no KV write, no KV read, no catalog write.
    expect(agent.http("PUT", "/v1/kv/service/haproxy/deny/admin", management, "synapse-admin").status).toBe(200);
    expect(agent.http("PUT", "/v1/kv/service/haproxy/deny/admin", undefined, "").status).toBe(403);
    expect(agent.http("DELETE", "/v1/kv/service/haproxy/deny/admin").status).toBe(403);
    expect(agent.http("GET", "/v1/kv/service/haproxy/deny/admin").status).toBe(403);
    expect(agent.http("PUT", "/v1/catalog/register", undefined, JSON.stringify({ Node: "synapse", Address: "10.10.1.99" })).status).toBe(403);

    // Without the agent's default token DNS answers nothing: the token is what keeps it working.
    expect(agent.http("PUT", "/v1/agent/token/default", management, JSON.stringify({ Token: "" })).status).toBe(200);
    expect(await dns()).toBe("ENOTFOUND");
    expect(runScript().status).toBe(0);
    expect(await dns()).toEqual(["10.10.1.20"]);
  }, 120_000);

  test("refuses a Consul whose ACL system was bootstrapped by someone else", () => {
    const other = fs.mkdtempSync(path.join(os.tmpdir(), "matrix-lxd-consul-acl-"));
    try {
      const r = spawnSync("bash", [SCRIPT, "--url", `http://${agent.httpAddress}`, "--dir", other, "--node", "testhost"], { encoding: "utf8", timeout: 60_000 });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain("was bootstrapped before");
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
  });
});
