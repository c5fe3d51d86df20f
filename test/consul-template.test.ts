/**
 * consul-template's systemd unit, checked against the real consul-template running with the
 * rendered config.hcl against a real `consul agent -dev`: it must stop promptly on the signal
 * the unit stops it with, and exit with a status the unit counts as success.
 */
import { spawn, ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { CONSUL_TEMPLATE_DIR, CONSUL_TEMPLATE_UNIT_PATH, consulTemplateFiles } from "../lib/render/consul-template";
import { ConsulDevAgent, consulTemplateBinary } from "./support/consul-template-render";
import { rewriteAbsolutePaths } from "./support/validators";

/** `Key=` values of a systemd unit's [Service] section (the last one wins, as in systemd). */
function serviceSetting(unit: string, key: string): string | undefined {
  const service = unit.split(/^\[Service\]$/m)[1]?.split(/^\[/m)[0] ?? "";
  const values = service.split("\n").filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1).trim());
  return values.at(-1);
}

const STOP_BOUND_MS = 5_000;

/** `promise`'s value, or undefined when it has not settled within `ms` (the timer is cleared either way). */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

describe("consul-template under its systemd unit", () => {
  let agent: ConsulDevAgent;
  let root: string;
  let unit: string;
  let running: ChildProcess | undefined;
  const rendered = () => path.join(root, "srv/out/greeting");

  beforeAll(() => {
    agent = ConsulDevAgent.start();
    root = fs.mkdtempSync(path.join(os.tmpdir(), "matrix-lxd-consul-template-"));
    const files = consulTemplateFiles({
      consulAddress: agent.httpAddress,
      templates: [{ name: "greeting.ctmpl", template: '{{ keyOrDefault "greeting" "none" }}\n', destination: "/srv/out/greeting" }],
    });
    for (const f of files) {
      const target = path.join(root, f.path);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.writeFileSync(target, rewriteAbsolutePaths(f.content, [CONSUL_TEMPLATE_DIR, "/srv/out"], root));
    }
    unit = fs.readFileSync(path.join(root, CONSUL_TEMPLATE_UNIT_PATH), "utf8");
  }, 60_000);

  afterEach(async () => {
    const child = running;
    running = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await gone;
    }
    fs.rmSync(rendered(), { force: true });
  });

  afterAll(() => {
    agent?.stop();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  /** Starts consul-template as the unit's ExecStart does (config moved into the temp root) and waits for its first render. */
  async function start(): Promise<{ child: ChildProcess; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>; log: () => string }> {
    const execStart = serviceSetting(unit, "ExecStart") ?? "";
    const args = execStart.split(/\s+/).slice(1).map((a) => rewriteAbsolutePaths(a, [CONSUL_TEMPLATE_DIR], root));
    expect(args).toEqual([`-config=${root}${CONSUL_TEMPLATE_DIR}/config.hcl`]);
    let output = "";
    const child = spawn(consulTemplateBinary(), args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CONSUL_HTTP_TOKEN: "" } });
    running = child;
    child.stdout?.on("data", (d) => (output += d));
    child.stderr?.on("data", (d) => (output += d));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal, at: Date.now() })),
    );
    const deadline = Date.now() + 20_000;
    while (!fs.existsSync(rendered()) || fs.readFileSync(rendered(), "utf8") !== "none\n") {
      if (child.exitCode !== null) throw new Error(`consul-template exited (${child.exitCode}):\n${output}`);
      if (Date.now() > deadline) throw new Error(`consul-template rendered nothing within 20 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return { child, exited, log: () => output };
  }

  test("stops within seconds on the unit's KillSignal, with an exit status the unit counts as success", async () => {
    const killSignal = (serviceSetting(unit, "KillSignal") ?? "SIGTERM") as NodeJS.Signals;
    const success = ["0", ...(serviceSetting(unit, "SuccessExitStatus") ?? "").split(/\s+/).filter(Boolean)];
    const { child, exited, log } = await start();
    const sent = Date.now();
    child.kill(killSignal);
    const stopped = await within(exited, STOP_BOUND_MS);
    expect({ signal: killSignal, stopped: stopped !== undefined, log: stopped ? "" : log() }).toEqual({ signal: killSignal, stopped: true, log: "" });
    expect(stopped!.at - sent).toBeLessThan(STOP_BOUND_MS);
    expect(stopped!.signal).toBeNull();
    expect(success).toContain(String(stopped!.code));
  }, 60_000);

  test("ignores systemd's default SIGTERM (why the unit must name its own KillSignal)", async () => {
    const { child, exited } = await start();
    child.kill("SIGTERM");
    const stopped = await within(exited, 3_000);
    expect(stopped).toBeUndefined();
  }, 60_000);
});
