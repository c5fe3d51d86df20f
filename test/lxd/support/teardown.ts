/**
 * Removes what the suite's global setup created: its containers (only those carrying the
 * suite's marker), its storage volumes, the Consul KV entries and catalog nodes of the plan.
 * Runs after the tests, after a failed setup, and before a setup (leftovers of an interrupted run).
 */
import * as fs from "fs";
import { CLIENT, STATE_FILE, SUITE_MARKER as MARKER, SuiteState, hostConsul, instanceExists, run } from "./lxd";

export function teardownDeployment(state: SuiteState, options: { quiet?: boolean }): string[] {
  const problems: string[] = [];
  const note = (msg: string): void => {
    if (!options.quiet) process.stderr.write(`[lxd-suite] ${msg}\n`);
  };
  const names = [...state.plan.instances.map((i) => i.name), CLIENT];
  for (const name of names) {
    if (!instanceExists(name)) continue;
    if (run("lxc", ["config", "get", name, MARKER]).stdout.trim() !== "true") {
      problems.push(`${name} was not created by the suite: left alone`);
      continue;
    }
    const r = run("lxc", ["delete", "--force", name], { timeoutMs: 180_000 });
    if (r.code !== 0) problems.push(`lxc delete ${name}: ${r.stderr.trim()}`);
    else note(`deleted container ${name}`);
  }
  for (const v of state.plan.volumes) {
    const get = run("lxc", ["storage", "volume", "get", v.pool, v.name, MARKER]);
    if (get.code !== 0) continue; // absent
    if (get.stdout.trim() !== "true") {
      problems.push(`volume ${v.pool}/${v.name} was not created by the suite: left alone`);
      continue;
    }
    const r = run("lxc", ["storage", "volume", "delete", v.pool, v.name]);
    if (r.code !== 0) problems.push(`volume ${v.pool}/${v.name}: ${r.stderr.trim()}`);
    else note(`deleted volume ${v.pool}/${v.name}`);
  }
  try {
    const consul = hostConsul(state.facts);
    for (const key of Object.keys(state.plan.kv)) consul.deleteKey(key);
    for (const node of new Set(state.plan.services.map((s) => s.node))) consul.deregister(node);
    consul.deleteAcl((state.plan.aclTokens ?? []).map((t) => t.accessorId), (state.plan.aclPolicies ?? []).map((p) => p.name));
    note("removed the plan's Consul KV entries, catalog nodes and ACL tokens and policies");
  } catch (err) {
    problems.push(`consul: ${(err as Error).message}`);
  }
  for (const p of problems) note(`teardown: ${p}`);
  return problems;
}

export default async function globalTeardown(): Promise<void> {
  if (!fs.existsSync(STATE_FILE)) return;
  if (process.env.MATRIX_LXD_SUITE_KEEP === "1") {
    process.stderr.write(`[lxd-suite] MATRIX_LXD_SUITE_KEEP=1: the deployment stays (${STATE_FILE})\n`);
    return;
  }
  const state: SuiteState = JSON.parse(fs.readFileSync(STATE_FILE, "utf8"));
  const problems = teardownDeployment(state, {});
  fs.rmSync(STATE_FILE, { force: true });
  if (problems.length) throw new Error(`teardown left things behind:\n  ${problems.join("\n  ")}`);
}
