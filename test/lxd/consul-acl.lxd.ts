/**
 * Consul ACLs in the running containers (host.consul.acl, the default): each module container
 * reads Consul with the token pushed to /etc/consul-template/consul-token, which reads its own
 * prefixes only and writes nothing; without a token a container can neither read nor write KV.
 * The attacks of the security issue: removing the admin-path deny, replacing a database's owner.
 */
import { deployment } from "./support/deployment";
import { shIn } from "./support/lxd";

const d = deployment();
const consulUrl = `http://${d.state.facts.CONSUL_ADDRESS}`;
const acl = d.state.facts.CONSUL_ACL === "1";
const TOKEN = "/etc/consul-template/consul-token";

/** The HTTP status of one KV request from inside `container`, with its token or none. */
function kvStatus(container: string, method: "GET" | "PUT" | "DELETE", key: string, withToken: boolean): string {
  const data = method === "PUT" ? "--data rewritten" : "";
  const token = withToken ? `-H "X-Consul-Token: $(cat ${TOKEN})"` : "";
  const r = shIn(container, `curl -s -o /dev/null -w '%{http_code}' -X ${method} ${data} ${token} ${consulUrl}/v1/kv/${key}`);
  return r.stdout.trim();
}

describe("Consul ACLs in the module containers", () => {
  const denyKey = Object.keys(d.state.plan.kv).find((k) => k.startsWith("service/haproxy/deny/"))!;
  const ownerKey = Object.keys(d.state.plan.kv).find((k) => /^service\/postgres\/databases\/[^/]+\/owner$/.test(k))!;

  test("the suite's host enforces ACLs (host.consul.acl: true, the default) and the plan has an admin-path deny and a database registration to attack", () => {
    expect(acl).toBe(true);
    expect(denyKey).toBeDefined();
    expect(ownerKey).toBeDefined();
  });

  test.each(["ingress-proxy", "postgres", "wellknown", "coturn"] as const)("%s: neither its token nor no token writes or deletes the contract", (c) => {
    const name = d.name(c);
    for (const key of [denyKey, ownerKey]) {
      for (const withToken of [true, false]) {
        expect({ key, withToken, put: kvStatus(name, "PUT", key, withToken) }).toEqual({ key, withToken, put: "403" });
        expect({ key, withToken, del: kvStatus(name, "DELETE", key, withToken) }).toEqual({ key, withToken, del: "403" });
      }
    }
    expect(d.consul.get(denyKey)).toBe(d.state.plan.kv[denyKey]);
    expect(d.consul.get(ownerKey)).toBe(d.state.plan.kv[ownerKey]);
  });

  test("each token reads its own prefix and not another module's", () => {
    expect(kvStatus(d.name("ingress-proxy"), "GET", denyKey, true)).toBe("200");
    expect(kvStatus(d.name("postgres"), "GET", ownerKey, true)).toBe("200");
    expect(kvStatus(d.name("ingress-proxy"), "GET", ownerKey, true)).toBe("403");
    expect(kvStatus(d.name("postgres"), "GET", denyKey, true)).toBe("403");
    expect(kvStatus(d.name("wellknown"), "GET", denyKey, false)).toBe("403");
  });
});

