/**
 * Thin helpers over the `lxc` client, Consul's HTTP API and the host's own clients (curl,
 * psql in containers) for the real-LXD suite. Everything runs real commands; nothing here
 * fakes an answer.
 */
import { execFile, execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import type { DeployPlan, PlannedFile, PlannedInstance } from "./stack";

export const ROOT = path.resolve(__dirname, "..", "..", "..");
/** Where the global setup leaves the deployment for the tests. */
export const STATE_FILE = process.env.MATRIX_LXD_SUITE_STATE ?? path.join(ROOT, "test", "lxd", ".suite-state.json");
/** Config key on everything the suite creates, so that teardown never deletes anything else. */
export const SUITE_MARKER = "user.matrix-lxd-suite";
/** The suite's second container: a client on the bridge (DHCP address), launched with `user.user-data`. */
export const CLIENT = "lxd-suite-client";

export interface SuiteState {
  readonly config: string;
  readonly facts: Record<string, string>;
  readonly plan: DeployPlan;
  /** Seconds from launch to cloud-init `done`, by container. */
  readonly bootSeconds: Record<string, number>;
  readonly clientAddress: string;
}

export function readState(): SuiteState {
  return JSON.parse(fs.readFileSync(STATE_FILE, "utf8"));
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command and returns its exit code and output (never throws on a non-zero exit). */
export function run(cmd: string, args: readonly string[], options: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): RunResult {
  const r = spawnSync(cmd, args, { input: options.input, env: options.env, encoding: "utf8", timeout: options.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024 });
  if (r.error && (r.error as NodeJS.ErrnoException).code !== "ETIMEDOUT") throw r.error;
  return { code: r.status ?? (r.signal ? 128 : 1), stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

/** Runs a command and returns stdout; throws with stderr on failure. */
export function must(cmd: string, args: readonly string[], options: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): string {
  const r = run(cmd, args, options);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

export const lxc = (...args: string[]): string => must("lxc", args);

/** `lxc exec <name> -- <cmd…>`; returns the result without throwing. */
export function inContainer(name: string, cmd: readonly string[], options: { input?: string; timeoutMs?: number; user?: number } = {}): RunResult {
  const extra = options.user !== undefined ? ["--user", String(options.user)] : [];
  // From /, not root's home: commands run as another user (runuser) could not enter /root.
  return run("lxc", ["exec", name, "--cwd", "/", ...extra, "--", ...cmd], options);
}

export function shIn(name: string, script: string, options: { timeoutMs?: number } = {}): RunResult {
  return inContainer(name, ["sh", "-c", script], options);
}

export function instanceExists(name: string): boolean {
  return run("lxc", ["info", name]).code === 0;
}

/** Creates (not starts) an instance as the plan describes it. */
export function createInstance(inst: PlannedInstance): void {
  const args = ["init", inst.image, inst.name, "--no-profiles"];
  for (const p of inst.profiles) args.push("--profile", p);
  for (const [k, v] of Object.entries(inst.config)) {
    // Multi-line values (user-data) go through `lxc config set` below, not the command line.
    if (!v.includes("\n")) args.push("--config", `${k}=${v}`);
  }
  lxc(...args);
  for (const [k, v] of Object.entries(inst.config)) {
    if (v.includes("\n")) must("lxc", ["config", "set", inst.name, k, "-"], { input: v });
  }
  for (const d of inst.devices) {
    lxc("config", "device", "add", inst.name, d.name, d.type, ...Object.entries(d.properties).map(([k, v]) => `${k}=${v}`));
  }
}

/** Pushes a file into a running container as Terraform's lxd_instance_file does (mode, owner, parents). */
export function pushFile(file: PlannedFile): void {
  must("lxc", ["file", "push", "-", `${file.container}${file.path}`, "--create-dirs", "--mode", file.mode, "--uid", String(file.uid), "--gid", String(file.gid)], {
    input: file.content,
  });
}

/** Waits until cloud-init in the container has finished; returns its `status --long` text and status. */
export function waitForCloudInit(name: string, timeoutMs = 300_000): { status: string; text: string } {
  const r = inContainer(name, ["cloud-init", "status", "--wait", "--long"], { timeoutMs });
  const status = /^status: (\S+)/m.exec(r.stdout)?.[1] ?? `unknown (exit ${r.code})`;
  return { status, text: r.stdout + r.stderr };
}

/** Asynchronous variant, for waiting on several containers at once. */
export function waitForCloudInitAsync(name: string, timeoutMs = 300_000): Promise<{ status: string; text: string }> {
  return new Promise((resolve) => {
    execFile("lxc", ["exec", name, "--", "cloud-init", "status", "--wait", "--long"], { timeout: timeoutMs, encoding: "utf8" }, (err, stdout, stderr) => {
      const status = /^status: (\S+)/m.exec(stdout ?? "")?.[1] ?? `unknown (${err?.message ?? "no output"})`;
      resolve({ status, text: `${stdout ?? ""}${stderr ?? ""}` });
    });
  });
}

/** Consul's HTTP API on the host. */
export class Consul {
  /** `token`: the management token when the host enforces ACLs (consulToken()). */
  constructor(
    private readonly base: string,
    private readonly token?: string,
  ) {}

  private get tokenHeader(): string[] {
    return this.token ? ["-H", `X-Consul-Token: ${this.token}`] : [];
  }

  private curl(method: string, urlPath: string, body?: string): string {
    const args = ["-fsS", "-m", "10", ...this.tokenHeader, "-X", method, `${this.base}${urlPath}`];
    if (body !== undefined) args.push("--data-binary", "@-");
    return must("curl", args, { input: body });
  }

  put(key: string, value: string): void {
    this.curl("PUT", `/v1/kv/${key}`, value);
  }

  get(key: string): string | undefined {
    const r = run("curl", ["-fsS", "-m", "10", ...this.tokenHeader, `${this.base}/v1/kv/${key}?raw`]);
    return r.code === 0 ? r.stdout : undefined;
  }

  deleteKey(key: string): void {
    this.curl("DELETE", `/v1/kv/${key}`);
  }

  register(node: string, address: string, service?: { name: string; port: number; tags: string[] }): void {
    const body: Record<string, unknown> = { Node: node, Address: address };
    if (service) body.Service = { Service: service.name, ID: service.name, Port: service.port, Address: address, Tags: service.tags };
    this.curl("PUT", "/v1/catalog/register", JSON.stringify(body));
  }

  deregister(node: string): void {
    this.curl("PUT", "/v1/catalog/deregister", JSON.stringify({ Node: node }));
  }

  createPolicy(policy: { name: string; description: string; rules: string }): void {
    this.curl("PUT", "/v1/acl/policy", JSON.stringify({ Name: policy.name, Description: policy.description, Rules: policy.rules }));
  }

  /** A token with the given IDs (Consul accepts caller-chosen ones), as Terraform's would be. */
  createToken(token: { accessorId: string; secretId: string; description: string; policies: string[] }): void {
    this.curl(
      "PUT",
      "/v1/acl/token",
      JSON.stringify({ AccessorID: token.accessorId, SecretID: token.secretId, Description: token.description, Policies: token.policies.map((Name) => ({ Name })) }),
    );
  }

  /** Deletes the token and the policy if they exist. */
  deleteAcl(accessorIds: readonly string[], policyNames: readonly string[]): void {
    for (const id of accessorIds) {
      if (run("curl", ["-fsS", "-m", "10", ...this.tokenHeader, `${this.base}/v1/acl/token/${id}`]).code === 0) this.curl("DELETE", `/v1/acl/token/${id}`);
    }
    for (const name of policyNames) {
      const r = run("curl", ["-fsS", "-m", "10", ...this.tokenHeader, `${this.base}/v1/acl/policy/name/${name}`]);
      if (r.code === 0) this.curl("DELETE", `/v1/acl/policy/${JSON.parse(r.stdout).ID}`);
    }
  }
}

/**
 * The suite's Consul token: $CONSUL_HTTP_TOKEN, else, with host.consul.acl on, the management
 * token host:up keeps under its state directory; none with ACLs off.
 */
export function consulToken(facts: Record<string, string>): string | undefined {
  if (process.env.CONSUL_HTTP_TOKEN) return process.env.CONSUL_HTTP_TOKEN;
  if (facts.CONSUL_ACL !== "1") return undefined;
  const file = path.join(process.env.MATRIX_LXD_STATE ?? "/var/lib/matrix-lxd", facts.HOST_ID, "consul", "management-token");
  if (!fs.existsSync(file)) throw new Error(`host.consul.acl is on and CONSUL_HTTP_TOKEN is unset, and host:up left no token in ${file}: run npm run host:up`);
  return fs.readFileSync(file, "utf8").trim();
}

/** The Consul client of the suite's host, with its token. */
export function hostConsul(facts: Record<string, string>): Consul {
  return new Consul(`http://${facts.CONSUL_ADDRESS}`, consulToken(facts));
}

/** curl from the host; returns status line, headers and body. */
export function curl(args: readonly string[], timeoutS = 10): RunResult & { status: number; headers: string; body: string } {
  const r = run("curl", ["-sS", "-m", String(timeoutS), "-D", "-", ...args], { timeoutMs: (timeoutS + 5) * 1000 });
  // With redirects not followed there is one header block; keep the last one that starts with HTTP/.
  let headers = "";
  let rest = r.stdout;
  while (/^HTTP\//.test(rest)) {
    const idx = rest.search(/\r?\n\r?\n/);
    if (idx < 0) break;
    headers = rest.slice(0, idx);
    rest = rest.slice(idx).replace(/^\r?\n\r?\n/, "");
  }
  const status = Number(/^HTTP\/[\d.]+ (\d{3})/.exec(headers)?.[1] ?? 0);
  return { ...r, status, headers, body: rest };
}

export function header(headers: string, name: string): string | undefined {
  const m = new RegExp(`^${name}:\\s*(.*?)\\s*$`, "im").exec(headers);
  return m?.[1];
}

export { execFileSync };
