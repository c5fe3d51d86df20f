import { TerraformStack, TerraformVariable } from "cdktf";
import { parse } from "yaml";
import { Synapse, SynapseProps } from "../constructs/matrix/synapse";
import { IngressProxy } from "../constructs/modules/ingress-proxy";
import { Host, HostProps } from "../lib/host";
import { SYNAPSE_PATHS, SYNAPSE_SECRET_SECTIONS } from "../lib/render/synapse";
import { DUAL_STACK_HOST, IPV4_HOST, hostStack, synthJson } from "./support/fixtures";
import { checkCloudInit, checkNftables } from "./support/validators";

/** A sensitive variable's token (created once per stack and name). */
function secret(stack: TerraformStack, name: string): string {
  const existing = stack.node.tryFindChild(name) as TerraformVariable | undefined;
  return (existing ?? new TerraformVariable(stack, name, { type: "string", sensitive: true })).stringValue;
}

function baseProps(stack: TerraformStack, host: Host): SynapseProps {
  return {
    host,
    ingress: IngressProxy.reference(host),
    projectId: "matrix",
    domain: "example.com",
    adminUser: "admin",
    adminEmail: "admin@example.com",
    adminPassword: secret(stack, "admin_password"),
    database: { host: "10.10.1.13", port: 5432, database: "synapse", user: "synapse_user", password: secret(stack, "synapse_db_password") },
    turn: { domain: "turn.example.com", sharedSecret: secret(stack, "turn_secret") },
  };
}

function deploy(props: Partial<SynapseProps> = {}, hostProps: HostProps = DUAL_STACK_HOST) {
  const { stack, host } = hostStack(hostProps);
  const synapse = new Synapse(stack, "synapse", { ...baseProps(stack, host), ...props });
  return { json: synthJson(stack), synapse, stack, host };
}

const resources = (json: any, type: string): any[] => Object.values(json.resource[type] ?? {});
const instanceOf = (json: any) => resources(json, "lxd_instance")[0];
const userDataOf = (json: any): string => instanceOf(json).config["cloud-init.user-data"];
const pushedFile = (json: any, target: string): any => resources(json, "lxd_instance_file").find((f) => f.target_path === target);
const fileIn = (userData: string, path: string): string | undefined =>
  parse(userData).write_files.find((f: any) => f.path === path)?.content;
/** The message of the error `attempt` throws (each attempt adds a construct, so run it once). */
function errorOf(attempt: () => unknown): string {
  try {
    attempt();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error("expected an error");
}
const kv = (json: any): Record<string, string> =>
  Object.fromEntries(resources(json, "consul_keys").flatMap((r) => r.key.map((k: any) => [k.path, k.value])));

describe("Synapse ingress registration", () => {
  test("answers /_synapse/admin with 403 on every host", () => {
    const keys = kv(deploy().json);
    expect(keys["service/haproxy/acl/matrix-synapse-path-synapse-admin/path"]).toBe("/_synapse/admin");
    expect(keys).not.toHaveProperty("service/haproxy/acl/matrix-synapse-path-synapse-admin/host");
    expect(keys).toHaveProperty("service/haproxy/deny/matrix-synapse-path-synapse-admin", "");
    expect(keys).not.toHaveProperty("service/haproxy/use-backend/matrix-synapse-path-synapse-admin");
  });

  test("routes /_matrix and /_synapse/client on matrix.<domain> to the Synapse backend", () => {
    const keys = kv(deploy().json);
    expect(keys).toHaveProperty("service/haproxy/backends/no-ssl/matrix-synapse", "");
    for (const [acl, path] of [["matrix-synapse-path-matrix", "/_matrix"], ["matrix-synapse-path-synapse-client", "/_synapse/client"]]) {
      expect(keys[`service/haproxy/acl/${acl}/host`]).toBe("matrix.example.com");
      expect(keys[`service/haproxy/acl/${acl}/path`]).toBe(path);
      expect(keys[`service/haproxy/use-backend/${acl}`]).toBe("matrix-synapse");
    }
  });

  test("two projects on one host get their own container, service, backend and ACLs", () => {
    const { stack, host } = hostStack();
    const one = new Synapse(stack, "one", baseProps(stack, host));
    const two = new Synapse(stack, "two", { ...baseProps(stack, host), projectId: "chat", domain: "example.org", hostPart: 30 });
    expect([one.name, two.name]).toEqual(["matrix-synapse", "chat-synapse"]);
    const json = synthJson(stack);
    expect(resources(json, "consul_service").map((s) => s.name).sort()).toEqual(["chat-synapse", "matrix-synapse"]);
    const paths = resources(json, "consul_keys").flatMap((r) => r.key.map((k: any) => k.path));
    expect(new Set(paths).size).toBe(paths.length);
    expect(kv(json)["service/haproxy/use-backend/chat-synapse-path-matrix"]).toBe("chat-synapse");
    expect(kv(json)["service/haproxy/acl/chat-synapse-path-matrix/host"]).toBe("matrix.example.org");
  });
});

describe("Synapse container", () => {
  test("registers the container's name in the Consul catalog on port 8008", () => {
    const { json } = deploy({ name: "chat-homeserver", hostPart: 25 });
    expect(resources(json, "consul_service")).toEqual([expect.objectContaining({ name: "chat-homeserver", address: "10.10.1.25", port: 8008 })]);
    expect(instanceOf(json).name).toBe("chat-homeserver");
  });

  test("keeps media, signing key and markers on a protected volume", () => {
    const { json } = deploy();
    expect(resources(json, "lxd_storage_volume")).toEqual([expect.objectContaining({ name: "matrix-synapse-data", lifecycle: { prevent_destroy: true } })]);
    const disk = instanceOf(json).device.find((d: any) => d.type === "disk");
    expect(disk.properties.path).toBe(SYNAPSE_PATHS.dataDir);
    expect(resources(deploy({ protectData: false }).json, "lxd_storage_volume")[0].lifecycle).toEqual({ prevent_destroy: false });
  });

  test("opens only port 8008, and only to the ingress proxy and the host's own address", () => {
    const { json } = deploy();
    const nft = fileIn(userDataOf(json), "/etc/nftables.conf")!;
    const accepts = nft.split("\n").filter((l) => /dport/.test(l) && !/DHCPv6/.test(l)).map((l) => l.trim());
    expect(accepts).toEqual([
      'ip saddr { 10.10.1.10/32 } tcp dport { 8008 } accept comment "Synapse client and federation API from the ingress proxy only"',
      'ip6 saddr { fd10:10:10:1::1:10/128 } tcp dport { 8008 } accept comment "Synapse client and federation API from the ingress proxy only"',
      'ip saddr { 10.10.1.1/32 } tcp dport { 8008 } accept comment "Synapse API for synapse-admin from the admin networks"',
      'ip6 saddr { fd10:10:10:1::1:1/128 } tcp dport { 8008 } accept comment "Synapse API for synapse-admin from the admin networks"',
    ]);
    expect(nft).not.toContain("10.10.1.0/24");
    expect(checkNftables(nft)).toBeDefined();
  });

  test("admits the configured admin networks instead of the host's address", () => {
    const { json } = deploy({ adminNetworks: ["192.168.50.0/24"] });
    const nft = fileIn(userDataOf(json), "/etc/nftables.conf")!;
    expect(nft).toContain('ip saddr { 192.168.50.0/24 } tcp dport { 8008 } accept comment "Synapse API for synapse-admin from the admin networks"');
    expect(nft).not.toContain("10.10.1.1/32");
    checkNftables(nft);
  });

  test("user-data passes cloud-init's schema, on the stock image and on a pre-built one", () => {
    expect(checkCloudInit(userDataOf(deploy().json))).toMatch(/Valid cloud-config/);
    expect(checkCloudInit(userDataOf(deploy({ image: "local:synapse-1.163.2" }, IPV4_HOST).json))).toMatch(/Valid cloud-config/);
  });

  test("the stock image raises the firewall, then installs the pinned Synapse package, then the bootstrap", () => {
    const { json } = deploy({ version: "1.160.0" });
    const doc = parse(userDataOf(json));
    expect(doc.packages).toEqual(expect.arrayContaining(["curl", "gnupg"]));
    expect(fileIn(userDataOf(json), SYNAPSE_PATHS.installScript)).toContain("matrix-synapse-py3=1.160.0+bookworm1");
    const run: string[] = doc.runcmd;
    const firewall = run.findIndex((c) => c.startsWith("nft -f /etc/nftables.conf"));
    expect(firewall).toBeGreaterThanOrEqual(0);
    expect(firewall).toBeLessThan(run.indexOf(SYNAPSE_PATHS.installScript));
    expect(run.indexOf(SYNAPSE_PATHS.installScript)).toBeLessThan(run.indexOf("systemctl start synapse-bootstrap.service"));
    expect(instanceOf(json).image).toBe("images:debian/12/cloud");
  });

  test("a pre-built image installs nothing and still bootstraps", () => {
    const { json } = deploy({ image: "local:synapse-1.163.2" });
    const doc = parse(userDataOf(json));
    expect(doc.packages).toBeUndefined();
    expect(doc.runcmd).not.toContain(SYNAPSE_PATHS.installScript);
    expect(fileIn(userDataOf(json), SYNAPSE_PATHS.installScript)).toBeUndefined();
    expect(doc.runcmd).toContain("systemctl start synapse-bootstrap.service");
    expect(instanceOf(json).image).toBe("local:synapse-1.163.2");
  });

  test("the bootstrap talks to Synapse over IPv4 on IPv4-only hosts, where Synapse binds 0.0.0.0", () => {
    const userData = userDataOf(deploy({}, IPV4_HOST).json);
    expect(fileIn(userData, SYNAPSE_PATHS.bootstrapScript)).toContain("LOCAL_URL=http://127.0.0.1:8008");
    expect(parse(fileIn(userData, `${SYNAPSE_PATHS.stagingDir}/homeserver.yaml`)!).listeners[0].bind_addresses).toEqual(["0.0.0.0"]);
  });
});

describe("Synapse secrets", () => {
  test("generates the registration, macaroon and form secrets at apply time and pushes them in the secrets fragment, root-only", () => {
    const { json } = deploy();
    expect(resources(json, "random_password")).toEqual([
      { length: 48, special: false },
      { length: 48, special: false },
      { length: 48, special: false },
    ]);
    const fragment = pushedFile(json, SYNAPSE_PATHS.secretsConfig);
    expect(fragment).toMatchObject({ instance: "matrix-synapse", mode: "0600", uid: 0, gid: 0, create_directories: true });
    for (const key of ["registration_shared_secret", "macaroon_secret_key", "form_secret"]) {
      expect(fragment.content).toMatch(new RegExp(`^${key}: \\$\\{jsonencode\\(random_password\\.[\\w-]+\\.result\\)\\}$`, "m"));
    }
    expect(fragment.content).toContain("turn_shared_secret: ${jsonencode(var.turn_secret)}");
    expect(fragment.content).toContain("    password: ${jsonencode(var.synapse_db_password)}");
    // None of it in homeserver.yaml, which cloud-init writes.
    const homeserver = parse(fileIn(userDataOf(json), `${SYNAPSE_PATHS.stagingDir}/homeserver.yaml`)!);
    for (const key of SYNAPSE_SECRET_SECTIONS) expect(homeserver).not.toHaveProperty(key);
  });

  test("pushes the admin password verbatim into a root-only file, never into the user-data", () => {
    const { json } = deploy();
    expect(pushedFile(json, SYNAPSE_PATHS.adminPasswordFile)).toMatchObject({ content: "${var.admin_password}", mode: "0600", uid: 0, gid: 0 });
    expect(parse(userDataOf(json)).write_files.map((f: any) => f.path)).not.toContain(SYNAPSE_PATHS.adminPasswordFile);
  });

  test("starts the bootstrap only once Terraform has pushed both secret files", () => {
    const runcmd: string[] = parse(userDataOf(deploy().json)).runcmd;
    const wait = runcmd.findIndex((c) => c.includes(SYNAPSE_PATHS.secretsConfig) && c.includes(SYNAPSE_PATHS.adminPasswordFile));
    expect(wait).toBeGreaterThan(runcmd.indexOf("nft -f /etc/nftables.conf"));
    expect(wait).toBeLessThan(runcmd.indexOf("systemctl start synapse-bootstrap.service"));
  });

  test("puts no secret literal into the synthesized JSON", () => {
    const { stack, host } = hostStack();
    const smtpPassword = secret(stack, "smtp_password");
    new Synapse(stack, "synapse", { ...baseProps(stack, host), smtp: { host: "smtp.example.com", port: 587, user: "mailer", password: smtpPassword } });
    const text = JSON.stringify(synthJson(stack));
    // Random-looking: 24+ letters and digits mixing upper case, lower case and digits.
    const randomLooking = (text.match(/[A-Za-z0-9]{24,}/g) ?? []).filter((s) => /[a-z]/.test(s) && /[A-Z]/.test(s) && /[0-9]/.test(s));
    expect(randomLooking).toEqual([]);
    expect(pushedFile(synthJson(stack), SYNAPSE_PATHS.secretsConfig).content).toContain("smtp_pass: ${jsonencode(var.smtp_password)}");
  });

  test("refuses literal secrets, names every offending prop and never echoes the value", () => {
    const { stack, host } = hostStack();
    const literal = "Sample-Admin-Pass1";
    const props = baseProps(stack, host);
    const attempt = () =>
      new Synapse(stack, "synapse", {
        ...props,
        adminPassword: literal,
        database: { ...props.database, password: literal },
        smtp: { host: "smtp.example.com", port: 587, user: "mailer", password: literal },
      });
    const message = errorOf(attempt);
    expect(message).toMatch(/adminPassword: must be a Terraform token/);
    expect(message).toMatch(/database\.password: must be a Terraform token/);
    expect(message).toMatch(/smtp\.password: must be a Terraform token/);
    expect(message).not.toContain(literal);
  });

  test("has Terraform check the admin password against Synapse's policy before creating the container", () => {
    const [check] = instanceOf(deploy().json).lifecycle.precondition;
    expect(check.condition).toBe(
      '${((((length(var.admin_password) >= 12) && (length(regexall("[0-9]", var.admin_password)) >= 1)) && (length(regexall("[a-z]", var.admin_password)) >= 1)) && (length(regexall("[A-Z]", var.admin_password)) >= 1))}',
    );
    expect(check.error_message).toMatch(/at least 12 characters, a digit, a lower-case letter, an upper-case letter/);
  });

  test("the user-data holds no Terraform expression at all: no variable, no generated secret", () => {
    const { stack, host } = hostStack();
    new Synapse(stack, "synapse", { ...baseProps(stack, host), passwordPepper: secret(stack, "pepper"), smtp: { host: "smtp.example.com", port: 587, user: "mailer", password: secret(stack, "smtp_password") } });
    expect(userDataOf(synthJson(stack)).match(/[$%]\{[^}]*\}/g)).toBeNull();
  });

  test("the secret files' expressions each refer to a variable or a generated secret, escaped for YAML", () => {
    const { stack, host } = hostStack();
    new Synapse(stack, "synapse", { ...baseProps(stack, host), passwordPepper: secret(stack, "pepper"), smtp: { host: "smtp.example.com", port: 587, user: "mailer", password: secret(stack, "smtp_password") } });
    const json = synthJson(stack);
    const expressions = pushedFile(json, SYNAPSE_PATHS.secretsConfig).content.match(/[$%]\{[^}]*\}/g);
    // The database, SMTP and TURN passwords, the pepper and the three generated secrets.
    expect(expressions).toHaveLength(7);
    for (const e of expressions) expect(e).toMatch(/^\$\{jsonencode\((var\.\w+|random_password\.[\w-]+\.result)\)\}$/);
  });
});

describe("Synapse upgrades", () => {
  const triggerOf = (json: any) => resources(json, "terraform_data")[0].triggers_replace;

  test("replaces the container through a terraform_data trigger that holds the version", () => {
    const { json } = deploy();
    const [address] = instanceOf(json).lifecycle.replace_triggered_by;
    const [type, name] = address.split(".");
    expect(json.resource[type][name].triggers_replace.user_data).toContain("matrix-synapse-py3=1.163.2+bookworm1");
    expect(instanceOf(json).config["user.synapse-version"]).toBe("1.163.2");
  });

  test("a new version changes the trigger but not the data volume", () => {
    const before = deploy({ version: "1.162.0" }).json;
    const after = deploy({ version: "1.163.2" }).json;
    expect(triggerOf(before).user_data).toContain("matrix-synapse-py3=1.162.0+bookworm1");
    expect(triggerOf(after).user_data).toContain("matrix-synapse-py3=1.163.2+bookworm1");
    expect(json(before.resource.lxd_storage_volume)).toBe(json(after.resource.lxd_storage_volume));
    expect(instanceOf(before).lifecycle.replace_triggered_by).toEqual(instanceOf(after).lifecycle.replace_triggered_by);
  });

  test("with a pre-built image, a new version replaces the container too (same alias, same volume)", () => {
    const before = deploy({ version: "1.162.0", image: "local:synapse" }).json;
    const after = deploy({ version: "1.163.2", image: "local:synapse" }).json;
    expect(triggerOf(before).image).toBe(triggerOf(after).image);
    expect(triggerOf(before).synapse_version).toBe("1.162.0");
    expect(triggerOf(after).synapse_version).toBe("1.163.2");
    const [address] = instanceOf(after).lifecycle.replace_triggered_by;
    expect(address).toBe(`terraform_data.${Object.keys(after.resource.terraform_data)[0]}`);
    expect(json(before.resource.lxd_storage_volume)).toBe(json(after.resource.lxd_storage_volume));
  });

  test("a configuration change changes the trigger too, since cloud-init runs only once", () => {
    const before = triggerOf(deploy().json);
    const after = triggerOf(deploy({ roomComplexity: 10 }).json);
    expect(after.user_data).not.toBe(before.user_data);
    expect(after.image).toBe(before.image);
  });

});

describe("Synapse props", () => {
  test("reports every invalid prop at once, with the valid range", () => {
    const { stack, host } = hostStack();
    const attempt = () =>
      new Synapse(stack, "synapse", {
        ...baseProps(stack, host),
        projectId: "Matrix_Project_Too_Long",
        domain: "Example.com.",
        adminUser: "Admin User",
        adminEmail: "not-an-email",
        version: "latest",
        turn: { domain: "turn", listeningPort: 5349, tlsListeningPort: 5349, sharedSecret: secret(stack, "t2") },
        roomComplexity: 0,
        smtp: { host: "smtp.example.com", port: 70000, notifFrom: "Example <noreply@example.com>\r\nBcc: victim@example.org" },
      });
    const message = errorOf(attempt);
    expect(message).toMatch(/synapse: invalid Synapse props/);
    for (const problem of [
      /projectId: must be 1-15 lower-case letters/,
      /domain: must be a lower-case DNS name/,
      /adminUser: must be a Matrix user name/,
      /adminEmail: must be an e-mail address/,
      /version: must be a Synapse release such as 1\.163\.2, got "latest"/,
      /turn\.domain: must be a lower-case DNS name/,
      /turn\.tlsListeningPort: must differ from turn\.listeningPort \(5349\)/,
      /roomComplexity: must be a number above 0/,
      /smtp\.port: must be an integer from 1 to 65535, got 70000/,
      /smtp\.notifFrom: must be one line of text, .*without control characters/,
    ]) {
      expect(message).toMatch(problem);
    }
  });

  test("refuses a host part another container holds", () => {
    const { stack, host } = hostStack();
    new Synapse(stack, "one", baseProps(stack, host));
    expect(() => new Synapse(stack, "two", { ...baseProps(stack, host), projectId: "chat" })).toThrow(/two\.hostPart: 10\.10\.1\.20 is already used by matrix-synapse/);
  });
});

function json(value: unknown): string {
  return JSON.stringify(value);
}
