/**
 * Where the secrets of a whole deployment go, read from the synthesized Terraform JSON of the
 * example stack (with SMTP, with both LXD provider majors): never into any container's
 * user-data (which devlxd and cloud-init's instance-data hand to every user in the container),
 * only into files pushed by the LXD API, owned by root and unreadable by others.
 */
import * as fs from "fs";
import { Testing } from "cdktf";
import { parse } from "yaml";
import { MatrixStandaloneStack } from "../constructs/matrix/matrix-standalone-stack";
import { parseConfig } from "../lib/config";
import { SYNAPSE_PATHS, SYNAPSE_SECRET_SECTIONS } from "../lib/render/synapse";
import { COTURN_SECRET_PATH } from "../lib/render/turnserver";
import { EXAMPLE_CONFIG } from "./support/fixtures";

const SYNAPSE_IMAGE = "matrix-synapse-prebuilt";

function synth(major: 1 | 3): any {
  const text = fs
    .readFileSync(EXAMPLE_CONFIG, "utf8")
    .replace(/^  lxd:\n/m, `  lxd:\n    provider: ${major}\n`)
    .replace("project:\n", `project:\n  smtp: { host: smtp.example.com, port: 587, username: mailer }\n  synapse: { image: ${SYNAPSE_IMAGE} }\n`);
  const config = parseConfig(text, "example.yaml with SMTP", {});
  return JSON.parse(Testing.synth(new MatrixStandaloneStack(Testing.app(), "ryo-matrix", { config })));
}

/** Every string in `value` with the path that leads to it. */
function strings(value: unknown, at: string[] = []): { path: string[]; text: string }[] {
  if (typeof value === "string") return [{ path: at, text: value }];
  if (Array.isArray(value)) return value.flatMap((v, i) => strings(v, [...at, String(i)]));
  if (value && typeof value === "object") return Object.entries(value).flatMap(([k, v]) => strings(v, [...at, k]));
  return [];
}

describe.each([3, 1] as const)("the secrets of the example stack with LXD provider %p.x", (major) => {
  const json = synth(major);
  const instanceType = major === 3 ? "lxd_instance" : "lxd_container";
  const fileType = major === 3 ? "lxd_instance_file" : "lxd_container_file";
  const instances: any[] = Object.values(json.resource[instanceType]);
  // 3.x: lxd_instance_file resources; 1.x: the container's own `file` blocks (and
  // lxd_container_file for the database password pushed into PostgreSQL by its registration).
  const files: any[] = [
    ...Object.values(json.resource[fileType] ?? {}),
    ...(major === 1 ? instances.flatMap((i) => (i.file ?? []).map((f: any) => ({ ...f, container_name: i.name, block: true }))) : []),
  ];
  const userDataOf = (i: any): string => i.config[major === 3 ? "cloud-init.user-data" : "user.user-data"];
  const targetOf = (f: any): string => f[major === 3 ? "target_path" : "target_file"];
  const containerOf = (f: any): string => f[major === 3 ? "instance" : "container_name"];
  const passwords = Object.keys(json.resource.random_password);
  const variables = ["admin_password", "smtp_password"];
  // A reference to any generated secret or secret variable (coturn's secret is a random_password).
  const SECRET_REFERENCE = new RegExp(`random_password\\.|var\\.(${variables.join("|")})\\b`);

  test("the stack has the secrets this test looks for", () => {
    expect(passwords.length).toBeGreaterThanOrEqual(5);
    expect(passwords.some((p) => p.startsWith("modules_coturn"))).toBe(true);
    for (const v of variables) expect(json.variable[v].sensitive).toBe(true);
  });

  test("no user-data of any container refers to a secret", () => {
    expect(instances.length).toBeGreaterThanOrEqual(7);
    for (const instance of instances) {
      const userData = userDataOf(instance);
      expect({ container: instance.name, secretReferences: userData.match(new RegExp(SECRET_REFERENCE.source, "g")) }).toEqual({
        container: instance.name,
        secretReferences: null,
      });
      // Not even the keys: homeserver.yaml and coturn's template hold no secret setting.
      expect(userData).not.toMatch(/^\s*(static-auth-secret=|registration_shared_secret:|macaroon_secret_key:|form_secret:|turn_shared_secret:|smtp_pass:|password:)/m);
    }
  });

  test("secrets reach containers only as pushed files: root-owned, mode 0600", () => {
    const allowed = new Set([fileType, "random_password", "terraform_data", "consul_keys", ...(major === 1 ? ["lxd_container"] : [])]);
    const holders = strings(json.resource)
      .filter((s) => SECRET_REFERENCE.test(s.text))
      .map((s) => `${s.path[0]}.${s.path.slice(2).join(".")}`);
    const unexpected = holders.filter((h) => !allowed.has(h.split(".")[0]));
    // The instance's precondition checks the admin password's strength without holding it, and
    // Synapse's container waits for its database (an address, not a value).
    expect(unexpected.filter((h) => !/^(lxd_instance|lxd_container)\.(lifecycle\.precondition\.\d+\.condition|depends_on\.\d+)$/.test(h))).toEqual([]);
    // With 1.x the container holds its secrets in its file blocks, and nowhere else.
    for (const h of holders.filter((h) => h.startsWith("lxd_container.") && !/\.(lifecycle|depends_on)\./.test(h))) expect(h).toMatch(/^lxd_container\.file\.\d+\.content$/);
    // terraform_data holds digests only; consul_keys only PostgreSQL's password-sha256.
    for (const s of strings(json.resource.terraform_data).filter((s) => SECRET_REFERENCE.test(s.text))) expect(s.text).toMatch(/^\$\{sha256\(join\([^}]*\)\)\}:[0-9a-f]{64}$/);
    for (const s of strings(json.resource.consul_keys ?? {}).filter((s) => SECRET_REFERENCE.test(s.text))) expect(s.text).toMatch(/^\$\{sha256\(random_password\.[\w-]+\.result\)\}$/);

    const secretFiles = files.filter((f) => SECRET_REFERENCE.test(f.content));
    for (const f of secretFiles) expect({ target: targetOf(f), mode: f.mode, uid: f.uid, gid: f.gid }).toEqual({ target: targetOf(f), mode: "0600", uid: 0, gid: 0 });
    // Every generated secret and secret variable arrives in at least one file.
    for (const p of passwords) expect({ password: p, delivered: secretFiles.some((f) => f.content.includes(`random_password.${p}.result`)) }).toEqual({ password: p, delivered: true });
    for (const v of variables) expect({ variable: v, delivered: secretFiles.some((f) => f.content.includes(`var.${v}`)) }).toEqual({ variable: v, delivered: true });
  });

  test("Synapse gets its secrets fragment and admin password, coturn its secret line, each once and again with a new container", () => {
    const at = (container: string, target: string) => files.filter((f) => containerOf(f) === container && targetOf(f) === target);
    const [fragment] = at("ryo-matrix-synapse", SYNAPSE_PATHS.secretsConfig);
    const [admin] = at("ryo-matrix-synapse", SYNAPSE_PATHS.adminPasswordFile);
    const [coturn] = at("coturn", COTURN_SECRET_PATH);
    expect(admin.content).toBe("${var.admin_password}");
    expect(coturn.content).toMatch(/^static-auth-secret=\$\{random_password\.modules_coturn[\w-]+\.result\}\n$/);
    // Every section that holds a secret, and nothing else.
    const sections = Object.keys(parse(fragment.content.replace(/\$\{[^}]*\}/g, "x")));
    expect(sections.sort()).toEqual([...SYNAPSE_SECRET_SECTIONS].sort());
    expect(fragment.content).toContain("smtp_pass: ${jsonencode(var.smtp_password)}");
    for (const f of [fragment, admin, coturn]) {
      if (f.block) {
        // Part of the container: uploaded before it first starts, replaced with it.
        expect(f.create_directories).toBe(true);
      } else {
        expect(f.lifecycle.replace_triggered_by).toEqual([expect.stringMatching(/^terraform_data\./)]);
        expect(f.depends_on).toEqual([expect.stringMatching(new RegExp(`^${instanceType}\\.`))]);
      }
    }
  });

  test("devlxd is off in the pre-built image's container and on where the stock image's LXD datasource needs it", () => {
    for (const instance of instances) {
      expect({ container: instance.name, devlxd: instance.config["security.devlxd"] }).toEqual({
        container: instance.name,
        devlxd: instance.image === SYNAPSE_IMAGE ? "false" : "true",
      });
    }
    expect(instances.filter((i) => i.image === SYNAPSE_IMAGE).map((i) => i.name)).toEqual(["ryo-matrix-synapse"]);
  });
});

test("a project that registers with another stack's modules gets coturn's secret as a variable, only in Synapse's pushed fragment", () => {
  const text = fs.readFileSync(EXAMPLE_CONFIG, "utf8").replace("modules:\n  deploy: true", "modules:\n  deploy: false");
  const json = JSON.parse(Testing.synth(new MatrixStandaloneStack(Testing.app(), "second", { config: parseConfig(text, "example.yaml with modules.deploy: false", {}) })));
  expect(json.variable.turn_shared_secret.sensitive).toBe(true);
  const holders = strings(json.resource).filter((s) => s.text.includes("var.turn_shared_secret"));
  expect(holders.map((h) => `${h.path[0]}.${h.path.slice(2).join(".")}`).filter((h) => !h.startsWith("terraform_data."))).toEqual(["lxd_instance_file.content"]);
  const [file] = Object.values(json.resource.lxd_instance_file).filter((f: any) => f.content.includes("var.turn_shared_secret")) as any[];
  expect(file).toMatchObject({ target_path: SYNAPSE_PATHS.secretsConfig, mode: "0600", uid: 0, gid: 0 });
  expect(file.content).toContain("turn_shared_secret: ${jsonencode(var.turn_shared_secret)}");
});
