/**
 * Deploys the example stack into the real LXD for the suite: synthesizes the stack from the
 * suite's configuration (config/local.yaml unless MATRIX_LXD_SUITE_CONFIG), creates its
 * volumes, fills Consul's KV and catalog with what the stack registers, and boots every
 * container from its image with its rendered user-data (test values for generated secrets),
 * static address, volumes and devices. Then a second container, the client, from the
 * PostgreSQL image with its user-data in `user.user-data` (the key provider 1.x reads back).
 * The host (npm run host:up) and images (npm run images) must exist: scripts/lxd-suite.sh
 * makes sure of both.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { planFromSynth } from "./support/stack";
import { CLIENT, ROOT, STATE_FILE, SUITE_MARKER, SuiteState, createInstance, hostConsul, instanceExists, lxc, must, pushFile, run, waitForCloudInitAsync } from "./support/lxd";
import { teardownDeployment } from "./support/teardown";

export function hostFacts(config: string): Record<string, string> {
  const out = must("node", [path.join(ROOT, "scripts", "host-facts.js"), config]);
  const facts: Record<string, string> = {};
  for (const line of out.split("\n")) {
    const m = /^([A-Z0-9_]+)='(.*)'$/.exec(line);
    if (m) facts[m[1]] = m[2].replace(/'\\''/g, "'");
  }
  return facts;
}

const log = (msg: string): void => {
  process.stderr.write(`[lxd-suite] ${msg}\n`);
};

export default async function globalSetup(): Promise<void> {
  const config = path.resolve(process.env.MATRIX_LXD_SUITE_CONFIG ?? path.join(ROOT, "config", "local.yaml"));
  const facts = hostFacts(config);
  const t0 = Date.now();

  // The stack as synth writes it.
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), "lxd-suite-synth-"));
  must("node", [path.join(ROOT, "dist", "main.js"), config], { timeoutMs: 120_000, env: { ...process.env, CDKTF_OUTDIR: outdir } });
  const synthFile = path.join(outdir, "stacks", facts.PROJECT_ID, "cdk.tf.json");
  const plan = planFromSynth(JSON.parse(fs.readFileSync(synthFile, "utf8")));
  fs.rmSync(outdir, { recursive: true, force: true });
  log(`synthesized ${config}: ${plan.instances.length} containers, ${plan.volumes.length} volumes, ${Object.keys(plan.kv).length} KV entries, ${(plan.aclTokens ?? []).length} Consul tokens`);

  // Refuse to touch containers the suite did not create.
  const foreign = [...plan.instances.map((i) => i.name), CLIENT].filter(
    (name) => instanceExists(name) && run("lxc", ["config", "get", name, SUITE_MARKER]).stdout.trim() !== "true",
  );
  if (foreign.length) throw new Error(`containers ${foreign.join(", ")} exist and were not created by the suite: remove them or use another host`);
  const missing = [...new Set(plan.instances.map((i) => i.image))].filter((img) => run("lxc", ["image", "info", img]).code !== 0);
  if (missing.length) throw new Error(`images missing: ${missing.join(", ")} (npm run images)`);

  const state: SuiteState = { config, facts, plan, bootSeconds: {}, clientAddress: "" };
  try {
    teardownDeployment(state, { quiet: true }); // leftovers of an interrupted run
    for (const v of plan.volumes) {
      lxc("storage", "volume", "create", v.pool, v.name, `${SUITE_MARKER}=true`);
    }
    const consul = hostConsul(facts);
    for (const [key, value] of Object.entries(plan.kv)) consul.put(key, value);
    for (const s of plan.services) consul.register(s.node, s.address, s);
    // With host.consul.acl, each consul-template container's read-only token, as Terraform makes them.
    for (const p of plan.aclPolicies ?? []) consul.createPolicy(p);
    for (const tk of plan.aclTokens ?? []) consul.createToken(tk);
    log(`volumes, KV and catalog in place (${((Date.now() - t0) / 1000).toFixed(1)} s)`);

    const launched: Record<string, number> = {};
    for (const inst of plan.instances) {
      createInstance({ ...inst, config: { ...inst.config, [SUITE_MARKER]: "true" } });
    }
    createInstance({
      id: "client",
      name: CLIENT,
      image: plan.instances.find((i) => i.name.endsWith("postgres"))?.image ?? "matrix-postgres-15",
      profiles: ["default"],
      config: {
        [SUITE_MARKER]: "true",
        "security.privileged": "false",
        // Only the user.* key: the image template must fall back to it.
        "user.user-data": "#cloud-config\nwrite_files:\n  - path: /etc/lxd-suite-user-data\n    content: from user.user-data\n",
      },
      devices: [{ name: "eth0", type: "nic", properties: { network: facts.NETWORK } }],
    });
    const names = [...plan.instances.map((i) => i.name), CLIENT];
    for (const name of names) {
      launched[name] = Date.now();
      lxc("start", name);
    }
    // The secrets arrive as Terraform delivers them: pushed into the running containers, whose
    // first boot waits for them.
    for (const file of plan.files) pushFile(file);
    log(`started ${names.length} containers, pushed ${plan.files.length} secret files; waiting for cloud-init`);
    await Promise.all(
      names.map(async (name) => {
        const r = await waitForCloudInitAsync(name);
        state.bootSeconds[name] = Math.round((Date.now() - launched[name]) / 100) / 10;
        log(`  ${name}: cloud-init ${r.status} after ${state.bootSeconds[name]} s`);
      }),
    );
    const addr = must("lxc", ["list", CLIENT, "--format", "csv", "-c", "4"]).trim().split(" ")[0];
    (state as { clientAddress: string }).clientAddress = addr;
    fs.writeFileSync(STATE_FILE, JSON.stringify(state, null, 2));
    log(`deployed in ${((Date.now() - t0) / 1000).toFixed(1)} s; client at ${addr}`);
  } catch (err) {
    log(`setup failed: ${(err as Error).message}; tearing down`);
    teardownDeployment(state, {});
    throw err;
  }
}
