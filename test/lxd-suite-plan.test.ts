/**
 * The real-LXD suite creates what the stack would through Consul's API instead of Terraform.
 * With host.consul.acl on, its plan must carry the stack's ACL policies and tokens, and the
 * token it pushes into each container must be one that works: checked here against a real
 * `consul agent -dev` with ACLs on, with the suite's own Consul client.
 */
import * as path from "node:path";
import { Testing } from "cdktf";
import { loadConfig } from "../lib/config";
import { MatrixStandaloneStack } from "../constructs/matrix/matrix-standalone-stack";
import { CONSUL_TOKEN_PATH } from "../lib/render/consul-acl";
import { planFromSynth } from "./lxd/support/stack";
import { Consul } from "./lxd/support/lxd";
import { ConsulDevAgent } from "./support/consul-template-render";

function plan() {
  const app = Testing.app();
  const stack = new MatrixStandaloneStack(app, "local", { config: loadConfig(path.join(__dirname, "..", "config", "local.yaml"), {}) });
  return planFromSynth(JSON.parse(Testing.synth(stack)));
}

describe("the real-LXD suite's plan with Consul ACLs", () => {
  test("creates the stack's policies and tokens; the token pushed into postgres reads its prefix and writes nothing", () => {
    const p = plan();
    expect(p.aclPolicies!.map((x) => x.name).sort()).toEqual(["coturn-consul-read", "ingress-proxy-consul-read", "postgres-consul-read", "wellknown-consul-read"]);
    const pushed = p.files.find((f) => f.container === "postgres" && f.path === CONSUL_TOKEN_PATH)!;
    expect(pushed).toBeDefined();
    const agent = ConsulDevAgent.start({ acl: true });
    try {
      const consul = new Consul(`http://${agent.httpAddress}`, agent.managementToken);
      for (const x of p.aclPolicies!) consul.createPolicy(x);
      for (const x of p.aclTokens!) consul.createToken(x);
      consul.put("service/postgres/databases/app/owner", "app");
      consul.put("service/haproxy/deny/admin", "synapse-admin");
      expect(agent.http("GET", "/v1/kv/service/postgres/databases/app/owner?raw", pushed.content)).toEqual({ status: 200, body: "app" });
      expect(agent.http("GET", "/v1/kv/service/haproxy/deny/admin", pushed.content).status).toBe(403);
      expect(agent.http("PUT", "/v1/kv/service/haproxy/deny/admin", pushed.content, "x").status).toBe(403);
      // The teardown removes them again.
      consul.deleteAcl(p.aclTokens!.map((t) => t.accessorId), p.aclPolicies!.map((x) => x.name));
      expect(agent.http("GET", "/v1/kv/service/postgres/databases/app/owner", pushed.content).status).toBe(403);
      expect(JSON.parse(agent.http("GET", "/v1/acl/policies", agent.managementToken).body).map((x: any) => x.Name)).toEqual(["global-management"]);
    } finally {
      agent.stop();
    }
  });
});
