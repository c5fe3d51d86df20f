/**
 * The cloud-init renderer: the user-data passes the real `cloud-init schema`, and its runcmd,
 * turned into a script by cloud-init's own code and run by the real `sh`, stops at the first
 * failing command with a non-zero status (which cloud-init reports as `status: error`).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parse } from "yaml";
import { RUNCMD_PROLOGUE, renderCloudInit } from "../lib/render/cloud-init";
import { checkCloudInit, cloudInitRuncmdScript } from "./support/validators";

/** Runs the user-data's runcmd as cloud-init does: its own script, executed in `cwd`. */
function runRuncmd(userData: string, cwd: string) {
  const script = cloudInitRuncmdScript(userData);
  const file = path.join(cwd, "runcmd");
  fs.writeFileSync(file, script, { mode: 0o700 });
  return { script, ...spawnSync(file, [], { cwd, encoding: "utf8" }) };
}

describe("renderCloudInit runcmd", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "matrix-lxd-runcmd-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const commands = (failing: string) => [
    "chmod -R go= /nonexistent/seed 2>/dev/null || true",
    "touch first",
    failing,
    "touch enabled",
    "touch later",
  ];

  test("starts with set -e and passes cloud-init schema", () => {
    const userData = renderCloudInit({ commands: commands("true") });
    expect(parse(userData).runcmd).toEqual([RUNCMD_PROLOGUE, ...commands("true")]);
    expect(RUNCMD_PROLOGUE).toBe("set -e");
    expect(checkCloudInit(userData)).toMatch(/Valid cloud-config/);
  });

  test("a failing firewall load stops the setup: later commands do not run and the script fails", () => {
    // The real nft, on a ruleset that does not exist (nothing is loaded).
    const r = runRuncmd(renderCloudInit({ commands: commands(`nft -c -f ${path.join(dir, "missing.nft")}`) }), dir);
    expect(r.script.split("\n")[1]).toBe("set -e");
    expect(r.stderr).toMatch(/missing\.nft/);
    expect(r.status).not.toBe(0);
    expect(fs.existsSync(path.join(dir, "first"))).toBe(true);
    expect(fs.existsSync(path.join(dir, "enabled"))).toBe(false);
    expect(fs.existsSync(path.join(dir, "later"))).toBe(false);
  });

  test("every command runs and the script succeeds when nothing fails", () => {
    const r = runRuncmd(renderCloudInit({ commands: commands("touch middle") }), dir);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(fs.readdirSync(dir).sort()).toEqual(["enabled", "first", "later", "middle", "runcmd"]);
  });

  test("no runcmd (and no prologue) without commands", () => {
    expect(parse(renderCloudInit({ files: [{ path: "/etc/x", content: "x\n" }] })).runcmd).toBeUndefined();
  });
});
