#!/usr/bin/env bash
# Consumer test: packs the library the way it would be published, then, for each supported
# TypeScript major (the 5.9 line the library builds with, and 7.x), installs the tarball with only
# its peer dependencies and `typescript` into a fresh project outside the repository (no
# @types/node), and builds every TypeScript example of the README in it exactly as written, with
# the README's strict tsconfig.json and `skipLibCheck` off. Each example is run and the resources
# it synthesizes are checked, so the README cannot drift from the code. Installing must print no
# npm warning.
#
# The library is packed from a scratch copy of the work tree (sources only, the repository's
# node_modules linked in), so `npm pack`'s `prepack` regenerates gen/ and rebuilds dist/ from
# scratch: nothing stale can slip into the tarball, and the shared work tree is left untouched.
#
# Usage: bash scripts/consumer-test.sh [--help]   (or: npm run test:consumer)
#   CONSUMER_KEEP=1  keep the temporary directory for inspection
# Needs the npm cache (or the registry) for cdktf, constructs and both typescript versions.
set -euo pipefail

case "${1:-}" in
  -h | --help)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  "") ;;
  *)
    echo "usage: bash scripts/consumer-test.sh [--help]" >&2
    exit 2
    ;;
esac

started=$(date +%s%N)
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/matrix-lxd-consumer.XXXXXX")
# CONSUMER_KEEP=1 keeps the temporary directory for inspection.
trap '[ "${CONSUMER_KEEP:-0}" = 1 ] && echo "[consumer] kept $work" || rm -rf "$work"' EXIT

elapsed() {
  local ms=$((($(date +%s%N) - started) / 1000000))
  printf '%d.%d s' $((ms / 1000)) $((ms % 1000 / 100))
}
log() { echo "[consumer] [$(elapsed)] $*"; }
fail() {
  echo "[consumer] FAILED: $*" >&2
  exit 1
}
# Runs a command with its output in a log file; shows the log only when the command fails.
quiet() {
  local name=$1
  shift
  if ! "$@" >"$work/$name.log" 2>&1; then
    grep -v 'Unknown \(user\|env\) config "nodedir"' "$work/$name.log" | tail -n 60 >&2 || true
    fail "$name: '$*' exited non-zero (output above)"
  fi
}

case "$work/" in
  "$repo"/*) fail "temporary directory $work is inside the repository" ;;
esac
[ -d "$repo/node_modules" ] || fail "$repo/node_modules is missing; run npm ci in the repository first"

export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

# --- 1. pack -------------------------------------------------------------------------------
src="$work/src"
mkdir -p "$src" "$work/pack"
log "copying the work tree to a scratch directory (without node_modules, dist, gen, cdktf.out)"
tar -C "$repo" \
  --exclude=./node_modules --exclude=./dist --exclude=./gen --exclude=./cdktf.out \
  --exclude=./.git --exclude=./.ci --exclude='./*.tgz' -cf - . | tar -C "$src" -xf -
ln -s "$repo/node_modules" "$src/node_modules"

log "npm pack (runs prepack: gen:bindings, build, install-time scripts stripped from the packed package.json)"
(cd "$src" && quiet pack npm pack --pack-destination "$work/pack")
tarballs=("$work"/pack/*.tgz)
[ "${#tarballs[@]}" -eq 1 ] && [ -f "${tarballs[0]}" ] || fail "npm pack produced no single tarball in $work/pack"
tarball=${tarballs[0]}
log "packed $(basename "$tarball") ($(du -k "$tarball" | cut -f1) KiB)"

cmp -s "$repo/package.json" "$src/package.json" || fail "package.json was not restored after packing (postpack)"
[ ! -e "$src/.package.json.prepack" ] || fail "packing left .package.json.prepack behind"

log "checking the tarball's contents"
mkdir -p "$work/unpacked"
tar -C "$work/unpacked" -xzf "$tarball"
tar -tzf "$tarball" >"$work/contents.txt"
node - "$work/unpacked/package" "$work/contents.txt" "$src" <<'NODE'
const fs = require("fs");
const path = require("path");
const [pkgDir, listFile, srcDir] = process.argv.slice(2).map((p) => path.resolve(p));
const entries = fs.readFileSync(listFile, "utf8").split("\n").filter(Boolean).map((e) => e.replace(/^package\//, ""));
const have = new Set(entries);
const problems = [];

const required = ["package.json", "dist/index.js", "dist/index.d.ts", "schema/matrix-config.schema.json", "versions.json", "README.md"];
// Every compiled construct and library module, with its declarations.
const sources = (dir) =>
  fs.readdirSync(path.join(srcDir, dir), { recursive: true })
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))
    .map((f) => path.join(dir, f).replace(/\.ts$/, ""));
for (const base of [...sources("constructs"), ...sources("lib")]) required.push(`dist/${base}.js`, `dist/${base}.d.ts`);
for (const file of required) if (!have.has(file)) problems.push(`missing ${file}`);

const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8"));
for (const field of ["main", "types"]) {
  if (!pkg[field] || !have.has(pkg[field].replace(/^\.\//, ""))) problems.push(`package.json ${field} (${pkg[field]}) is not in the tarball`);
}

const forbidden = [
  [/^test\//, "tests"],
  [/\.test\.[jt]s$/, "tests"],
  [/^gen\//, "gen/ TypeScript sources"],
  [/(^|\/)node_modules\//, "node_modules"],
  [/^cdktf\.out\//, "cdktf.out"],
  [/\.tsbuildinfo$/, "a .tsbuildinfo"],
  [/\.tgz$/, "a tarball"],
  [/^(?!.*\.d\.ts$).*\.ts$/, "TypeScript sources"],
  [/^\.(ci|git|swcrc)\b/, "repository housekeeping"],
];
for (const entry of entries) {
  for (const [pattern, what] of forbidden) if (pattern.test(entry)) problems.push(`contains ${what}: ${entry}`);
}

// Every relative require() in dist (compiled modules, generated bindings, JSON modules such as
// versions.json and the schema) must resolve inside the package.
const jsonModules = new Set();
const resolves = (file) => [file, `${file}.js`, `${file}.json`, path.join(file, "index.js")].some((f) => fs.existsSync(f) && fs.statSync(f).isFile());
for (const entry of entries.filter((e) => e.startsWith("dist/") && e.endsWith(".js"))) {
  const text = fs.readFileSync(path.join(pkgDir, entry), "utf8");
  for (const [, spec] of text.matchAll(/require\("(\.{1,2}\/[^"]*)"\)/g)) {
    const target = path.resolve(path.dirname(path.join(pkgDir, entry)), spec);
    if (!target.startsWith(pkgDir + path.sep) || !resolves(target)) problems.push(`${entry} requires ${spec}, which is not in the tarball`);
    else if (spec.endsWith(".json")) jsonModules.add(path.relative(pkgDir, target));
  }
}
// Bare imports in dist must be declared dependencies or peer dependencies.
const declared = new Set([...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {})]);
const builtin = new Set(require("module").builtinModules);
for (const entry of entries.filter((e) => e.startsWith("dist/") && e.endsWith(".js"))) {
  const text = fs.readFileSync(path.join(pkgDir, entry), "utf8");
  for (const [, spec] of text.matchAll(/require\("([^."][^"]*)"\)/g)) {
    const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0];
    if (!builtin.has(name.replace(/^node:/, "")) && !declared.has(name)) problems.push(`${entry} requires ${spec}, which is not a dependency`);
  }
}

// npm 11 warns about install-time scripts of a package installed from a tarball; the tarball
// ships dist/ built, so it needs none.
const installScripts = ["preinstall", "install", "postinstall", "prepare"].filter((name) => pkg.scripts && name in pkg.scripts);
if (installScripts.length > 0) problems.push(`package.json ships install-time scripts: ${installScripts.join(", ")}`);

if (problems.length > 0) {
  console.error(`[consumer] the tarball is wrong:\n${[...new Set(problems)].map((p) => `  - ${p}`).join("\n")}`);
  process.exit(1);
}
console.log(`[consumer] tarball ok: ${entries.length} files, ${required.length} required ones present, none forbidden, JSON modules required by dist present: ${[...jsonModules].sort().join(", ")}`);
NODE

# --- 2. the README's examples ----------------------------------------------------------------
readme_dir="$work/readme"
mkdir -p "$readme_dir"
log "extracting the README's TypeScript examples and its tsconfig.json"
node - "$src/README.md" "$readme_dir" <<'NODE'
const fs = require("fs");
const path = require("path");
const [readmeFile, outDir] = process.argv.slice(2);
const lines = fs.readFileSync(readmeFile, "utf8").split("\n");
const examples = [];
let tsconfig;
let heading = "";
for (let i = 0; i < lines.length; i++) {
  if (/^#{1,6} /.test(lines[i])) heading = lines[i].replace(/^#+ /, "");
  const open = /^```\s*([A-Za-z]*)\s*$/.exec(lines[i]);
  if (!open) continue;
  const close = lines.findIndex((l, j) => j > i && /^```\s*$/.test(l));
  if (close < 0) throw new Error(`README.md:${i + 1}: unclosed code block`);
  const body = lines.slice(i + 1, close).join("\n") + "\n";
  const lang = open[1].toLowerCase();
  if (["ts", "typescript", "tsx", "mts", "cts"].includes(lang)) {
    const n = examples.length + 1;
    const file = `example-${n}.ts`;
    fs.writeFileSync(path.join(outDir, file), body);
    examples.push({ n, file, line: i + 1, heading });
  } else if (lang === "json" && lines.slice(Math.max(0, i - 2), i).some((l) => l.includes("<!-- consumer-test:tsconfig -->"))) {
    tsconfig = JSON.parse(body);
  }
  i = close;
}
const problems = [];
if (examples.length === 0) problems.push("README.md has no TypeScript example");
if (!tsconfig) problems.push("README.md has no tsconfig.json block marked <!-- consumer-test:tsconfig -->");
else {
  const options = tsconfig.compilerOptions ?? {};
  if (options.strict !== true) problems.push("the README's tsconfig.json is not strict");
  if (options.skipLibCheck === true) problems.push("the README's tsconfig.json skips the library's declarations (skipLibCheck)");
  if ((options.types ?? []).includes("node")) problems.push("the README's tsconfig.json asks for @types/node");
  fs.writeFileSync(path.join(outDir, "tsconfig.json"), JSON.stringify(tsconfig, null, 2) + "\n");
}
if (problems.length > 0) {
  console.error(problems.map((p) => `[consumer] ${p}`).join("\n"));
  process.exit(1);
}
fs.writeFileSync(path.join(outDir, "examples.json"), JSON.stringify(examples, null, 2));
for (const e of examples) console.log(`[consumer]   ${e.file}: README.md line ${e.line}, "${e.heading}"`);
NODE
mapfile -t example_files < <(node -e 'for (const e of require(process.argv[1])) console.log(e.file)' "$readme_dir/examples.json")

# Invalid props must fail at synth time with an error that names the prop, and wrong prop types
# at compile time (the @ts-expect-error lines break the build if the declarations stop catching them).
cat >"$readme_dir/consumer-bad-props.ts" <<'TS'
import { App, TerraformStack } from "cdktf";
import { Host, IngressRoute, Postgres, PostgresDatabase, ServiceContainer, ValidationError } from "matrix-lxd-cdktf";

const host = new Host({ hostId: "myhost", ipv4NetworkPart: "10.10.1", publicIpv4: "203.0.113.10" });
const stack = new TerraformStack(new App(), "bad");
const failures: string[] = [];

function expectInvalid(what: string, prop: string, value: string, build: () => void): void {
  try {
    build();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const namesProp = error instanceof ValidationError && error.problems.some((p) => p.path === prop);
    if (namesProp && message.includes(value)) {
      console.log(`[consumer]   ${what} rejected as expected: ${message.split("\n").find((l) => l.includes(`${prop}:`))?.trim()}`);
      return;
    }
    failures.push(`${what}: expected a ValidationError naming ${prop} and ${value}, got:\n${message}`);
    return;
  }
  failures.push(`${what}: accepted, expected an error naming ${prop}`);
}

expectInvalid("IngressRoute host", "host", "Wiki.Example.com.", () => {
  new IngressRoute(stack, "route", { name: "wiki-host", host: "Wiki.Example.com.", action: { backend: "wiki" } });
});
expectInvalid("PostgresDatabase database", "database", "Wiki-DB", () => {
  new PostgresDatabase(stack, "db", { postgres: Postgres.reference(host), database: "Wiki-DB", owner: "wiki" });
});
expectInvalid("Host hostId", "host.hostId", "my-host", () => {
  new Host({ hostId: "my-host", ipv4NetworkPart: "10.10.1", publicIpv4: "203.0.113.10" });
});

// Never called: only compiled.
export function typeErrors(): void {
  // @ts-expect-error hostPart is a number
  new ServiceContainer(stack, "a", { host, name: "a", hostPart: "40", firewall: [] });
  // @ts-expect-error firewall is required
  new ServiceContainer(stack, "b", { host, name: "b", hostPart: 41 });
  // @ts-expect-error an action is a backend, a deny or a redirect
  new IngressRoute(stack, "c", { name: "c", host: "c.example.com", action: { backend: 1 } });
}

if (failures.length > 0) throw new Error(failures.join("\n"));
TS

# --- 3. checks on what an example synthesized ------------------------------------------------
# Every stack an example writes must have an entry here, and every entry must be written by some
# example: a new README example needs its checks, and a removed one is noticed.
cat >"$work/check-stacks.js" <<'NODE'
const fs = require("fs");
const path = require("path");
const [outDir, versionsFile, example] = process.argv.slice(2);
const versions = JSON.parse(fs.readFileSync(versionsFile, "utf8"));

const stacksDir = path.join(outDir, "stacks");
const stackNames = fs.existsSync(stacksDir) ? fs.readdirSync(stacksDir).sort() : [];
const problems = [];
const summaries = [];
if (stackNames.length === 0) problems.push(`${example} synthesized no stack into cdktf.out/stacks`);

const resourcesOf = (stack, type) => Object.values(stack.resource?.[type] ?? {});
const kvOf = (stack) => {
  const kv = new Map();
  for (const keys of resourcesOf(stack, "consul_keys")) for (const k of keys.key ?? []) kv.set(k.path, k.value);
  return kv;
};
const instanceNames = (stack) => resourcesOf(stack, "lxd_instance").map((i) => i.name).sort();
const nicOf = (instance) => (instance.device ?? []).find((d) => d.name === "eth0")?.properties ?? {};

// What every stack must satisfy: provider pins from the package's versions.json, no secret literal.
function common(stack, text, check) {
  const pins = stack.terraform?.required_providers ?? {};
  for (const name of ["lxd", "consul"]) check(name in pins, `required_providers has no ${name}`);
  for (const [name, pin] of Object.entries(pins)) {
    const source = String(pin.source ?? "").split("/").slice(-2).join("/");
    const wanted = Object.values(versions.providers).find((p) => p.source === source);
    check(wanted !== undefined && Object.values(wanted.versions).includes(pin.version), `required_providers.${name} is ${JSON.stringify(pin)}, not a pin from versions.json`);
  }
  for (const [id, password] of Object.entries(stack.resource?.random_password ?? {})) {
    for (const literal of ["result", "bcrypt_hash"]) check(!(literal in password), `random_password.${id} carries a ${literal} literal`);
    check(text.includes(`random_password.${id}.result`) || text.includes(`random_password.${id}.bcrypt_hash`), `random_password.${id} is never referenced`);
  }
  // A generated password is a long mixed-case alphanumeric run; digests and key fingerprints (hex) are not.
  const secretLike = (value) => (value.replace(/\$\{[^}]*\}/g, "").match(/[A-Za-z0-9]{32,}/g) ?? []).some((run) => !/^[0-9a-f]+$/i.test(run));
  const walk = (value, at) => {
    if (typeof value === "string") {
      check(at.includes("user-data") || !secretLike(value), `a long alphanumeric literal (a password?) at ${at}`);
    } else if (value && typeof value === "object") {
      for (const [k, v] of Object.entries(value)) walk(v, `${at}.${k}`);
    }
  };
  walk(stack.resource, "resource");
  walk(stack.output, "output");
}

function expectKv(kv, expected, check) {
  for (const [key, value] of Object.entries(expected)) {
    check(kv.has(key), `KV key ${key} is missing`);
    if (kv.has(key)) check(kv.get(key) === value, `KV ${key} is ${JSON.stringify(kv.get(key))}, expected ${JSON.stringify(value)}`);
  }
}

function matrixProject(stack, check, projectId) {
  const names = instanceNames(stack);
  for (const suffix of ["synapse", "element", "synapse-admin"]) {
    check(names.includes(`${projectId}-${suffix}`), `no lxd_instance ${projectId}-${suffix} (have ${names.join(", ")})`);
  }
  check(names.length === 7, `expected 7 containers (4 shared modules and 3 Matrix ones), found ${names.join(", ")}`);
  for (const instance of resourcesOf(stack, "lxd_instance")) check(instance.config?.["security.privileged"] === "false", `${instance.name} is not unprivileged`);
  const admin = stack.variable?.admin_password;
  check(admin?.sensitive === true, "no sensitive variable admin_password");
  const kv = kvOf(stack);
  const adminAcls = [...kv].filter(([k, v]) => /^service\/haproxy\/acl\/[^/]+\/path$/.test(k) && v === "/_synapse/admin").map(([k]) => k.split("/")[3]);
  check(adminAcls.some((acl) => kv.has(`service/haproxy/deny/${acl}`)), "the public proxy does not deny /_synapse/admin");
  return `${names.length} containers (${names.join(", ")}), ${kv.size} KV keys`;
}

const expectations = {
  "wiki-route": (stack, check) => {
    check(instanceNames(stack).length === 0, `expected no container, found ${instanceNames(stack).join(", ")}`);
    const kv = kvOf(stack);
    expectKv(kv, {
      "service/certbot/wiki.example.com": "admin@example.com",
      "service/haproxy/backends/no-ssl/wiki": "",
      "service/haproxy/acl/wiki-host/host": "wiki.example.com",
      "service/haproxy/use-backend/wiki-host": "wiki",
    }, check);
    return `certificate, backend and route for wiki.example.com (${kv.size} KV keys)`;
  },
  "wiki-app": (stack, check) => {
    const instances = resourcesOf(stack, "lxd_instance");
    check(instances.length === 1 && instances[0].name === "wiki", `expected one lxd_instance wiki, found ${instanceNames(stack).join(", ") || "none"}`);
    const wiki = instances.find((i) => i.name === "wiki");
    if (wiki) {
      check(nicOf(wiki)["ipv4.address"] === "10.10.1.40", `wiki eth0 ipv4.address is ${nicOf(wiki)["ipv4.address"]}, expected 10.10.1.40`);
      check(wiki.config?.["security.privileged"] === "false", "wiki container is not unprivileged");
      const userData = wiki.config?.["cloud-init.user-data"] ?? "";
      check(/ip saddr \{ 10\.10\.1\.10 \} tcp dport \{ 80 \} accept/.test(userData), "the firewall does not admit port 80 from the ingress proxy (10.10.1.10)");
      check((wiki.device ?? []).some((d) => d.properties?.path === "/var/lib/wiki"), "the data volume is not mounted at /var/lib/wiki");
    }
    check(resourcesOf(stack, "lxd_storage_volume").some((v) => v.name === "wiki-data" && v.lifecycle?.prevent_destroy === true), "no protected lxd_storage_volume wiki-data");
    check(resourcesOf(stack, "consul_service").some((s) => s.name === "wiki" && s.address === "10.10.1.40" && s.port === 80), "no consul_service wiki at 10.10.1.40:80");
    return "container wiki at 10.10.1.40 with its volume, firewall and Consul service";
  },
  "wiki-db": (stack, check) => {
    const kv = kvOf(stack);
    expectKv(kv, {
      "service/postgres/databases/wiki/owner": "wiki",
      "service/postgres/databases/wiki/encoding": "UTF8",
      "service/postgres/databases/wiki/lc-collate": "C",
      "service/postgres/databases/wiki/lc-ctype": "C",
      "service/postgres/databases/wiki/template": "template0",
    }, check);
    const digest = kv.get("service/postgres/databases/wiki/password-sha256");
    check(
      typeof digest === "string" && /^\$\{sha256\(random_password\.[\w-]+\.result\)\}$/.test(digest),
      `password-sha256 should be the sha256 of the random_password at apply time, got ${JSON.stringify(digest)}`,
    );
    check(!kv.has("service/postgres/databases/wiki/password-verifier"), "KV publishes a password-verifier (password-equivalent with md5)");
    const files = [...resourcesOf(stack, "lxd_instance_file"), ...resourcesOf(stack, "lxd_container_file")];
    check(files.some((f) => f.mode === "0600" && /random_password\.[\w-]+\.result/.test(f.content ?? "")), "the database password is not pushed into the PostgreSQL container as a 0600 file");
    const passwords = Object.values(stack.resource?.random_password ?? {});
    check(passwords.length === 1 && passwords[0].special === false && passwords[0].length >= 32, "expected one alphanumeric random_password of at least 32 characters");
    const url = stack.output?.database_url;
    check(url?.sensitive === true && /^postgresql:\/\/wiki:\$\{random_password\.[\w-]+\.result\}@10\.10\.1\.\d+:5432\/wiki$/.test(url?.value ?? ""), `output database_url is ${JSON.stringify(url)}`);
    return "database wiki owned by wiki, generated password, sensitive connection URL";
  },
  matrix: (stack, check) => matrixProject(stack, check, "matrix"),
  // config/example.yaml: a dual-stack host, Synapse at the default host part 20.
  "ryo-matrix": (stack, check) => {
    const synapse = resourcesOf(stack, "lxd_instance").find((i) => i.name === "ryo-matrix-synapse");
    const nic = synapse ? nicOf(synapse) : {};
    check(nic["ipv4.address"] === "10.10.1.20" && nic["ipv6.address"] === "fd10:10:10:1::1:20", `ryo-matrix-synapse eth0 is ${JSON.stringify(nic)}, expected 10.10.1.20 and fd10:10:10:1::1:20`);
    return matrixProject(stack, check, "ryo-matrix");
  },
};

for (const name of stackNames) {
  const file = path.join(stacksDir, name, "cdk.tf.json");
  const check = (ok, message) => {
    if (!ok) problems.push(`${example}, stack ${name}: ${message}`);
  };
  if (!fs.existsSync(file)) {
    check(false, "no cdk.tf.json");
    continue;
  }
  const text = fs.readFileSync(file, "utf8");
  const stack = JSON.parse(text);
  const expect = expectations[name];
  check(expect !== undefined, `no checks for this stack in scripts/consumer-test.sh (add them to expectations)`);
  if (!expect) continue;
  common(stack, text, check);
  summaries.push(`${name}: ${expect(stack, check)}`);
}
if (problems.length > 0) {
  console.error(problems.map((p) => `[consumer] ${p}`).join("\n"));
  process.exit(1);
}
console.log(summaries.join("; "));
NODE

# --- 4. one fresh consumer project per TypeScript major ---------------------------------------
ts_current_line=$(node -p 'require(process.argv[1]).devDependencies.typescript' "$repo/package.json")
declare -A stacks_seen=()
summary=()
for typescript in "typescript@$ts_current_line" "typescript@^7"; do
  major=${typescript#typescript@}
  major=${major#[~^]}
  major=${major%%.*}
  app="$work/ts$major"
  mkdir -p "$app"
  log "TypeScript $major: installing the tarball, cdktf, constructs and $typescript into $app (no @types/node)"
  (cd "$app" && quiet "init-ts$major" npm init -y)
  (cd "$app" && quiet "install-ts$major" npm install --no-audit --no-fund --prefer-offline \
    "$tarball" cdktf@0.21.0 "constructs@^10.4.2" "$typescript")
  if grep -i '^npm warn' "$work/install-ts$major.log" >&2; then
    fail "installing into a fresh project printed the npm warnings above"
  fi
  [ ! -e "$app/node_modules/@types/node" ] || fail "@types/node got installed into $app, so the test would not notice declarations that need it"
  tsc_version="TypeScript $(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).version' "$app/node_modules/typescript/package.json")"
  cp "$readme_dir"/*.ts "$readme_dir/tsconfig.json" "$app/"

  log "TypeScript $major: compiling ${#example_files[@]} README examples and the invalid-props checks with $tsc_version (strict, library declarations checked)"
  if ! (cd "$app" && ./node_modules/.bin/tsc -p tsconfig.json) >"$work/tsc-ts$major.log" 2>&1; then
    sed 's/^/  /' "$work/tsc-ts$major.log" >&2
    node -e 'for (const e of require(process.argv[1])) console.error(`  ${e.file}: the README.md block opened at line ${e.line} (its line n is README.md line ${e.line}+n)`)' "$readme_dir/examples.json"
    fail "TypeScript $major: the README examples do not compile (errors above)"
  fi

  for file in "${example_files[@]}"; do
    name=${file%.ts}
    rm -rf "$app/cdktf.out"
    (cd "$app" && quiet "run-ts$major-$name" node "dist/$name.js")
    mv "$app/cdktf.out" "$app/out-$name" 2>/dev/null || true
    node "$repo/scripts/check-provider-schemas.js" "$app/out-$name"/stacks/*/cdk.tf.json >"$work/schema-ts$major-$name.log" 2>&1 || {
      cat "$work/schema-ts$major-$name.log" >&2
      fail "TypeScript $major: $file synthesized a stack that does not conform to its provider schemas (above)"
    }
    result=$(node "$work/check-stacks.js" "$app/out-$name" "$work/unpacked/package/versions.json" "$file") ||
      fail "TypeScript $major: $file (README.md line $(node -p "require('$readme_dir/examples.json').find((e) => e.file === '$file').line")) synthesized the wrong resources (above)"
    log "TypeScript $major: $file ok: $result"
    for stack in "$app/out-$name"/stacks/*/; do stacks_seen[$(basename "$stack")]=1; done
  done
  log "TypeScript $major: invalid props are rejected, naming the prop"
  (cd "$app" && node dist/consumer-bad-props.js) || fail "TypeScript $major: invalid props were not rejected as expected (see above)"
  summary+=("$tsc_version: README examples built, run and checked: ${example_files[*]}; invalid props rejected")
done

# Every expectation must belong to a README example.
node - "$work/check-stacks.js" "${!stacks_seen[@]}" <<'NODE' || fail "the checks above belong to no README example"
const fs = require("fs");
const [checker, ...seen] = process.argv.slice(2);
const block = fs.readFileSync(checker, "utf8").split("const expectations = {")[1].split("\n};")[0];
const names = [...block.matchAll(/^  "?([\w-]+)"?: \(/gm)].map((m) => m[1]);
const unused = names.filter((n) => !seen.includes(n));
if (unused.length > 0) {
  console.error(`[consumer] checks for stacks no README example synthesizes: ${unused.join(", ")}`);
  process.exit(1);
}
NODE

log "summary:"
for line in "${summary[@]}"; do log "  $line"; done
log "passed in $(elapsed)"
