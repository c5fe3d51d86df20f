#!/usr/bin/env bash
# Consumer test: packs the library the way it would be published, installs the tarball into a
# fresh project outside the repository, compiles a small non-Matrix app (a "wiki" behind the
# host's ingress proxy, with its own certificate and database) against the shipped type
# declarations with the consumer's own strict `tsc`, synthesizes it and checks the result.
#
# The library is packed from a scratch copy of the work tree (sources only, the repository's
# node_modules linked in), so `npm pack`'s `prepare` regenerates gen/ and rebuilds dist/ from
# scratch: nothing stale can slip into the tarball, and the shared work tree is left untouched.
#
# Usage: bash scripts/consumer-test.sh   (or: npm run test:consumer)
# Needs the npm cache (or the registry) for cdktf, constructs, typescript and @types/node.
set -euo pipefail

started=$(date +%s%N)
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/matrix-lxd-consumer.XXXXXX")
# CONSUMER_KEEP=1 keeps the temporary directory for inspection.
trap '[ "${CONSUMER_KEEP:-0}" = 1 ] && echo "[consumer] kept $work" || rm -rf "$work"' EXIT

log() { echo "[consumer] $*"; }
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

log "npm pack (runs prepare: gen:bindings + build)"
(cd "$src" && quiet pack npm pack --pack-destination "$work/pack")
tarballs=("$work"/pack/*.tgz)
[ "${#tarballs[@]}" -eq 1 ] && [ -f "${tarballs[0]}" ] || fail "npm pack produced no single tarball in $work/pack"
tarball=${tarballs[0]}
log "packed $(basename "$tarball") ($(du -k "$tarball" | cut -f1) KiB)"

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

if (problems.length > 0) {
  console.error(`[consumer] the tarball is wrong:\n${[...new Set(problems)].map((p) => `  - ${p}`).join("\n")}`);
  process.exit(1);
}
console.log(`[consumer] tarball ok: ${entries.length} files, ${required.length} required ones present, none forbidden, JSON modules required by dist present: ${[...jsonModules].sort().join(", ")}`);
NODE

# --- 2. consumer project ---------------------------------------------------------------------
app="$work/app"
mkdir -p "$app/src"
log "installing the tarball and its peers into a new project at $app"
(cd "$app" && quiet init npm init -y)
(cd "$app" && quiet install npm install --no-audit --no-fund --prefer-offline \
  "$tarball" cdktf@0.21.0 "constructs@^10.4.2" "typescript@~5.9.3" "@types/node@^20")
[ -f "$app/node_modules/matrix-lxd-cdktf/dist/index.js" ] || fail "matrix-lxd-cdktf is not installed in $app/node_modules"

# --- 3. the consumer's app -------------------------------------------------------------------
cat >"$app/tsconfig.json" <<'JSON'
{
  "compilerOptions": {
    "target": "ES2022",
    "module": "commonjs",
    "lib": ["ES2022"],
    "strict": true,
    "noEmitOnError": true,
    "noUnusedLocals": true,
    "skipLibCheck": false,
    "types": ["node"],
    "rootDir": "src",
    "outDir": "dist"
  },
  "include": ["src/**/*.ts"]
}
JSON

cat >"$app/src/wiki.ts" <<'TS'
// A non-Matrix service on a host whose shared modules (ingress proxy, PostgreSQL) were
// deployed by another stack.
import { App, TerraformOutput, TerraformStack } from "cdktf";
import { Construct } from "constructs";
import {
  CertificateDomains,
  Host,
  HostProviders,
  IngressBackend,
  IngressProxy,
  IngressRoute,
  Postgres,
  PostgresDatabase,
  ServiceContainer,
  type PostgresConnection,
} from "matrix-lxd-cdktf";

class WikiStack extends TerraformStack {
  readonly connection: PostgresConnection;

  constructor(scope: Construct, id: string, lxdProvider: 1 | 3 = 3) {
    super(scope, id);
    const host = new Host({
      hostId: "myhost",
      ipv4NetworkPart: "10.10.1",
      ipv6: { prefix: "fd10:10:10:1" },
      publicIpv4: "203.0.113.10",
      lxd: { provider: lxdProvider },
    });
    new HostProviders(this, "providers", { host });
    const proxy = IngressProxy.reference(host);
    const postgres = Postgres.reference(host);

    const database = new PostgresDatabase(this, "db", { postgres, database: "wiki", owner: "wiki" });
    this.connection = database.connection;
    new ServiceContainer(this, "wiki-app", {
      host,
      name: "wiki",
      hostPart: 40,
      packages: ["nginx"],
      firewall: [{ protocol: "tcp", ports: [80], from: [proxy.address.ipv4], comment: "http from the ingress proxy" }],
      volumes: [{ name: "data", path: "/var/lib/wiki" }],
      service: { name: "wiki", port: 80 },
    });
    new CertificateDomains(this, "certs", { domains: ["wiki.example.com"], adminEmail: "admin@example.com" });
    // Not "backend": cdktf reserves that id on a stack for its Terraform backend.
    new IngressBackend(this, "wiki-backend", { service: "wiki" });
    new IngressRoute(this, "route", { name: "wiki-host", host: "wiki.example.com", action: { backend: "wiki" } });
    new TerraformOutput(this, "database_host", { value: `${this.connection.host}:${this.connection.port}` });
  }
}

const app = new App({ outdir: process.argv[2] ?? "cdktf.out" });
new WikiStack(app, "wiki");
// The same stack for a host whose LXD provider is 1.x.
new WikiStack(app, "wiki-lxd1", 1);
app.synth();
TS

cat >"$app/src/bad-props.ts" <<'TS'
// Invalid props must fail at synth time with an error that names the prop, and wrong prop
// types must fail at compile time (the @ts-expect-error lines break the build if the shipped
// declarations stop catching them).
import { App, TerraformStack } from "cdktf";
import { Host, IngressRoute, Postgres, PostgresDatabase, ServiceContainer, ValidationError } from "matrix-lxd-cdktf";

const host = new Host({ hostId: "myhost", ipv4NetworkPart: "10.10.1", publicIpv4: "203.0.113.10" });
const stack = new TerraformStack(new App({ outdir: process.argv[2] ?? "cdktf.out" }), "bad");
let failures = 0;

function expectInvalid(what: string, prop: string, value: string, build: () => void): void {
  try {
    build();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const namesProp = error instanceof ValidationError && error.problems.some((p) => p.path === prop);
    if (namesProp && message.includes(value)) {
      console.log(`[consumer] ${what} rejected as expected: ${message.split("\n").find((l) => l.includes(`${prop}:`))?.trim()}`);
      return;
    }
    console.error(`[consumer] ${what}: expected a ValidationError naming ${prop} and ${value}, got:\n${message}`);
    failures++;
    return;
  }
  console.error(`[consumer] ${what}: accepted, expected an error naming ${prop}`);
  failures++;
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

process.exit(failures === 0 ? 0 : 1);
TS

log "compiling the app with the consumer's tsc (strict, library declarations checked)"
(cd "$app" && quiet tsc ./node_modules/.bin/tsc -p tsconfig.json)

log "synthesizing into $app/cdktf.out"
(cd "$app" && quiet synth node dist/wiki.js "$app/cdktf.out")
synthesized="$app/cdktf.out/stacks/wiki/cdk.tf.json"
[ -f "$synthesized" ] || fail "synthesis wrote no $synthesized"

# --- 4. assertions ----------------------------------------------------------------------------
log "checking both synthesized stacks against the committed provider schemas"
node "$src/scripts/check-provider-schemas.js" "$synthesized" "$app/cdktf.out/stacks/wiki-lxd1/cdk.tf.json" \
  || fail "a synthesized stack does not conform to its provider schemas (see above)"
log "checking the synthesized stack"
node - "$synthesized" <<'NODE'
const fs = require("fs");
const file = process.argv[2];
const text = fs.readFileSync(file, "utf8");
const stack = JSON.parse(text);
const problems = [];
const check = (ok, message) => {
  if (!ok) problems.push(message);
};
const resources = (type) => Object.values(stack.resource?.[type] ?? {});

// The wiki container, alone: the shared modules belong to another stack.
const instances = resources("lxd_instance");
check(instances.length === 1, `expected exactly one lxd_instance (the wiki), found ${instances.map((i) => i.name).join(", ") || "none"}`);
const wiki = instances.find((i) => i.name === "wiki");
check(wiki !== undefined, "no lxd_instance named wiki");
if (wiki) {
  const nic = (wiki.device ?? []).find((d) => d.name === "eth0");
  check(nic?.properties?.["ipv4.address"] === "10.10.1.40", `wiki eth0 ipv4.address is ${nic?.properties?.["ipv4.address"]}, expected 10.10.1.40`);
  check(nic?.properties?.["ipv6.address"] === "fd10:10:10:1::1:40", `wiki eth0 ipv6.address is ${nic?.properties?.["ipv6.address"]}, expected fd10:10:10:1::1:40`);
  check(wiki.config?.["security.privileged"] === "false", "wiki container is not unprivileged");
  const userData = wiki.config?.["cloud-init.user-data"] ?? "";
  check(/ip saddr \{ 10\.10\.1\.10 \} tcp dport \{ 80 \} accept/.test(userData), "wiki firewall does not admit port 80 from the referenced ingress proxy (10.10.1.10)");
  check((wiki.device ?? []).some((d) => d.name === "data-data" && d.properties?.path === "/var/lib/wiki"), "wiki data volume is not mounted at /var/lib/wiki");
}
const volumes = resources("lxd_storage_volume");
check(volumes.some((v) => v.name === "wiki-data" && v.lifecycle?.prevent_destroy === true), "no protected lxd_storage_volume wiki-data");
const services = resources("consul_service");
check(services.some((s) => s.name === "wiki" && s.address === "10.10.1.40" && s.port === 80), "no consul_service wiki at 10.10.1.40:80");

// Consul KV: certificate, backend, route, database.
const kv = new Map();
for (const keys of resources("consul_keys")) for (const k of keys.key ?? []) kv.set(k.path, k.value);
const expectKv = {
  "service/certbot/wiki.example.com": "admin@example.com",
  "service/haproxy/backends/no-ssl/wiki": "",
  "service/haproxy/acl/wiki-host/host": "wiki.example.com",
  "service/haproxy/use-backend/wiki-host": "wiki",
  "service/postgres/databases/wiki/owner": "wiki",
  "service/postgres/databases/wiki/encoding": "UTF8",
  "service/postgres/databases/wiki/lc-collate": "C",
  "service/postgres/databases/wiki/lc-ctype": "C",
  "service/postgres/databases/wiki/template": "template0",
};
for (const [path, value] of Object.entries(expectKv)) {
  check(kv.has(path), `KV key ${path} is missing`);
  if (kv.has(path)) check(kv.get(path) === value, `KV ${path} is ${JSON.stringify(kv.get(path))}, expected ${JSON.stringify(value)}`);
}
const verifier = kv.get("service/postgres/databases/wiki/password-verifier");
check(
  typeof verifier === "string" && /^md5\$\{md5\("?\$\{random_password\.[\w-]+\.result\}/.test(verifier.replace(/\s/g, "")),
  `password-verifier should be md5 + md5(<random_password reference> + owner), got ${JSON.stringify(verifier)}`,
);

// Provider pins.
const pins = stack.terraform?.required_providers ?? {};
for (const [name, source, version] of [
  ["lxd", "terraform-lxd/lxd", "3.0.2"],
  ["consul", "hashicorp/consul", "2.23.0"],
  ["random", "hashicorp/random", "3.7.2"],
]) {
  // The source may carry the registry host in front (host/namespace/type).
  const pinned = String(pins[name]?.source ?? "").split("/").slice(-2).join("/");
  check(pins[name]?.version === version && pinned === source, `required_providers.${name} is ${JSON.stringify(pins[name])}, expected ${source} ${version}`);
}

// Secrets: generated at apply time, only referenced.
const passwords = Object.entries(stack.resource?.random_password ?? {});
check(passwords.length === 1, `expected one random_password (the database owner's), found ${passwords.length}`);
for (const [id, password] of passwords) {
  for (const literal of ["result", "bcrypt_hash", "keepers"]) check(!(literal in password), `random_password.${id} carries a ${literal} literal`);
  check(password.special === false && password.length >= 32, `random_password.${id} should be alphanumeric (special: false) and at least 32 long`);
  const refs = text.split(`random_password.${id}.result`).length - 1;
  check(refs >= 1, `random_password.${id}.result is never referenced`);
}
const walk = (value, at) => {
  if (typeof value === "string") {
    check(!/(^|[^A-Za-z0-9])[A-Za-z0-9]{32}([^A-Za-z0-9]|$)/.test(value.replace(/\$\{[^}]*\}/g, "")) || at.includes("user-data"), `a 32-character alphanumeric literal (a password?) at ${at}`);
  } else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) walk(v, `${at}.${k}`);
  }
};
walk(stack.resource, "resource");

if (problems.length > 0) {
  console.error(`[consumer] ${file} is wrong:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  process.exit(1);
}
console.log(`[consumer] stack ok: wiki container, ${kv.size} KV keys, provider pins, no secret literal`);
NODE

log "checking that invalid props are rejected, naming the prop"
(cd "$app" && node dist/bad-props.js "$work/bad.out") || fail "invalid props were not rejected as expected (see above)"

elapsed=$((($(date +%s%N) - started) / 1000000))
log "passed in $((elapsed / 1000)).$(printf '%03d' $((elapsed % 1000))) s"
