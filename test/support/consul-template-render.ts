/**
 * Renders consul-template templates the way a module container does: a real `consul agent -dev`
 * on free loopback ports holds the KV store, and the real `consul-template -once` renders.
 * Everything is synchronous, for use from jest. A missing binary is an error (never a skip).
 * Binaries: $MATRIX_LXD_CONSUL / $MATRIX_LXD_CONSUL_TEMPLATE, else PATH, else the Go and
 * matrix-lxd cache bin directories (consul: Debian bullseye's package; consul-template:
 * `go install …/consul-template@v0.42.1`).
 *
 *   renderWithConsul(template, kv)            one agent per call
 *   const agent = ConsulDevAgent.start();     one agent for many renders (faster):
 *   agent.render(template, kv); agent.stop();
 *   const agent = ConsulDevAgent.start({ acl: true });   ACLs on, default deny: the agent's
 *   own calls use its management token (agent.managementToken); agent.http(…) speaks the API.
 */
import { spawn, spawnSync, ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { randomUUID } from "node:crypto";

const HINT = "consul is Debian bullseye's `consul` package (scripts/toolchain.sh); consul-template installs with `go install github.com/hashicorp/consul-template@v0.42.1` (or point MATRIX_LXD_CONSUL_TEMPLATE at it)";
const START_TIMEOUT_MS = 30_000;
const RENDER_TIMEOUT_MS = 30_000;

function findBinary(name: string, envVars: string[], extraDirs: string[]): string {
  const candidates = [
    ...envVars.map((v) => process.env[v]).filter((v): v is string => !!v),
    ...(process.env.PATH ?? "").split(path.delimiter).filter(Boolean).map((d) => path.join(d, name)),
    ...extraDirs.map((d) => path.join(d, name)),
  ];
  for (const c of candidates) {
    try {
      fs.accessSync(c, fs.constants.X_OK);
      return c;
    } catch {
      // next candidate
    }
  }
  throw new Error(`${name} not found (looked at ${envVars.map((v) => `$${v}`).join(", ")}, PATH and ${extraDirs.join(", ")}): ${HINT}`);
}

const cacheDir = () => process.env.MATRIX_LXD_CACHE || path.join(os.homedir(), ".cache", "matrix-lxd");

export function consulBinary(): string {
  return findBinary("consul", ["MATRIX_LXD_CONSUL", "CONSUL_BIN"], ["/usr/bin", "/usr/local/bin"]);
}

export function consulTemplateBinary(): string {
  const gopath = process.env.GOPATH || path.join(os.homedir(), "go");
  return findBinary("consul-template", ["MATRIX_LXD_CONSUL_TEMPLATE", "CONSUL_TEMPLATE_BIN"], [
    path.join(cacheDir(), "bin"),
    path.join(gopath, "bin"),
    "/usr/local/bin",
  ]);
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Free TCP ports on 127.0.0.1, found by a child node process (sockets need the event loop). */
export function freeLoopbackPorts(count: number): number[] {
  const script = `
    const net = require("net");
    const servers = [];
    const next = () => {
      if (servers.length === ${count}) {
        console.log(servers.map((s) => s.address().port).join(" "));
        servers.forEach((s) => s.close());
        return;
      }
      const s = net.createServer();
      s.listen(0, "127.0.0.1", () => { servers.push(s); next(); });
    };
    next();`;
  const r = spawnSync(process.execPath, ["-e", script], { encoding: "utf8", timeout: 10_000 });
  if (r.status !== 0) throw new Error(`could not find free ports: ${r.stderr}`);
  return r.stdout.trim().split(" ").map(Number);
}

const liveAgents = new Set<ChildProcess>();
process.on("exit", () => liveAgents.forEach((a) => a.kill("SIGKILL")));

export interface ConsulDevAgentOptions {
  /**
   * Enforce ACLs with a default-deny policy: `true` with a management token of the test's own,
   * `"unbootstrapped"` with none (the ACL system waits for `consul acl bootstrap`).
   * @default false
   */
  readonly acl?: boolean | "unbootstrapped";
}

export interface ConsulHttpResponse {
  readonly status: number;
  readonly body: string;
}

export class ConsulDevAgent {
  private readonly consul: string;
  /** The management token when ACLs are on (and bootstrapped by the agent's configuration). */
  managementToken?: string;
  /** The agent's DNS port on 127.0.0.1. */
  dnsPort = 0;
  private readonly dir: string;
  private written = new Set<string>();

  private constructor(
    private readonly child: ChildProcess,
    readonly httpAddress: string,
    dir: string,
    consul: string,
  ) {
    this.dir = dir;
    this.consul = consul;
  }

  /** Starts `consul agent -dev` on free loopback ports and waits until its KV store answers. */
  static start(options: ConsulDevAgentOptions = {}): ConsulDevAgent {
    const consul = consulBinary();
    consulTemplateBinary(); // fail before starting anything when the renderer is missing
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "matrix-lxd-consul-"));
    const [http, dns, serfLan, serfWan, server, grpc] = freeLoopbackPorts(6);
    const management = randomUUID();
    const log = fs.openSync(path.join(dir, "agent.log"), "w");
    const child = spawn(
      consul,
      [
        "agent", "-dev", "-bind=127.0.0.1", "-client=127.0.0.1", `-node=matrix-lxd-test-${process.pid}-${http}`,
        `-http-port=${http}`, `-dns-port=${dns}`, `-serf-lan-port=${serfLan}`, `-serf-wan-port=${serfWan}`,
        `-server-port=${server}`, `-grpc-port=${grpc}`,
        ...(options.acl === true ? [`-hcl=acl { enabled = true, default_policy = "deny", tokens { master = "${management}" } }`] : []),
        ...(options.acl === "unbootstrapped" ? ['-hcl=acl { enabled = true, default_policy = "deny", enable_token_persistence = true }'] : []),
      ],
      // In its own directory: with enable_token_persistence a dev agent writes acl-tokens.json to its working directory.
      { stdio: ["ignore", log, log], cwd: dir },
    );
    fs.closeSync(log);
    liveAgents.add(child);
    const agent = new ConsulDevAgent(child, `127.0.0.1:${http}`, dir, consul);
    if (options.acl === true) agent.managementToken = management;
    agent.dnsPort = dns;
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      // Without a token the KV store refuses every write: wait for a leader instead.
      const probe = options.acl === "unbootstrapped"
        ? spawnSync("sh", ["-c", `curl -fsS -m 2 http://${agent.httpAddress}/v1/status/leader | grep -q '"[0-9]'`], { encoding: "utf8", timeout: 5_000 })
        : spawnSync(consul, ["kv", "put", `-http-addr=${agent.httpAddress}`, "matrix-lxd-probe", "ready"], { encoding: "utf8", timeout: 5_000, env: agent.consulEnv() });
      if (probe.status === 0) break;
      if (Date.now() > deadline) {
        const output = fs.readFileSync(path.join(dir, "agent.log"), "utf8");
        agent.stop();
        throw new Error(`consul agent -dev did not serve its KV store within ${START_TIMEOUT_MS} ms:\n${probe.stderr}\n----- agent log -----\n${output}`);
      }
      sleep(200);
    }
    if (options.acl !== "unbootstrapped") agent.consulKv(["delete", "matrix-lxd-probe"]);
    return agent;
  }

  private consulKv(args: string[], input?: string): string {
    const r = spawnSync(this.consul, ["kv", ...args.slice(0, 1), `-http-addr=${this.httpAddress}`, ...args.slice(1)], {
      encoding: "utf8",
      input,
      env: this.consulEnv(),
      timeout: 10_000,
    });
    if (r.status !== 0) throw new Error(`consul kv ${args.join(" ")} failed: ${r.stdout}${r.stderr}`);
    return r.stdout;
  }

  /** The environment for the consul CLI: the management token when ACLs are on, else none. */
  private consulEnv(): NodeJS.ProcessEnv {
    return { ...process.env, CONSUL_HTTP_TOKEN: this.managementToken ?? "" };
  }

  /** One call of Consul's HTTP API with `token` (none: the anonymous token). */
  http(method: string, apiPath: string, token?: string, body?: string): ConsulHttpResponse {
    const args = ["-sS", "-m", "10", "-o", "-", "-w", "\n%{http_code}", "-X", method, ...(token ? ["-H", `X-Consul-Token: ${token}`] : [])];
    if (body !== undefined) args.push("--data-binary", "@-");
    const r = spawnSync("curl", [...args, `http://${this.httpAddress}${apiPath}`], { encoding: "utf8", input: body, timeout: 15_000 });
    if (r.status !== 0) throw new Error(`curl ${method} ${apiPath} failed: ${r.stderr}`);
    const cut = r.stdout.lastIndexOf("\n");
    return { status: Number(r.stdout.slice(cut + 1)), body: r.stdout.slice(0, cut) };
  }

  /** Runs `consul-template -once` with a whole configuration file (its templates' destinations included). */
  renderConfig(configHcl: string): void {
    const work = fs.mkdtempSync(path.join(this.dir, "config-"));
    const config = path.join(work, "config.hcl");
    fs.writeFileSync(config, configHcl);
    const bin = consulTemplateBinary();
    const args = ["-once", `-config=${config}`, "-log-level=err"];
    const env = { ...process.env };
    for (const v of ["CONSUL_HTTP_TOKEN", "CONSUL_TOKEN", "CONSUL_HTTP_TOKEN_FILE", "CONSUL_TOKEN_FILE"]) delete env[v];
    const r = spawnSync(bin, args, { encoding: "utf8", timeout: RENDER_TIMEOUT_MS, env });
    if (r.error || r.status !== 0) {
      throw new Error(`${bin} ${args.join(" ")} failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`}):\n${r.stdout}${r.stderr}`);
    }
  }

  /** A scratch directory of this agent's, removed with it. */
  scratchDir(): string {
    return fs.mkdtempSync(path.join(this.dir, "scratch-"));
  }

  /** Replaces the whole KV store with `kv` (full key → value). */
  setKv(kv: Readonly<Record<string, string>>): void {
    for (const top of this.written) this.consulKv(["delete", "-recurse", `${top}`]);
    this.written = new Set(Object.keys(kv).map((k) => k.split("/")[0]));
    const entries = Object.entries(kv).map(([key, value]) => ({ key, flags: 0, value: Buffer.from(value, "utf8").toString("base64") }));
    if (entries.length > 0) this.consulKv(["import", "-"], JSON.stringify(entries));
  }

  /** Renders `template` once with consul-template against the KV store set to `kv`. */
  render(template: string, kv: Readonly<Record<string, string>>): string {
    this.setKv(kv);
    const work = fs.mkdtempSync(path.join(this.dir, "render-"));
    const source = path.join(work, "template.ctmpl");
    const destination = path.join(work, "out");
    fs.writeFileSync(source, template);
    const bin = consulTemplateBinary();
    const args = ["-once", `-consul-addr=${this.httpAddress}`, `-template=${source}:${destination}`, "-log-level=err"];
    const r = spawnSync(bin, args, { encoding: "utf8", timeout: RENDER_TIMEOUT_MS, env: this.consulEnv() });
    if (r.error || r.status !== 0) {
      throw new Error(`${bin} ${args.join(" ")} failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`}):\n${r.stdout}${r.stderr}`);
    }
    if (!fs.existsSync(destination)) throw new Error(`consul-template exited 0 but wrote no ${destination}:\n${r.stdout}${r.stderr}`);
    return fs.readFileSync(destination, "utf8");
  }

  stop(): void {
    const pid = this.child.pid!;
    this.child.kill("SIGTERM");
    liveAgents.delete(this.child);
    // Wait (briefly) until the agent has exited: gone, or a zombie that node reaps later.
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline) {
      let state: string;
      try {
        state = fs.readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /s, "")[0];
      } catch {
        break;
      }
      if (state === "Z") break;
      sleep(50);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Starts an agent, puts `kv`, renders `template` once, stops the agent and returns the output. */
export function renderWithConsul(template: string, kv: Readonly<Record<string, string>>): string {
  const agent = ConsulDevAgent.start();
  try {
    return agent.render(template, kv);
  } finally {
    agent.stop();
  }
}
