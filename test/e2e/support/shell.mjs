/**
 * Process and timing helpers for the deploy suite: commands whose output is kept for the
 * failure message, `lxc exec` into the deployed containers, and bounded polling with progress.
 */
import { spawn, spawnSync } from "node:child_process";

const started = Date.now();
const clock = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s`;

export function log(message) {
  console.log(`[e2e ${clock()}] ${message}`);
}

export class CommandError extends Error {}

/**
 * Runs a command to completion and returns its stdout. Throws with the command, its exit status
 * and the tail of its output when it fails.
 */
export function run(command, args, { cwd, env, input, allowFailure = false, timeoutMs = 600_000 } = {}) {
  const res = spawnSync(command, args, { cwd, env: { ...process.env, ...env }, input, encoding: "utf8", timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  if (res.error) throw new CommandError(`${command} ${args.join(" ")}: ${res.error.message}`);
  if (res.status !== 0 && !allowFailure) {
    const tail = `${res.stdout ?? ""}\n${res.stderr ?? ""}`.trim().split("\n").slice(-30).join("\n");
    throw new CommandError(`${command} ${args.join(" ")} exited ${res.status}:\n${tail}`);
  }
  return allowFailure ? { status: res.status, stdout: res.stdout, stderr: res.stderr } : res.stdout;
}

/**
 * Runs a long command with its output streamed to the console (prefixed), and resolves with
 * the exit status. Used for `cdktf deploy`/`destroy`, whose progress people want to see.
 */
export function stream(command, args, { cwd, env, prefix = "  | " } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let tail = [];
    // cdktf redraws a progress display: keep only the lines with content.
    const noise = /^\s*([\u2800-\u28ff]\s|\d+ Stacks? deploying|\d+ Stacks? destroying)/;
    const pipe = (chunk) => {
      for (const raw of chunk.toString().split("\n")) {
        const line = raw.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replace(/\r/g, "");
        if (line.trim() === "" || noise.test(line)) continue;
        console.log(`${prefix}${line}`);
        tail.push(line);
        if (tail.length > 40) tail = tail.slice(-40);
      }
    };
    child.stdout.on("data", pipe);
    child.stderr.on("data", pipe);
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, tail: tail.join("\n") }));
  });
}

/** `lxc exec <container> -- <argv>`; returns stdout, throws on a non-zero exit. */
export function lxcExec(container, argv, options = {}) {
  return run("lxc", ["exec", container, "--", ...argv], options);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `probe` until it returns a truthy value or `timeoutMs` passes; prints what it waits for
 * every 10 s. Returns the value; throws with the last error when the time is up.
 */
export async function waitFor(what, probe, { timeoutMs = 180_000, intervalMs = 1000 } = {}) {
  const t0 = Date.now();
  let lastError;
  let lastReport = t0;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    const now = Date.now();
    if (now - t0 > timeoutMs) {
      throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${lastError ? `: ${lastError.message}` : ""}`);
    }
    if (now - lastReport >= 10_000) {
      log(`  still waiting for ${what} (${Math.round((now - t0) / 1000)} s)${lastError ? `: ${String(lastError.message).split("\n")[0]}` : ""}`);
      lastReport = now;
    }
    await sleep(intervalMs);
  }
}
