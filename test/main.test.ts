/** The self-hoster's app as the README runs it (compiled JS, built by `npm test`'s pretest). */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";

const ROOT = path.join(__dirname, "..");
const MAIN = path.join(ROOT, "dist", "main.js");

function run(args: string[], outdir: string, env: NodeJS.ProcessEnv = {}) {
  if (!fs.existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build`);
  return spawnSync(process.execPath, [MAIN, ...args], {
    cwd: ROOT,
    encoding: "utf8",
    env: { PATH: process.env.PATH, HOME: process.env.HOME, CDKTF_OUTDIR: outdir, ...env },
  });
}

describe("main.ts", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "matrix-main-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test("synthesizes the example configuration by default", () => {
    const out = path.join(dir, "cdktf.out");
    const result = run([], out);
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    const stack = JSON.parse(fs.readFileSync(path.join(out, "stacks", "ryo-matrix", "cdk.tf.json"), "utf8"));
    expect(Object.keys(stack.resource.lxd_instance)).toHaveLength(7);
  });

  test("takes the configuration path from MATRIX_CONFIG or the first argument", () => {
    const config = path.join(dir, "other.yaml");
    fs.writeFileSync(config, fs.readFileSync(path.join(ROOT, "config", "example.yaml"), "utf8").replace("id: ryo-matrix", "id: other"));
    expect(run([], path.join(dir, "a"), { MATRIX_CONFIG: config }).status).toBe(0);
    expect(fs.existsSync(path.join(dir, "a", "stacks", "other", "cdk.tf.json"))).toBe(true);
    expect(run([config], path.join(dir, "b")).status).toBe(0);
    expect(fs.existsSync(path.join(dir, "b", "stacks", "other", "cdk.tf.json"))).toBe(true);
  });

  test("on bad input reports every problem, exits non-zero and leaves cdktf.out untouched", () => {
    const out = path.join(dir, "cdktf.out");
    fs.mkdirSync(path.join(out, "stacks", "ryo-matrix"), { recursive: true });
    const previous = path.join(out, "stacks", "ryo-matrix", "cdk.tf.json");
    fs.writeFileSync(previous, '{"previous": true}');
    const bad = path.join(dir, "bad.yaml");
    fs.writeFileSync(
      bad,
      fs
        .readFileSync(path.join(ROOT, "config", "example.yaml"), "utf8")
        .replace("domain: example.com", "domain: Example.com.")
        .replace("id: matrixhost", "id: matrix-host")
        .replace("min_port: 50000", "min_port: 52000"),
    );
    const result = run([bad], out);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain("project.domain");
    expect(result.stderr).toContain("host.id");
    expect(result.stdout).toBe("");
    expect(fs.readFileSync(previous, "utf8")).toBe('{"previous": true}');
    expect(fs.readdirSync(out)).toEqual(["stacks"]);
  });

  test("a missing configuration file is a clear error", () => {
    const result = run([path.join(dir, "nope.yaml")], path.join(dir, "out"));
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/cannot read the configuration file/);
    expect(fs.existsSync(path.join(dir, "out"))).toBe(false);
  });
});
