/**
 * Consul ACLs end to end against a real `consul agent -dev` with ACLs on (default deny): the
 * policies the stack synthesizes for the module containers are created through Consul's API,
 * and each container's token reads its own prefixes, writes nothing and reads no other
 * module's keys; the module's consul-template configuration renders with the token from its
 * file. The DNS policy the host gives its agent's default token reads the catalog only.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Testing } from "cdktf";
import { SharedModules } from "../constructs/modules/shared-modules";
import { ServiceContainer } from "../constructs/core/service-container";
import { Host } from "../lib/host";
import { KV_PREFIX } from "../lib/kv";
import { CONSUL_DNS_POLICY, CONSUL_TOKEN_PATH } from "../lib/render/consul-acl";
import { renderConsulTemplateConfig } from "../lib/render/consul-template";
import { POSTGRES_DATABASES_TEMPLATE } from "../lib/render/postgres";
import { ConsulDevAgent } from "./support/consul-template-render";
import { DUAL_STACK_HOST, hostStack } from "./support/fixtures";

/** The synthesized stack of the four shared modules, with the host's settings given. */
function modulesJson(consul?: { acl?: boolean }): any {
  const { stack, host } = hostStack({ ...DUAL_STACK_HOST, consul: { ...DUAL_STACK_HOST.consul, ...consul } });
  new SharedModules(stack, "modules", { host, coturn: { domain: "turn.example.com", adminEmail: "admin@example.com" } });
  return JSON.parse(Testing.synth(stack));
}

/** container name → the rules of its synthesized policy. */
function policiesByContainer(json: any): Record<string, string> {
  return Object.fromEntries(
    Object.values<any>(json.resource.consul_acl_policy ?? {}).map((p) => [String(p.name).replace(/-consul-read$/, ""), p.rules as string]),
  );
}

/** One key of each module's prefix, as the projects' registrations write them. */
const KV: Record<string, string> = {
  [`${KV_PREFIX.haproxy}/deny/admin`]: "synapse-admin",
  [`${KV_PREFIX.certbot}/matrix.example.com`]: "admin@example.com",
  [`${KV_PREFIX.postgres}/databases/synapse/owner`]: "synapse_user",
  [`${KV_PREFIX.wellknown}/json/example.com/server`]: '{"m.server":"matrix.example.com:443"}',
  [`${KV_PREFIX.coturn}/listening-port`]: "3478",
};
const READS: Record<string, string[]> = {
  "ingress-proxy": [KV_PREFIX.haproxy, KV_PREFIX.certbot],
  postgres: [KV_PREFIX.postgres],
  wellknown: [KV_PREFIX.wellknown],
  coturn: [KV_PREFIX.coturn],
};

describe("Consul ACLs for the module containers", () => {
  test("on by default: each consul-template container gets its own policy, token and pushed token file; off, none", () => {
    const json = modulesJson();
    expect(Object.keys(policiesByContainer(json)).sort()).toEqual(Object.keys(READS).sort());
    expect(Object.values<any>(json.resource.consul_acl_token)).toHaveLength(4);
    const tokenFiles = Object.values<any>(json.resource.lxd_instance_file).filter((f) => f.target_path === CONSUL_TOKEN_PATH);
    expect(tokenFiles.map((f) => f.instance).sort()).toEqual(Object.keys(READS).sort());
    for (const f of tokenFiles) {
      // The secret comes from Consul at apply time: never a literal in the output.
      expect(f.content).toMatch(/^\$\{data\.consul_acl_token_secret_id\.[\w-]+\.secret_id\}$/);
      expect(f).toMatchObject({ mode: "0600", uid: 0, gid: 0 });
    }
    for (const instance of Object.values<any>(json.resource.lxd_instance)) {
      expect(instance.config["cloud-init.user-data"]).toContain(`token_file = "${CONSUL_TOKEN_PATH}"`);
    }
    // The provider's own token comes from the environment (CONSUL_HTTP_TOKEN), never the stack.
    expect(JSON.stringify(json.provider.consul)).not.toMatch(/token/);

    const off = modulesJson({ acl: false });
    expect(off.resource.consul_acl_policy).toBeUndefined();
    expect(off.resource.consul_acl_token).toBeUndefined();
    expect(JSON.stringify(off)).not.toContain("token_file");
  });

  test("rejects a host.consul.acl that is not a boolean, naming the field", () => {
    expect(() => new Host({ hostId: "h", ipv4NetworkPart: "10.10.1", publicIpv4: "192.0.2.10", consul: { acl: "yes" as unknown as boolean } })).toThrow(
      /host\.consul\.acl: must be true or false, got "yes"/,
    );
  });

  test("a container's consulTemplate must say what it reads, as KV paths", () => {
    const { stack, host } = hostStack();
    expect(
      () =>
        new ServiceContainer(stack, "app", {
          host,
          name: "app",
          hostPart: 40,
          firewall: [],
          consulTemplate: { templates: [], reads: { keyPrefixes: [] } },
        }),
    ).toThrow(/consulTemplate\.reads: must name the KV prefixes/);
    expect(
      () =>
        new ServiceContainer(stack, "app2", {
          host,
          name: "app2",
          hostPart: 41,
          firewall: [],
          consulTemplate: { templates: [], reads: { keyPrefixes: ["service/app", 'x" {} key_prefix "'] } },
        }),
    ).toThrow(/consulTemplate\.reads\.keyPrefixes\[1\]: must be a KV path/);
  });

  describe("with a real Consul agent (ACLs on, default deny)", () => {
    let agent: ConsulDevAgent;
    const tokens: Record<string, string> = {};
    const policies = policiesByContainer(modulesJson());

    beforeAll(() => {
      agent = ConsulDevAgent.start({ acl: true });
      agent.setKv(KV);
      const management = agent.managementToken!;
      for (const [container, rules] of Object.entries(policies)) {
        const policy = agent.http("PUT", "/v1/acl/policy", management, JSON.stringify({ Name: `${container}-consul-read`, Rules: rules }));
        expect(policy.status).toBe(200);
        const token = agent.http("PUT", "/v1/acl/token", management, JSON.stringify({ Policies: [{ Name: `${container}-consul-read` }] }));
        expect(token.status).toBe(200);
        tokens[container] = JSON.parse(token.body).SecretID;
      }
    }, 60_000);
    afterAll(() => agent?.stop());

    test("the anonymous token reads nothing (the agent really enforces ACLs)", () => {
      for (const key of Object.keys(KV)) expect(agent.http("GET", `/v1/kv/${key}`).status).toBe(403);
    });

    test.each(Object.keys(READS))("%s: reads its own prefixes, no other module's, and writes nothing", (container) => {
      const token = tokens[container];
      for (const [key, value] of Object.entries(KV)) {
        const own = READS[container].some((prefix) => key.startsWith(`${prefix}/`));
        const read = agent.http("GET", `/v1/kv/${key}?raw`, token);
        expect({ key, status: read.status }).toEqual({ key, status: own ? 200 : 403 });
        if (own) expect(read.body).toBe(value);
        // Not even its own keys: the KV contract is Terraform's to write.
        expect({ key, write: agent.http("PUT", `/v1/kv/${key}`, token, "rewritten").status }).toEqual({ key, write: 403 });
        expect({ key, remove: agent.http("DELETE", `/v1/kv/${key}`, token).status }).toEqual({ key, remove: 403 });
      }
      // A prefix that only begins like its own stays closed (the policy's trailing slash).
      expect(agent.http("PUT", `/v1/kv/${READS[container][0]}-other/x`, agent.managementToken, "x").status).toBe(200);
      expect(agent.http("GET", `/v1/kv/${READS[container][0]}-other/x`, token).status).toBe(403);
      // Nor can it take over a catalog entry (a database's registration, the Synapse role).
      const register = agent.http("PUT", "/v1/catalog/register", token, JSON.stringify({ Node: "postgres", Address: "10.10.1.99", Service: { Service: "postgres", Port: 5432 } }));
      expect(register.status).toBe(403);
      expect(agent.http("PUT", "/v1/acl/token", token, JSON.stringify({ Policies: [{ Name: "global-management" }] })).status).toBe(403);
      for (const [key, value] of Object.entries(KV)) expect(agent.http("GET", `/v1/kv/${key}?raw`, agent.managementToken).body).toBe(value);
    });

    test("PostgreSQL's consul-template renders the registrations with the token from its file", () => {
      const work = agent.scratchDir();
      const tokenFile = path.join(work, "consul-token");
      fs.writeFileSync(tokenFile, tokens.postgres, { mode: 0o600 });
      const source = path.join(work, "databases.json.ctmpl");
      fs.writeFileSync(source, POSTGRES_DATABASES_TEMPLATE);
      const destination = path.join(work, "databases.json");
      const config = renderConsulTemplateConfig({ consulAddress: agent.httpAddress, tokenFile, templates: [] }).replace(
        /\n$/,
        `\ntemplate {\n  source = ${JSON.stringify(source)}\n  destination = ${JSON.stringify(destination)}\n}\n`,
      );
      agent.renderConfig(config);
      expect(JSON.parse(fs.readFileSync(destination, "utf8"))).toEqual({ synapse: { owner: "synapse_user" } });
    });

    test("the DNS policy (the agent's default token) reads the catalog and no key", () => {
      const management = agent.managementToken!;
      expect(agent.http("PUT", "/v1/acl/policy", management, JSON.stringify({ Name: "dns-read", Rules: CONSUL_DNS_POLICY })).status).toBe(200);
      const token = JSON.parse(agent.http("PUT", "/v1/acl/token", management, JSON.stringify({ Policies: [{ Name: "dns-read" }] })).body).SecretID;
      expect(agent.http("PUT", "/v1/catalog/register", management, JSON.stringify({ Node: "synapse", Address: "10.10.1.20", Service: { Service: "synapse", Port: 8008 } })).status).toBe(200);
      const nodes = agent.http("GET", "/v1/catalog/service/synapse", token);
      expect(nodes.status).toBe(200);
      expect(JSON.parse(nodes.body).map((n: any) => n.Address)).toEqual(["10.10.1.20"]);
      // Without it (the anonymous token) the catalog is filtered to nothing.
      expect(JSON.parse(agent.http("GET", "/v1/catalog/service/synapse").body)).toEqual([]);
      expect(agent.http("GET", `/v1/kv/${Object.keys(KV)[0]}`, token).status).toBe(403);
      expect(agent.http("PUT", "/v1/catalog/register", token, JSON.stringify({ Node: "synapse", Address: "10.10.1.99" })).status).toBe(403);
    });
  });
});
