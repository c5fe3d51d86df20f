#!/usr/bin/env node
/**
 * The deploy suite (`npm run test:e2e`): `cdktf deploy` of the Matrix stack with real Terraform
 * and real providers onto this machine as an LXD + Consul host, then a real Matrix client
 * through the ingress proxy, a no-op re-plan, a Synapse replacement that keeps the data, a
 * second project beside the first, and a destroy that keeps the data volumes.
 *
 * Usage: node test/e2e/deploy.mjs [--keep] [--config FILE]
 *   --keep     leave the deployment and the host up at the end (also on failure), for debugging
 *   --config   the local host's configuration (default config/local.yaml)
 * Environment: TF_CLI_CONFIG_FILE when the providers come from a filesystem mirror;
 *   MATRIX_E2E_LXD_PROVIDER=1|3 (default 1: the major that development machines can install).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { log, run, stream, lxcExec, waitFor, sleep } from "./support/shell.mjs";
import { proxyClient, get } from "./support/net.mjs";
import { login, createUserViaAdminApi, readMessages, conversation } from "./support/matrix.mjs";
// The test suite's TURN client, compiled by `npm run test:e2e` (test/e2e/tsconfig.json).
import { TurnClient } from "../../dist-e2e/test/support/turn-client.js";

/** Where each module container's Consul token lands (lib/render/consul-acl.ts). */
const CONSUL_TOKEN_PATH = "/etc/consul-template/consul-token";
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const args = process.argv.slice(2);
if (args.includes("--help") || args.includes("-h")) {
  console.log(fs.readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n").slice(2, 13).map((l) => l.replace(/^ \*\s?/, "")).join("\n"));
  process.exit(0);
}
const keep = args.includes("--keep");
const configArg = args.includes("--config") ? args[args.indexOf("--config") + 1] : "config/local.yaml";
const configFile = path.resolve(ROOT, configArg);
const lxdMajor = Number(process.env.MATRIX_E2E_LXD_PROVIDER ?? "1");
const CACHE = process.env.MATRIX_LXD_CACHE ?? path.join(os.homedir(), ".cache", "matrix-lxd");
const WORK = path.join(CACHE, "e2e");

const summary = [];
const figures = {};
let failures = 0;

async function step(name, fn) {
  const t0 = Date.now();
  log(`▶ ${name}`);
  try {
    const result = await fn();
    const s = (Date.now() - t0) / 1000;
    summary.push({ name, ok: true, s });
    log(`✔ ${name} (${s.toFixed(1)} s)`);
    return result;
  } catch (err) {
    const s = (Date.now() - t0) / 1000;
    summary.push({ name, ok: false, s, error: err.message });
    failures++;
    log(`✘ ${name} (${s.toFixed(1)} s): ${err.message}`);
    throw err;
  }
}

/** A check that records its failure and lets the suite go on to the next independent check. */
async function check(name, fn) {
  try {
    await step(name, fn);
  } catch {
    /* recorded */
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

// ------------------------------------------------------------------ configuration
const baseConfig = YAML.parse(fs.readFileSync(configFile, "utf8"));
const cfg = structuredClone(baseConfig);
cfg.host.lxd = { ...(cfg.host.lxd ?? {}), provider: lxdMajor };
const project = cfg.project;
const domain = project.domain;
const names = { matrix: `matrix.${domain}`, element: `element.${domain}`, domain };
const publicIp = cfg.host.public_ipv4;
const netPart = cfg.host.ipv4_network_part;
const hostParts = { synapse: project.host_parts?.synapse ?? 20, synapseAdmin: project.host_parts?.synapse_admin ?? 22 };
const synapseInternal = `http://${netPart}.${hostParts.synapse}:8008`;
const containerName = (suffix) => `${project.id}-${suffix}`;

const second = structuredClone(cfg);
second.modules = { ...(second.modules ?? {}), deploy: false };
delete second.modules.coturn?.image;
second.project = {
  ...structuredClone(project),
  id: "e2e-second",
  domain: "second.example.org",
  turn_domain: cfg.project.turn_domain,
  host_parts: { synapse: 40, element: 41, synapse_admin: 42 },
};

const adminPassword = `E2e-${randomBytes(12).toString("base64url")}9a`;
const userPassword = `U2e-${randomBytes(12).toString("base64url")}7b`;
const tfEnv = { TF_VAR_admin_password: adminPassword, CHECKPOINT_DISABLE: "1", TF_IN_AUTOMATION: "1" };

function stackDir(work, id) {
  return path.join(work, "cdktf.out", "stacks", id);
}

function prepareWork(dir, config) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, "matrix.yaml");
  fs.writeFileSync(file, YAML.stringify(config));
  fs.writeFileSync(path.join(dir, "cdktf.json"), JSON.stringify({ language: "typescript", app: `node ${path.join(ROOT, "dist", "main.js")} ${file}`, sendCrashReports: "false" }, null, 2));
  return file;
}

const cdktf = path.join(ROOT, "node_modules", ".bin", "cdktf");
const terraform = process.env.TERRAFORM_BINARY_NAME ?? "terraform";

async function deploy(dir, env = {}) {
  const t0 = Date.now();
  const res = await stream(cdktf, ["deploy", "--auto-approve"], { cwd: dir, env: { ...tfEnv, ...env } });
  assert(res.status === 0, `cdktf deploy exited ${res.status}:\n${res.tail}`);
  return (Date.now() - t0) / 1000;
}

/** `terraform plan -detailed-exitcode` in a synthesized stack: 0 = no changes. */
function plan(dir, id, env = {}, extra = []) {
  const t0 = Date.now();
  const res = run(terraform, ["plan", "-input=false", "-no-color", "-detailed-exitcode", ...extra], { cwd: stackDir(dir, id), env: { ...tfEnv, ...env }, allowFailure: true });
  return { ...res, s: (Date.now() - t0) / 1000 };
}

function containersOf(prefixes) {
  const list = JSON.parse(run("lxc", ["list", "--format", "json"]));
  return list.filter((c) => prefixes.some((p) => c.name.startsWith(p))).map((c) => c.name);
}

async function cloudInitDone(container) {
  const out = lxcExec(container, ["cloud-init", "status", "--wait", "--long"], { allowFailure: true, timeoutMs: 240_000 });
  assert(/status: done/.test(out.stdout), `${container}: cloud-init ${out.stdout.trim().split("\n")[0] || out.stderr.trim()}`);
}

/** Longest gap (ms) in which `probe` failed, sampled every 250 ms until `stop()` is called. */
function watchAvailability(probe) {
  let running = true;
  let downSince;
  let longest = 0;
  const loop = (async () => {
    while (running) {
      const ok = await probe().catch(() => false);
      const now = Date.now();
      if (!ok && downSince === undefined) downSince = now;
      if (ok && downSince !== undefined) {
        longest = Math.max(longest, now - downSince);
        downSince = undefined;
      }
      await sleep(250);
    }
  })();
  return async () => {
    running = false;
    await loop;
    if (downSince !== undefined) longest = Math.max(longest, Date.now() - downSince);
    return longest;
  };
}

/**
 * Synthesizes a stack in `dir` and runs `terraform init` there first (local.sh's check, which
 * names missing providers), so that `cdktf deploy` finds the providers and their lock file (cdktf
 * would otherwise ask the registry to lock them).
 */
function synthAndInit(dir, id) {
  run("node", [path.join(ROOT, "dist", "main.js"), path.join(dir, "matrix.yaml")], { cwd: dir });
  run("bash", [path.join(ROOT, "scripts", "local.sh"), "init", "--stack-dir", stackDir(dir, id)], { env: tfEnv });
}

// ------------------------------------------------------------------ the suite
const workA = path.join(WORK, "first");
const workB = path.join(WORK, "second");
let client;

async function main() {
  await step("prerequisites: root, lxc, Terraform CLI, compiled library", () => {
    assert(process.getuid?.() === 0, "the deploy suite manages LXD and Consul on this machine: run it as root");
    run(terraform, ["version"]);
    run("npm", ["run", "--silent", "build"], { cwd: ROOT });
  });
  await step("local host up", () => stream("bash", [path.join(ROOT, "scripts", "host.sh"), "up", configFile]).then((r) => assert(r.status === 0, r.tail)));
  await step("Consul token for Terraform (host.consul.acl)", () => {
    const token = hostManagementToken();
    if (token) tfEnv.CONSUL_HTTP_TOKEN = token;
    log(token ? "Consul ACLs on: Terraform writes with the host's management token" : "Consul ACLs off (host.consul.acl: false)");
  });
  await step("images (built or reused)", () => stream("bash", [path.join(ROOT, "scripts", "images.sh")]).then((r) => assert(r.status === 0, r.tail)));

  fs.rmSync(WORK, { recursive: true, force: true });
  prepareWork(workA, cfg);
  await step("synthesize and check that terraform init can install the providers", () => synthAndInit(workA, project.id));

  const deployStart = Date.now();
  figures.applyS = await step("cdktf deploy (first project and the shared modules)", () => deploy(workA));
  const containers = containersOf([`${project.id}-`, "ingress-proxy", "postgres", "wellknown", "coturn"]);
  await step(`cloud-init done in ${containers.length} containers`, async () => {
    await Promise.all(containers.map((c) => waitFor(`cloud-init in ${c}`, async () => (await cloudInitDone(c), true), { timeoutMs: 240_000, intervalMs: 2000 })));
  });
  if (tfEnv.CONSUL_HTTP_TOKEN) {
    await step("Consul ACLs: a module container's token reads its own prefix and writes nothing", () => {
      const consulUrl = `http://${netPart}.1:8500`;
      const status = (container, method, key, withToken) =>
        lxcExec(container, [
          "sh", "-c",
          `curl -s -o /dev/null -w '%{http_code}' -X ${method} ${method === "PUT" ? "--data rewritten" : ""} ${withToken ? `-H "X-Consul-Token: $(cat ${CONSUL_TOKEN_PATH})"` : ""} ${consulUrl}/v1/kv/${key}`,
        ]).trim();
      // The attack of the security issue: rewrite the admin-path deny, take over a database.
      const ownerKey = `service/postgres/databases/${project.id.replace(/-/g, "_")}_synapse/owner`;
      for (const c of ["ingress-proxy", "postgres", "wellknown", "coturn"]) {
        for (const key of ["service/haproxy/deny/matrix-lxd-e2e", ownerKey]) {
          assert(status(c, "PUT", key, true) === "403", `${c} could write ${key} with its token`);
          assert(status(c, "PUT", key, false) === "403", `${c} could write ${key} without a token`);
        }
      }
      assert(status("postgres", "GET", "service/haproxy/deny/matrix-lxd-e2e", true) === "403", "postgres's token must not read the proxy's keys");
      assert(status("postgres", "GET", ownerKey, true) === "200", "postgres's token reads its registrations");
      assert(status("ingress-proxy", "GET", ownerKey, true) === "403", "the proxy's token must not read the database registrations");
    });
  }

  await check("no secret is readable by an unprivileged user in any container (files, cloud-init data, /dev/lxd)", () => {
    // Every generated secret from the state, and the admin password.
    const state = JSON.parse(run(terraform, ["show", "-json", "-no-color"], { cwd: stackDir(workA, project.id), env: tfEnv }));
    const resources = [state.values?.root_module, ...(state.values?.root_module?.child_modules ?? [])].flatMap((m) => m?.resources ?? []);
    const secrets = [adminPassword, ...resources.filter((r) => r.type === "random_password").map((r) => r.values.result)];
    assert(secrets.length >= 6, `found only ${secrets.length} secrets in the state`);
    const exposed = [];
    for (const c of containers) {
      // As nobody: search where configuration lives, cloud-init's copies (/run/cloud-init, /var/lib/cloud) included.
      const script = "grep -rlIF -f /dev/stdin /etc /run /var /tmp /opt /usr/local /srv /home /root 2>/dev/null; true";
      const found = lxcExec(c, ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "sh", "-c", script], { input: `${secrets.join("\n")}\n`, timeoutMs: 300_000 }).trim();
      if (found) exposed.push(`${c}: ${found.split("\n").join(", ")}`);
      // /dev/lxd answers every user with the config: it must hold no secret either.
      const devlxd = run("lxc", ["config", "get", c, "security.devlxd"]).trim();
      const config = run("lxc", ["config", "show", c]);
      if (secrets.some((v) => config.includes(v))) exposed.push(`${c}: the instance config (served on /dev/lxd/sock: security.devlxd=${devlxd || "true"})`);
    }
    assert(exposed.length === 0, `secrets readable by nobody:\n${exposed.join("\n")}`);
  });

  const proxyName = containersOf(["ingress-proxy", `${cfg.host.id}-ingress`]).find((c) => c.includes("ingress")) ?? "ingress-proxy";
  // The one certificate the client trusts: the proxy's self-signed fallback, read from its container.
  const ca = lxcExec(proxyName, ["cat", "/var/certs/fallback.fullchain.pem"]);
  client = proxyClient({ address: publicIp, names: Object.values(names).concat(["second.example.org", "matrix.second.example.org"]), ca });
  const f = client.fetch;
  const base = `https://${names.matrix}`;

  await step("Synapse answers through the proxy", () =>
    waitFor("https://matrix.<domain>/_matrix/client/versions", async () => (await get(f, `${base}/_matrix/client/versions`)).status === 200, { timeoutMs: 120_000 }),
  );
  figures.readyS = (Date.now() - deployStart) / 1000;

  await check("well-known client/server/support: JSON with CORS", async () => {
    for (const [p, key] of [["client", "m.homeserver"], ["server", "m.server"], ["support", "contacts"]]) {
      const r = await get(f, `https://${domain}/.well-known/matrix/${p}`);
      assert(r.status === 200, `/.well-known/matrix/${p}: ${r.status}`);
      assert(r.headers.get("access-control-allow-origin") === "*", `/.well-known/matrix/${p}: no CORS header`);
      assert(key in r.json(), `/.well-known/matrix/${p}: no ${key} in ${r.text}`);
    }
    assert(((await get(f, `https://${domain}/.well-known/matrix/client`)).json())["m.homeserver"].base_url === base, "client well-known names another homeserver");
  });
  await check("http:// redirects to https://", async () => {
    const r = await get(f, `http://${names.matrix}/_matrix/client/versions`);
    assert([301, 302, 308].includes(r.status) && r.headers.get("location")?.startsWith(`https://${names.matrix}/`), `got ${r.status} ${r.headers.get("location")}`);
  });
  await check("/_synapse/admin is 403 through the proxy, encoded and malformed variants too", async () => {
    for (const p of ["/_synapse/admin/v1/server_version", "/_synapse/%61dmin/v1/server_version", "/_synapse//admin/v1/server_version", "/_synapse/./admin/v1/server_version", "/_synapse/admin%2Fv1/server_version"]) {
      const r = await get(f, `${base}${p}`);
      assert(r.status === 403 || r.status === 400, `${p} answered ${r.status}`);
    }
  });

  let admin;
  let user;
  const userId = `@e2euser:${domain}`;
  await step("matrix-js-sdk: admin logs in, creates a user, both chat", async () => {
    admin = await login(base, f, project.admin.username, adminPassword);
    await createUserViaAdminApi(synapseInternal, admin.getAccessToken(), userId, userPassword);
    user = await login(base, f, "e2euser", userPassword);
    const { roomId, expected } = await conversation(admin, user);
    const seen = await readMessages(user, roomId);
    assert(expected.every((line) => seen.includes(line)), `messages read back: ${JSON.stringify(seen)}`);
    figures.room = { roomId, expected };
  });

  await check("voip/turnServer: turn: and turns: URIs with time-limited credentials", async () => {
    const turn = await admin.turnServer();
    assert(turn.uris.some((u) => u.startsWith("turn:")) && turn.uris.some((u) => u.startsWith("turns:")), `uris: ${turn.uris}`);
    assert(/^\d+:/.test(turn.username) && turn.password && turn.ttl > 0, `credentials: ${JSON.stringify({ ...turn, password: "…" })}`);
    figures.turn = turn;
  });
  await check("coturn: allocation with those credentials; a public peer permitted, a private one refused", async () => {
    assert(figures.turn, "no TURN credentials from Synapse");
    const port = cfg.modules?.coturn?.listening_port ?? 3478;
    const turn = await TurnClient.connect(publicIp, port);
    try {
      const allocation = await turn.allocate(figures.turn.username, figures.turn.password);
      assert(allocation.ok, `Allocate: ${JSON.stringify(allocation)}`);
      // Permission answers only: no data is sent to any peer.
      const publicPeer = await turn.createPermission("1.2.3.4");
      assert(publicPeer.ok, `CreatePermission 1.2.3.4: ${JSON.stringify(publicPeer)}`);
      const privatePeer = await turn.createPermission(`${netPart}.${hostParts.synapse}`);
      assert(!privatePeer.ok && privatePeer.code === 403, `CreatePermission to Synapse's address: ${JSON.stringify(privatePeer)}`);
    } finally {
      await turn.close();
    }
  });

  await check("Element's config.json names this homeserver", async () => {
    const r = await get(f, `https://${names.element}/config.json`);
    assert(r.status === 200, `status ${r.status}`);
    assert(r.json().default_server_config["m.homeserver"].base_url === base, r.text);
  });
  await check("synapse-admin answers on its internal address, not through the proxy", async () => {
    const r = await fetch(`http://${netPart}.${hostParts.synapseAdmin}/config.json`);
    assert(r.status === 200, `internal: ${r.status}`);
    for (const host of [names.matrix, names.element, domain]) {
      const p = await get(f, `https://${host}/config.json`, { headers: {} });
      assert(!(p.text.includes("restrictBaseUrl")), `synapse-admin's config.json is served through the proxy on ${host}`);
    }
  });
  await check("the Synapse database is UTF8 with C collation and ctype", () => {
    const pg = containersOf(["postgres", `${cfg.host.id}-postgres`])[0] ?? "postgres";
    const out = lxcExec(pg, ["runuser", "-u", "postgres", "--", "psql", "-At", "-c", "select datname, pg_encoding_to_char(encoding), datcollate, datctype from pg_database"]);
    const row = out.split("\n").find((l) => l.startsWith(`${project.id.replace(/-/g, "_")}_synapse|`) || l.includes("synapse|"));
    assert(row && /\|UTF8\|C\|C$/.test(row), `pg_database: ${out}`);
  });

  await step("no-op plan right after the deploy", () => {
    const p = plan(workA, project.id);
    figures.planS = p.s;
    assert(p.status === 0, `terraform plan exit ${p.status} (2 = changes):\n${p.stdout.split("\n").filter((l) => /^\s*[#~+-]|Plan:/.test(l)).slice(0, 40).join("\n")}`);
  });

  await step("replace Synapse (new image alias): only Synapse is replaced, data stays", async () => {
    const upgraded = structuredClone(cfg);
    const oldImage = upgraded.project.synapse?.image;
    assert(oldImage, "config has no project.synapse.image to upgrade");
    const newImage = `${oldImage}-e2e-upgrade`;
    const fp = JSON.parse(run("lxc", ["image", "list", "--format", "json"])).find((i) => i.aliases.some((a) => a.name === oldImage))?.fingerprint;
    assert(fp, `image ${oldImage} not found`);
    run("lxc", ["image", "alias", "create", newImage, fp], { allowFailure: true });
    upgraded.project.synapse.image = newImage;
    prepareWork(workA, upgraded);
    run("node", [path.join(ROOT, "dist", "main.js"), path.join(workA, "matrix.yaml")], { cwd: workA });
    const p = plan(workA, project.id, {}, ["-out=upgrade.plan"]);
    assert(p.status === 2, `expected changes, plan exit ${p.status}`);
    const changes = JSON.parse(run(terraform, ["show", "-json", "upgrade.plan"], { cwd: stackDir(workA, project.id), env: tfEnv })).resource_changes.filter((c) => !c.change.actions.includes("no-op") && !c.change.actions.includes("read"));
    const outside = changes.filter((c) => !/synapse/.test(c.address) || /synapse-admin|synapse_admin|synapseadmin/i.test(c.address));
    assert(outside.length === 0, `the upgrade also changes: ${outside.map((c) => `${c.address} ${c.change.actions}`).join(", ")}`);
    const stop = watchAvailability(async () => (await get(f, `${base}/_matrix/client/versions`)).status === 200);
    await deploy(workA);
    await cloudInitDone(containerName("synapse"));
    // Back means answering steadily: the proxy's health checks can still take it out for a moment.
    let streak = 0;
    await waitFor("Synapse answering steadily after the replacement", async () => {
      streak = (await get(f, `${base}/_matrix/client/versions`).catch(() => ({ status: 0 }))).status === 200 ? streak + 1 : 0;
      return streak >= 12;
    }, { timeoutMs: 120_000, intervalMs: 250 });
    figures.synapseDowntimeS = (await stop()) / 1000;
    const again = await login(base, f, "e2euser", userPassword);
    const seen = await readMessages(again, figures.room.roomId);
    assert(figures.room.expected.every((l) => seen.includes(l)), `after the replacement: ${JSON.stringify(seen)}`);
    Object.assign(cfg, upgraded);
  });

  await step("a second Matrix project beside the first, sharing the modules", async () => {
    second.project.synapse = { ...(second.project.synapse ?? {}), image: cfg.project.synapse?.image ?? second.project.synapse?.image };
    prepareWork(workB, second);
    synthAndInit(workB, second.project.id);
    const secret = run(terraform, ["output", "-raw", "turn_shared_secret"], { cwd: stackDir(workA, project.id), env: tfEnv });
    await deploy(workB, { TF_VAR_turn_shared_secret: secret });
    const b = `https://matrix.${second.project.domain}`;
    await waitFor("the second project's Synapse through the proxy", async () => (await get(f, `${b}/_matrix/client/versions`)).status === 200, { timeoutMs: 180_000 });
    const wk = await get(f, `https://${second.project.domain}/.well-known/matrix/client`);
    assert(wk.status === 200 && wk.json()["m.homeserver"].base_url === b, `second well-known: ${wk.status} ${wk.text}`);
    const a2 = await login(b, f, second.project.admin.username, adminPassword);
    assert(a2.getUserId() === `@${second.project.admin.username}:${second.project.domain}`, a2.getUserId());
    const first = await login(base, f, "e2euser", userPassword);
    assert((await readMessages(first, figures.room.roomId)).length >= 2, "the first project lost its messages");
  });

  await step("destroy keeps the data volumes", async () => {
    const before = volumes();
    for (const [dir, id, env] of [[workB, "e2e-second", { TF_VAR_turn_shared_secret: "unused" }], [workA, project.id, {}]]) {
      const t0 = Date.now();
      const res = await stream("bash", [path.join(ROOT, "scripts", "local.sh"), "destroy", "--stack-dir", stackDir(dir, id)], { env: { ...tfEnv, ...env } });
      assert(res.status === 0, res.tail);
      if (id === project.id) figures.destroyS = (Date.now() - t0) / 1000;
    }
    const left = containersOf([`${project.id}-`, "e2e-second-", "ingress-proxy", "postgres", "wellknown", "coturn"]);
    assert(left.length === 0, `containers left: ${left}`);
    const kv = run("curl", ["-s", ...(tfEnv.CONSUL_HTTP_TOKEN ? ["-H", `X-Consul-Token: ${tfEnv.CONSUL_HTTP_TOKEN}`] : []), `http://${netPart}.1:8500/v1/kv/?keys`], { allowFailure: true }).stdout;
    assert(kv.trim() === "" || kv.trim() === "[]", `KV entries left: ${kv}`);
    const after = volumes();
    assert(before.length > 0 && before.every((v) => after.includes(v)), `volumes before ${before}, after ${after}`);
  });
}

/** The management token host:up keeps for the host (none when host.consul.acl is off). */
function hostManagementToken() {
  const facts = run("node", [path.join(ROOT, "scripts", "host-facts.js"), configFile]);
  const fact = (name) => new RegExp(`^${name}='([^']*)'$`, "m").exec(facts)?.[1];
  if (fact("CONSUL_ACL") !== "1") return undefined;
  const file = path.join(process.env.MATRIX_LXD_STATE ?? "/var/lib/matrix-lxd", fact("HOST_ID"), "consul", "management-token");
  assert(fs.existsSync(file), `host.consul.acl is on and host:up left no management token in ${file}`);
  return fs.readFileSync(file, "utf8").trim();
}

function volumes() {
  return JSON.parse(run("lxc", ["storage", "volume", "list", cfg.host.lxd?.storage_pool ?? "default", "--format", "json"]))
    .filter((v) => v.type === "custom")
    .map((v) => v.name);
}

let exitCode = 0;
try {
  await main();
} catch {
  exitCode = 1;
} finally {
  client?.close();
  if (!keep) {
    // After a failure the stacks may still be up: remove them (data included) before the host.
    for (const [dir, id, env] of [[workB, "e2e-second", { TF_VAR_turn_shared_secret: "unused" }], [workA, project.id, {}]]) {
      if (!fs.existsSync(path.join(stackDir(dir, id), "cdk.tf.json")) || !fs.existsSync(path.join(dir, `terraform.${id}.tfstate`))) continue;
      await step(`teardown: destroy ${id} (data included)`, () =>
        stream("bash", [path.join(ROOT, "scripts", "local.sh"), "destroy", "--purge", "--stack-dir", stackDir(dir, id)], { env: { ...tfEnv, ...env } }).then((r) => assert(r.status === 0, r.tail)),
      ).catch(() => (exitCode = 1));
    }
    await step("teardown: host down, data volumes purged", () =>
      stream("bash", [path.join(ROOT, "scripts", "host.sh"), "down", "--purge", configFile]).then((r) => assert(r.status === 0, r.tail)),
    ).catch(() => (exitCode = 1));
  } else {
    log(`--keep: the deployment stays up; state and configuration in ${WORK}`);
  }
  console.log("\n==== deploy suite summary ====");
  for (const s of summary) console.log(`${s.ok ? "PASS" : "FAIL"}  ${s.s.toFixed(1).padStart(6)} s  ${s.name}${s.ok ? "" : `\n        ${s.error.split("\n").join("\n        ")}`}`);
  console.log("figures:", JSON.stringify({ ...figures, turn: undefined, room: undefined }));
  if (failures > 0) exitCode = 1;
  process.exit(exitCode);
}
