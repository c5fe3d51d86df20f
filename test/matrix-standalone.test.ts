import * as fs from "fs";
import * as path from "path";
import { App, TerraformVariable, Testing } from "cdktf";
import { loadConfig, parseConfig } from "../lib/config";
import { MatrixStandaloneStack } from "../constructs/matrix/matrix-standalone-stack";
import { kvPaths } from "../lib/kv";
import { exampleConfig, kvEntries } from "./support/fixtures";
import { parse } from "yaml";

const EXAMPLE = path.join(__dirname, "..", "config", "example.yaml");

function synthExample(): any {
  const app = Testing.app();
  const stack = new MatrixStandaloneStack(app, "ryo-matrix", { config: loadConfig(EXAMPLE, {}) });
  return JSON.parse(Testing.synth(stack));
}

const kv = kvEntries;

const instances = (json: any): any[] => Object.values(json.resource.lxd_instance);

describe("MatrixStandaloneStack from the example configuration", () => {
  const json = synthExample();
  const keys = kv(json);

  test("matches the snapshot (deterministic: no timestamps, random values or absolute paths)", () => {
    const text = JSON.stringify(json);
    expect(text).not.toContain(process.cwd());
    expect(text).not.toMatch(/20\d\d-\d\d-\d\dT\d\d:\d\d/);
    expect(json).toMatchSnapshot();
  });

  test("with LXD provider 1.x (host.lxd.provider: 1) matches its own snapshot", () => {
    const v1 = JSON.parse(Testing.synth(new MatrixStandaloneStack(Testing.app(), "ryo-matrix", { config: exampleConfig(1) })));
    expect(Object.keys(v1.resource).filter((t) => t.startsWith("lxd_")).sort()).toEqual(["lxd_container", "lxd_container_file", "lxd_volume"]);
    expect(v1).toMatchSnapshot();
  });

  test("synthesizes identically twice", () => {
    expect(JSON.stringify(synthExample())).toBe(JSON.stringify(json));
  });

  test("deploys the four shared modules and the three Matrix containers, prefixed by the project id", () => {
    expect(instances(json).map((i) => i.name).sort()).toEqual([
      "coturn",
      "ingress-proxy",
      "postgres",
      "ryo-matrix-element",
      "ryo-matrix-synapse",
      "ryo-matrix-synapse-admin",
      "wellknown",
    ]);
    expect(Object.values<any>(json.resource.consul_service).map((s) => s.name).sort()).toEqual(
      ["coturn", "ingress-proxy", "postgres", "ryo-matrix-element", "ryo-matrix-synapse", "ryo-matrix-synapse-admin", "wellknown"].sort(),
    );
  });

  test("requests certificates for the domain, matrix., element. and the TURN domain", () => {
    for (const fqdn of ["example.com", "matrix.example.com", "element.example.com", "turn.example.com"]) {
      expect(keys[kvPaths.certificateDomain(fqdn)]).toBe("admin@example.com");
    }
  });

  test("denies the Synapse admin API at the proxy and routes the client API to Synapse", () => {
    const denied = Object.keys(keys).filter((k) => k.startsWith("service/haproxy/deny/"));
    expect(denied).toHaveLength(1);
    const acl = denied[0].split("/").pop()!;
    expect(keys[kvPaths.aclPath(acl)]).toBe("/_synapse/admin");
    const routedToSynapse = Object.entries(keys)
      .filter(([k, v]) => k.startsWith("service/haproxy/use-backend/") && v === "ryo-matrix-synapse")
      .map(([k]) => keys[kvPaths.aclPath(k.split("/").pop()!)]);
    expect(routedToSynapse.sort()).toEqual(["/_matrix", "/_synapse/client"]);
  });

  test("never routes synapse-admin through the public proxy", () => {
    const service = "ryo-matrix-synapse-admin";
    expect(Object.keys(keys).filter((k) => k.startsWith("service/haproxy/backends/") && k.endsWith(`/${service}`))).toEqual([]);
    expect(Object.entries(keys).filter(([k, v]) => k.startsWith("service/haproxy/use-backend/") && v === service)).toEqual([]);
    expect(Object.keys(keys).filter((k) => k.startsWith("service/haproxy/backends/")).length).toBeGreaterThanOrEqual(3);
    const admin = instances(json).find((i) => i.name === "ryo-matrix-synapse-admin");
    expect(admin.device.filter((d: any) => d.type === "proxy")).toEqual([]);
  });

  test("serves the .well-known documents on the bare domain", () => {
    const payload = (rule: string) => JSON.parse(keys[`${kvPaths.wellknownJson("example.com", `ryo-matrix-matrix-${rule}`)}/payload`]);
    expect(payload("client")).toEqual({ "m.homeserver": { base_url: "https://matrix.example.com" } });
    expect(payload("server")).toEqual({ "m.server": "matrix.example.com:443" });
    expect(payload("support")).toEqual({
      contacts: [{ matrix_id: "@admin:example.com", email_address: "admin@example.com", role: "m.role.admin" }],
    });
    expect(keys[`${kvPaths.wellknownJson("example.com", "ryo-matrix-matrix-client")}/location`]).toBe("/.well-known/matrix/client");
  });

  test("registers a C-collated UTF8 database for Synapse from template0", () => {
    const db = kvPaths.postgresDatabase("ryo_matrix_synapse");
    expect(keys[`${db}/encoding`]).toBe("UTF8");
    expect(keys[`${db}/lc-collate`]).toBe("C");
    expect(keys[`${db}/lc-ctype`]).toBe("C");
    expect(keys[`${db}/template`]).toBe("template0");
  });

  test("gives Synapse turn: and turns: URIs and coturn's secret as a reference in its pushed secrets", () => {
    const synapse = instances(json).find((i) => i.name === "ryo-matrix-synapse");
    const userData: string = synapse.config["cloud-init.user-data"];
    for (const uri of [
      "turn:turn.example.com:3478?transport=udp",
      "turn:turn.example.com:3478?transport=tcp",
      "turns:turn.example.com:5349?transport=udp",
      "turns:turn.example.com:5349?transport=tcp",
    ]) {
      expect(userData).toContain(uri);
    }
    const coturnSecret = Object.keys(json.resource.random_password).find((k) => k.startsWith("modules_coturn"));
    const secrets = (Object.values(json.resource.lxd_instance_file) as any[]).find((f) => f.instance === "ryo-matrix-synapse" && f.target_path.endsWith("/secrets.yaml"));
    expect(secrets.content).toContain(`turn_shared_secret: \${jsonencode(random_password.${coturnSecret}.result)}`);
    expect(userData).not.toContain("random_password");
  });

  test("hands coturn's secret to other projects on the host only as a sensitive output", () => {
    const coturnSecret = Object.keys(json.resource.random_password).find((k) => k.startsWith("modules_coturn"));
    expect(json.output.turn_shared_secret).toMatchObject({ sensitive: true, value: `\${random_password.${coturnSecret}.result}` });
  });

  test("takes the admin password from a sensitive variable and checks its strength without printing it", () => {
    expect(json.variable.admin_password.sensitive).toBe(true);
    // A failing variable validation prints the value; a resource precondition does not.
    expect(json.variable.admin_password.validation).toBeUndefined();
    const synapse = instances(json).find((i) => i.name === "ryo-matrix-synapse");
    expect(synapse.lifecycle.precondition[0].condition).toMatch(/^\$\{.*length\(var\.admin_password\) >= 12/);
  });

  test.each([3, 1] as const)("pins the provider versions from versions.json, LXD's by the host's major (%p)", (major) => {
    const versions = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "versions.json"), "utf8"));
    const synthesized = major === 3 ? json : JSON.parse(Testing.synth(new MatrixStandaloneStack(Testing.app(), "ryo-matrix", { config: exampleConfig(1) })));
    const required = synthesized.terraform.required_providers;
    for (const [name, pin] of Object.entries<any>(versions.providers)) {
      const majors = Object.keys(pin.versions);
      const expected = name === "lxd" ? pin.versions[String(major)] : pin.versions[majors[majors.length - 1]];
      expect(required[name].version).toBe(expected);
      expect(required[name].source).toMatch(new RegExp(`${pin.source}$`));
    }
  });

  test("no generated secret is written as a literal: every secret is a reference", () => {
    const passwords = Object.keys(json.resource.random_password);
    expect(passwords.length).toBeGreaterThanOrEqual(5);
    const text = JSON.stringify(json);
    // Secrets appear only as references; no key or value looks like a secret literal.
    for (const [k, v] of Object.entries(keys)) {
      if (/password|secret/.test(k)) expect(v).toMatch(/\$\{/);
    }
    expect(text).not.toMatch(/(shared_secret|password|secret_key|form_secret)["']?\s*[:=]\s*["']?[A-Za-z0-9]{16,}/);
  });
});

describe("two Matrix projects on one host", () => {
  function twoProjects() {
    const app = Testing.app();
    const first = loadConfig(EXAMPLE, {});
    const firstStack = new MatrixStandaloneStack(app, "first", { config: first });
    const second = parseConfig(
      fs
        .readFileSync(EXAMPLE, "utf8")
        .replace("id: ryo-matrix", "id: second-matrix")
        .replace("domain: example.com", "domain: example.org")
        .replace("modules:\n  deploy: true", "modules:\n  deploy: false")
        .replace("project:\n", "project:\n  host_parts: { synapse: 30, element: 31, synapse_admin: 32 }\n"),
      "second.yaml",
      {},
    );
    const secondStack = new MatrixStandaloneStack(app, "second", { config: second, host: firstStack.host, modules: firstStack.modules });
    return { app, a: JSON.parse(Testing.synth(firstStack)), b: JSON.parse(Testing.synth(secondStack)) };
  }

  test("synthesize without colliding names, addresses or KV keys", () => {
    const { a, b } = twoProjects();
    const names = [...instances(a), ...instances(b)].map((i) => i.name);
    expect(new Set(names).size).toBe(names.length);
    const addresses = [...instances(a), ...instances(b)].map((i) => i.device.find((d: any) => d.name === "eth0").properties["ipv4.address"]);
    expect(new Set(addresses).size).toBe(addresses.length);
    const keysA = Object.keys(kv(a));
    const keysB = Object.keys(kv(b));
    expect(keysB.filter((k) => keysA.includes(k))).toEqual([]);
    expect(instances(b).map((i) => i.name).sort()).toEqual(["second-matrix-element", "second-matrix-synapse", "second-matrix-synapse-admin"]);
  });

  test("the second project registers with the first project's modules", () => {
    const { b } = twoProjects();
    const keys = kv(b);
    expect(keys[kvPaths.certificateDomain("matrix.example.org")]).toBe("admin@example.com");
    expect(Object.keys(keys).some((k) => k.startsWith(kvPaths.postgresDatabase("second_matrix_synapse")))).toBe(true);
  });

  test("refuses a second project on an address the first one uses", () => {
    const app = Testing.app();
    const first = new MatrixStandaloneStack(app, "first", { config: loadConfig(EXAMPLE, {}) });
    const clash = parseConfig(
      fs.readFileSync(EXAMPLE, "utf8").replace("id: ryo-matrix", "id: clash").replace("modules:\n  deploy: true", "modules:\n  deploy: false"),
      "clash.yaml",
      {},
    );
    expect(() => new MatrixStandaloneStack(app, "clash", { config: clash, host: first.host, modules: first.modules })).toThrow(
      /10\.10\.1\.20 is already used by ryo-matrix-synapse/,
    );
  });
});

describe("synapse-admin's admin networks", () => {
  test("reach synapse-admin and Synapse's API, which the UI calls from the browser", () => {
    const text = fs.readFileSync(EXAMPLE, "utf8");
    const app = Testing.app();
    const stack = new MatrixStandaloneStack(app, "s", { config: parseConfig(text, "x.yaml", {}) });
    const { Synapse } = require("../constructs/matrix/synapse");
    const { MatrixStandalone } = require("../constructs/matrix/matrix-standalone");
    const matrix = new MatrixStandalone(stack, "vpn", {
      host: stack.host,
      modules: stack.modules,
      projectId: "vpn",
      domain: "example.net",
      turnDomain: "turn.example.net",
      admin: { username: "admin", email: "admin@example.net", password: new TerraformVariable(stack, "vpn_admin_password", { sensitive: true }).stringValue },
      hostParts: { synapse: 40, element: 41, synapseAdmin: 42 },
      synapseAdmin: { adminNetworks: ["10.0.1.0/24"] },
    });
    expect(matrix.synapse).toBeInstanceOf(Synapse);
    const nft = (c: any) => parse(c.container.userData).write_files.find((f: any) => f.path === "/etc/nftables.conf").content;
    expect(nft(matrix.synapseAdmin)).toContain("ip saddr { 10.0.1.0/24 } tcp dport { 80 } accept");
    expect(nft(matrix.synapse)).toContain("ip saddr { 10.0.1.0/24 } tcp dport { 8008 } accept");
    expect(nft(stack.matrix.synapse)).not.toContain("10.0.1.0/24");
    // PostgreSQL admits this project's Synapse (host part 40) for its database.
    const kv = kvEntries(JSON.parse(Testing.synth(stack)));
    expect(kv[kvPaths.postgresClient("vpn_synapse-0")]).toBe(`${stack.host.ipv4NetworkPart}.40`);
  });
});

describe("an IPv4-only host", () => {
  test("gets no IPv6 addresses or listeners", () => {
    const text = fs.readFileSync(EXAMPLE, "utf8").replace(/\n  ipv6_prefix: .*\n  ipv6_subnet: .*/, "");
    const app = new App({ outdir: fs.mkdtempSync(path.join(require("os").tmpdir(), "v4-")) });
    const stack = new MatrixStandaloneStack(app, "v4", { config: parseConfig(text, "v4.yaml", {}) });
    const json = JSON.parse(Testing.synth(stack));
    for (const instance of instances(json)) {
      for (const device of instance.device) {
        expect(device.properties["ipv6.address"]).toBeUndefined();
        if (device.type === "proxy") expect(device.properties.listen).not.toContain("[");
      }
    }
  });
});
