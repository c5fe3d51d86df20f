/**
 * The provider-free parts of the synthesized stack (variables with their validation, the
 * required Terraform version, the terraform_data revisions) checked by the real Terraform CLI.
 * The LXD/Consul/random resources need their providers, which this suite does not use.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";
import { Testing } from "cdktf";
import { loadConfig } from "../lib/config";
import { MatrixStandaloneStack } from "../constructs/matrix/matrix-standalone-stack";

function terraformBinary(): string {
  if (process.env.MATRIX_LXD_TERRAFORM) return process.env.MATRIX_LXD_TERRAFORM;
  const recorded = path.join(process.env.MATRIX_LXD_CACHE || path.join(os.homedir(), ".cache", "matrix-lxd"), "terraform-cli");
  if (fs.existsSync(recorded)) return fs.readFileSync(recorded, "utf8").trim();
  throw new Error("no Terraform CLI recorded: run scripts/setup-validators.sh (it runs scripts/toolchain.sh test-tools)");
}

function providerFreeParts(): any {
  const app = Testing.app();
  const stack = new MatrixStandaloneStack(app, "ryo-matrix", { config: loadConfig(path.join(__dirname, "..", "config", "example.yaml"), {}) });
  const json = JSON.parse(Testing.synth(stack));
  // The containers' Consul tokens come from a data source; a variable stands in for it here.
  const tokenSecret = /data\.consul_acl_token_secret_id\.[\w-]+\.secret_id/g;
  const withoutTokens = Object.entries<any>(json.resource.terraform_data).map(([id, r]) => [id, JSON.parse(JSON.stringify(r).replace(tokenSecret, "var.consul_token_stand_in"))] as const);
  // Revisions that reference provider resources (generated secrets, volumes) need the providers: those stay out.
  const revisions = Object.fromEntries(withoutTokens.filter(([, r]) => !/\b(random_password|lxd_[a-z_]+|consul_[a-z_]+)\./.test(JSON.stringify(r))));
  return {
    terraform: { required_version: json.terraform.required_version },
    variable: { ...json.variable, consul_token_stand_in: { type: "string", sensitive: true, default: "stand-in" } },
    resource: { terraform_data: revisions },
  };
}

describe("Terraform CLI on the provider-free parts of the stack", () => {
  let dir: string;
  const tf = (...args: string[]) =>
    spawnSync(terraformBinary(), args, {
      cwd: dir,
      encoding: "utf8",
      env: { ...process.env, TF_CLI_CONFIG_FILE: path.join(dir, "cli.tfrc"), CHECKPOINT_DISABLE: "1", TF_IN_AUTOMATION: "1", TF_INPUT: "0" },
    });

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "matrix-tf-"));
    fs.writeFileSync(path.join(dir, "cli.tfrc"), "");
    fs.writeFileSync(path.join(dir, "main.tf.json"), JSON.stringify(providerFreeParts(), null, 2));
    const init = tf("init", "-no-color");
    if (init.status !== 0) throw new Error(`terraform init failed:\n${init.stdout}${init.stderr}`);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test("validate accepts the variables, required version and revisions", () => {
    expect(Object.keys(providerFreeParts().resource.terraform_data).length).toBeGreaterThanOrEqual(4);
    const result = tf("validate", "-no-color");
    expect(result.stderr.slice(0, 2000)).toBe("");
    expect(result.stdout).toContain("The configuration is valid");
  });

  test("plan accepts a strong admin password", () => {
    const result = tf("plan", "-no-color", "-var", "admin_password=Str0ng-Enough-Pass");
    expect(result.stderr.slice(0, 2000)).toBe("");
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(`Plan: ${Object.keys(providerFreeParts().resource.terraform_data).length} to add`);
  });

  test("a broken attribute makes validate fail, so the check can fail", () => {
    const broken = providerFreeParts();
    const [first] = Object.keys(broken.resource.terraform_data);
    broken.resource.terraform_data[first].triggers_replacee = broken.resource.terraform_data[first].triggers_replace;
    fs.writeFileSync(path.join(dir, "main.tf.json"), JSON.stringify(broken));
    try {
      const result = tf("validate", "-no-color");
      expect(result.status).not.toBe(0);
      expect(result.stderr).toMatch(/Unsupported argument|triggers_replacee/);
    } finally {
      fs.writeFileSync(path.join(dir, "main.tf.json"), JSON.stringify(providerFreeParts(), null, 2));
    }
  });
});
