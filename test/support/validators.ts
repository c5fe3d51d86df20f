/**
 * Real validators for rendered config files, for use from jest.
 *
 * Every helper is synchronous: it writes the rendered text into a fresh temp
 * directory, runs the real tool on it, and
 *   - returns the tool's output (stdout + stderr) when the tool accepts it,
 *   - throws an Error whose message holds the tool's full output (followed by
 *     the checked document with line numbers) when the tool rejects it.
 *
 * The tools are installed by `scripts/setup-validators.sh` (Debian's haproxy,
 * nginx, cloud-init, nftables, openssl, and a Python venv with matrix-synapse);
 * a helper whose tool is missing throws "... run scripts/setup-validators.sh".
 *
 * ## Absolute paths (haproxy, nginx, nftables: `files`)
 *
 * Rendered configs name absolute paths (`crt /etc/haproxy/ssl/`,
 * `errorfile 503 /etc/haproxy/errors/503.http`, `ssl_certificate ...`). The
 * optional `files` argument maps them into the temp root `<tmp>`:
 *   1. every key of `files` must be an absolute path; its value is written to
 *      `<tmp><key>` (parent directories created). The value `SELF_SIGNED_PEM`
 *      is replaced by a self-signed certificate + its unencrypted key in one
 *      PEM (made with `openssl req -x509 -nodes` at run time), which is what an
 *      HAProxy `crt <dir>` wants (HAProxy refuses an empty crt directory).
 *   2. the rewritten prefixes are the parent directory of every key (e.g.
 *      `/etc/haproxy/ssl` for `/etc/haproxy/ssl/default.pem`) plus any
 *      `opts.mapPrefixes` (plus, for nginx, `/var/log/nginx`).
 *   3. in the config text AND in the contents of the other `files`, every
 *      occurrence of a prefix that starts a path (preceded by start of line or a
 *      character that cannot be part of a path: not `[A-Za-z0-9_./-]`) and ends
 *      at a path boundary (followed by `/`, whitespace, a quote, `,;:)]}` or
 *      end of line) is replaced by `<tmp><prefix>`. Longest prefixes win; each
 *      occurrence is rewritten once. So `crt /etc/haproxy/ssl/` and
 *      `crt /etc/haproxy/ssl` both become `crt <tmp>/etc/haproxy/ssl...`, but
 *      `/etc/haproxy/sslx` and `/opt/etc/haproxy/ssl` are left alone.
 * Paths that are not mapped stay as they are (the tool sees the real host path).
 *
 * ## Synapse (`checkSynapseConfig`)
 *
 * Synapse's loader creates directories and files (media store, signing key,
 * log config), so there the rewrite is structural and covers everything:
 * homeserver.yaml is parsed and EVERY string value that is an absolute path
 * (starts with a single `/`) becomes `<tmp><path>`; the same is done to the log
 * config before it is applied. `extraFiles` are written to `<tmp><key>`
 * verbatim (e.g. the log config at the path named by `log_config`).
 */
import { spawnSync, SpawnSyncReturns } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

/** Value for `files` entries: a self-signed cert + key PEM generated at run time. */
export const SELF_SIGNED_PEM = "@@matrix-lxd:self-signed-pem@@";

export interface PathMapOptions {
  /** Extra absolute directory prefixes to rewrite into the temp root. */
  mapPrefixes?: string[];
}

export interface HaproxyOptions extends PathMapOptions {
  /** Pass `-dr`: ignore server address resolution failures (e.g. `*.service.consul`). */
  ignoreResolutionFailures?: boolean;
  /** Pass `-dW`: fail on any warning too. */
  failOnWarnings?: boolean;
}

const REPO_ROOT = path.resolve(__dirname, "..", "..");
const SETUP_HINT = "run scripts/setup-validators.sh";
const TOOL_TIMEOUT_MS = 60_000;

export const HAPROXY_BIN = "/usr/sbin/haproxy";
export const NGINX_BIN = "/usr/sbin/nginx";
export const NFT_BIN = "/usr/sbin/nft";
export const CLOUD_INIT_BIN = "/usr/bin/cloud-init";
export const OPENSSL_BIN = "/usr/bin/openssl";

// ------------------------------------------------------------------ plumbing

function requireTool(bin: string, what: string): string {
  try {
    fs.accessSync(bin, fs.constants.X_OK);
  } catch {
    throw new Error(`${what} not found at ${bin}: ${SETUP_HINT}`);
  }
  return bin;
}

function withTempRoot<T>(fn: (root: string) => T): T {
  // realpath: os.tmpdir() may be a symlink; tools print resolved paths.
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "matrix-lxd-validate-")));
  try {
    return fn(root);
  } finally {
    if (!process.env.MATRIX_LXD_KEEP_VALIDATOR_TMP) {
      fs.rmSync(root, { recursive: true, force: true });
    }
  }
}

function numbered(text: string): string {
  const lines = text.split("\n");
  const width = String(lines.length).length;
  return lines.map((l, i) => `${String(i + 1).padStart(width)}| ${l}`).join("\n");
}

function outputOf(r: SpawnSyncReturns<string>): string {
  const out = r.stdout ?? "";
  const err = r.stderr ?? "";
  return out && err && !out.endsWith("\n") ? `${out}\n${err}` : out + err;
}

/** Runs a tool; returns its output or throws with the full output + the document. */
function run(
  label: string,
  bin: string,
  args: string[],
  document: { name: string; text: string },
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): string {
  const r = spawnSync(bin, args, {
    encoding: "utf8",
    timeout: TOOL_TIMEOUT_MS,
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) {
    throw new Error(`${label}: could not run ${bin} ${args.join(" ")}: ${r.error.message} (${SETUP_HINT})`);
  }
  const out = outputOf(r);
  if (r.status !== 0) {
    const how = r.status === null ? `signal ${r.signal}` : `exit ${r.status}`;
    throw new Error(
      `${label} rejected ${document.name} (${how}) — ${bin} ${args.join(" ")}\n` +
        `----- tool output -----\n${out}\n` +
        `----- ${document.name} -----\n${numbered(document.text)}`,
    );
  }
  return out;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function normalizePrefix(p: string): string {
  if (!path.isAbsolute(p)) throw new Error(`path prefix must be absolute: ${p}`);
  const n = path.posix.normalize(p).replace(/\/+$/, "");
  if (n === "") throw new Error("cannot map the filesystem root '/'");
  return n;
}

/**
 * Rewrites every path-starting occurrence of the given absolute prefixes in
 * `text` to `<root><prefix>` (see the comment at the top of this file).
 */
export function rewriteAbsolutePaths(text: string, prefixes: Iterable<string>, root: string): string {
  const list = [...new Set([...prefixes].map(normalizePrefix))].sort((a, b) => b.length - a.length);
  if (list.length === 0) return text;
  const re = new RegExp(
    `(^|[^A-Za-z0-9_./-])(${list.map(escapeRegExp).join("|")})(?=$|[/\\s"'\`,;:)\\]}])`,
    "gm",
  );
  return text.replace(re, (_m, before: string, prefix: string) => `${before}${root}${prefix}`);
}

let cachedPem: string | undefined;

/** A self-signed certificate followed by its unencrypted private key (one PEM), for `localhost`. */
export function selfSignedPem(): string {
  if (cachedPem !== undefined) return cachedPem;
  const { certificate, key } = selfSignedCertificate("localhost");
  cachedPem = certificate + key;
  return cachedPem;
}

/** A new self-signed P-256 certificate for `commonName` (also its DNS subjectAltName) and its unencrypted key. */
export function selfSignedCertificate(commonName: string): { certificate: string; key: string } {
  requireTool(OPENSSL_BIN, "openssl");
  return withTempRoot((dir) => {
    const key = path.join(dir, "key.pem");
    const crt = path.join(dir, "crt.pem");
    run(
      "openssl",
      OPENSSL_BIN,
      [
        "req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", key, "-out", crt, "-days", "3650", "-subj", `/CN=${commonName}`,
        "-addext", `subjectAltName=DNS:${commonName}`,
      ],
      { name: "(self-signed certificate request)", text: "" },
    );
    return { certificate: fs.readFileSync(crt, "utf8"), key: fs.readFileSync(key, "utf8") };
  });
}

/** Writes `files` under root (rewriting their text) and returns the prefixes to map. */
function materializeFiles(
  root: string,
  files: Record<string, string> | undefined,
  extraPrefixes: string[],
): string[] {
  const entries = Object.entries(files ?? {});
  const prefixes = [...extraPrefixes];
  for (const [abs] of entries) {
    if (!path.isAbsolute(abs)) throw new Error(`files: key must be an absolute path: ${abs}`);
    prefixes.push(path.posix.dirname(path.posix.normalize(abs)));
  }
  const usable = prefixes.filter((p) => normalizePrefix(p) !== "");
  for (const [abs, content] of entries) {
    const target = path.join(root, abs);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const text = content === SELF_SIGNED_PEM ? selfSignedPem() : rewriteAbsolutePaths(content, usable, root);
    fs.writeFileSync(target, text, { mode: 0o600 });
  }
  return usable;
}

// ------------------------------------------------------------------ cloud-init

/**
 * `cloud-init schema --config-file <tmp>/user-data` (cloud-init 22.4 on Debian 12).
 * The document must start with `#cloud-config`. Note: this cloud-init's schema
 * allows unknown top-level keys (it only type-checks the keys it knows).
 */
export function checkCloudInit(userData: string): string {
  const bin = requireTool(CLOUD_INIT_BIN, "cloud-init");
  return withTempRoot((root) => {
    const file = path.join(root, "user-data");
    fs.writeFileSync(file, userData);
    return run("cloud-init schema", bin, ["schema", "--config-file", file], { name: "user-data", text: userData });
  });
}

/**
 * The script cloud-init makes of the user-data's `runcmd` (its runcmd module writes
 * `cloudinit.util.shellify(runcmd)` to a file that scripts-user then executes), made by
 * cloud-init's own code, run by the python in /usr/bin/cloud-init's `#!` line.
 */
export function cloudInitRuncmdScript(userData: string): string {
  const bin = requireTool(CLOUD_INIT_BIN, "cloud-init");
  const m = /^#!\s*(\S+)/.exec(fs.readFileSync(bin, "utf8").split("\n")[0]);
  if (!m) throw new Error(`no #! line in ${bin}: ${SETUP_HINT}`);
  const python = requireTool(m[1], "cloud-init's python");
  const code = [
    "import sys, yaml",
    "from cloudinit import util",
    "doc = yaml.safe_load(sys.stdin.read())",
    "sys.stdout.write(util.shellify(doc.get('runcmd') or []))",
  ].join("\n");
  const r = spawnSync(python, ["-c", code], { input: userData, encoding: "utf8", timeout: TOOL_TIMEOUT_MS });
  if (r.error || r.status !== 0) throw new Error(`cloudinit.util.shellify failed: ${r.error?.message ?? outputOf(r)}`);
  return r.stdout;
}

// ------------------------------------------------------------------ haproxy

/**
 * `haproxy -c -f <tmp>/haproxy.cfg`, with `files` mapped into the temp root
 * (see the top of this file), e.g.
 *   checkHaproxy(cfg, { "/etc/haproxy/ssl/default.pem": SELF_SIGNED_PEM,
 *                       "/etc/haproxy/errors/503.http": "HTTP/1.0 503 ...\r\n\r\n" })
 * Note: haproxy resolves server host names while checking; use
 * `ignoreResolutionFailures` (-dr) or `init-addr` for names only DNS at deploy time knows.
 */
export function checkHaproxy(config: string, files?: Record<string, string>, opts: HaproxyOptions = {}): string {
  const bin = requireTool(HAPROXY_BIN, "haproxy");
  return withTempRoot((root) => {
    const prefixes = materializeFiles(root, files, opts.mapPrefixes ?? []);
    const text = rewriteAbsolutePaths(config, prefixes, root);
    const file = path.join(root, "haproxy.cfg");
    fs.writeFileSync(file, text);
    const args = ["-c", "-f", file];
    if (opts.ignoreResolutionFailures) args.push("-dr");
    if (opts.failOnWarnings) args.push("-dW");
    return run("haproxy -c", bin, args, { name: "haproxy.cfg", text });
  });
}

// ------------------------------------------------------------------ nginx

/**
 * Wraps `site` (one or more `server { ... }` blocks, or anything valid in the
 * `http {}` context) into a minimal nginx.conf whose pid, logs and temp paths
 * are in the temp dir, then runs `nginx -t -e <tmp>/error.log -c <tmp>/nginx.conf -p <tmp>/`.
 * `/var/log/nginx` is always mapped into the temp root; `files` as for haproxy.
 * Note: nginx resolves `proxy_pass` host names while testing.
 */
export function checkNginxSite(site: string, files?: Record<string, string>, opts: PathMapOptions = {}): string {
  const bin = requireTool(NGINX_BIN, "nginx");
  return withTempRoot((root) => {
    const prefixes = materializeFiles(root, files, ["/var/log/nginx", ...(opts.mapPrefixes ?? [])]);
    fs.mkdirSync(path.join(root, "var/log/nginx"), { recursive: true });
    const siteText = rewriteAbsolutePaths(site, prefixes, root);
    const mime = fs.existsSync("/etc/nginx/mime.types") ? "  include /etc/nginx/mime.types;\n" : "";
    const conf =
      `pid ${root}/nginx.pid;\n` +
      `error_log ${root}/error.log;\n` +
      `events {}\n` +
      `http {\n` +
      mime +
      `  default_type application/octet-stream;\n` +
      `  access_log ${root}/access.log;\n` +
      `  client_body_temp_path ${root}/client_body;\n` +
      `  proxy_temp_path ${root}/proxy;\n` +
      `  fastcgi_temp_path ${root}/fastcgi;\n` +
      `  uwsgi_temp_path ${root}/uwsgi;\n` +
      `  scgi_temp_path ${root}/scgi;\n` +
      `  # ---- site ----\n` +
      `${siteText}\n` +
      `}\n`;
    const file = path.join(root, "nginx.conf");
    fs.writeFileSync(file, conf);
    return run("nginx -t", bin, ["-t", "-e", path.join(root, "error.log"), "-c", file, "-p", `${root}/`], {
      name: "nginx.conf",
      text: conf,
    });
  });
}

// ------------------------------------------------------------------ nftables

/**
 * `nft -c -f <tmp>/ruleset.nft`: the kernel checks the whole batch without
 * committing it (needs root / CAP_NET_ADMIN; the host's ruleset is untouched,
 * even with `flush ruleset`). `iif <name>` needs the interface to exist here;
 * `iifname` does not. `files` (e.g. for `include`) as for haproxy.
 */
export function checkNftables(ruleset: string, files?: Record<string, string>, opts: PathMapOptions = {}): string {
  const bin = requireTool(NFT_BIN, "nft");
  return withTempRoot((root) => {
    const prefixes = materializeFiles(root, files, opts.mapPrefixes ?? []);
    const text = rewriteAbsolutePaths(ruleset, prefixes, root);
    const file = path.join(root, "ruleset.nft");
    fs.writeFileSync(file, text);
    return run("nft -c", bin, ["-c", "-f", file], { name: "ruleset.nft", text });
  });
}

// ------------------------------------------------------------------ synapse

/** The matrix-synapse version pinned in scripts/setup-validators.sh. */
export function synapseVersion(): string {
  const script = fs.readFileSync(path.join(REPO_ROOT, "scripts", "setup-validators.sh"), "utf8");
  const m = /^SYNAPSE_VERSION="([^"]+)"/m.exec(script);
  if (!m) throw new Error("SYNAPSE_VERSION not found in scripts/setup-validators.sh");
  return m[1];
}

/** Path of the venv made by scripts/setup-validators.sh (override: MATRIX_LXD_SYNAPSE_VENV). */
export function synapseVenv(): string {
  if (process.env.MATRIX_LXD_SYNAPSE_VENV) return process.env.MATRIX_LXD_SYNAPSE_VENV;
  const cache = process.env.MATRIX_LXD_CACHE || path.join(os.homedir(), ".cache", "matrix-lxd");
  return path.join(cache, `synapse-venv-${synapseVersion()}-url-preview`);
}

// Loads the config exactly as `python -m synapse.app.homeserver -c FILE` does
// before it starts (HomeServerConfig.load_or_generate_config: generates missing
// signing key / log config, parses every section, validate_config()), then also
// applies the log config (dictConfig, as setup_logging does; the directories of
// handler `filename`s are created first, as packaging would) and creates the
// database engines (imports psycopg2; no connection is made).
const SYNAPSE_CHECK_PY = String.raw`
import logging.config, os, sys, yaml

root, src = sys.argv[1], sys.argv[2]
confd_src = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] != "-" else None

def rw(v):
    if isinstance(v, str) and v.startswith("/") and not v.startswith("//") \
            and v != root and not v.startswith(root + "/"):
        return root + v
    if isinstance(v, list):
        return [rw(x) for x in v]
    if isinstance(v, dict):
        return {k: rw(x) for k, x in v.items()}
    return v

with open(src) as f:
    raw = yaml.safe_load(f)
conf_path = os.path.join(root, "homeserver.yaml")
with open(conf_path, "w") as f:
    yaml.safe_dump(rw(raw), f, sort_keys=False)
config_args = ["-c", conf_path]
# conf.d fragments, read after homeserver.yaml as --config-path <dir>/ reads them (sorted by name).
if confd_src:
    confd = os.path.join(root, "conf.d")
    os.makedirs(confd)
    for name in sorted(os.listdir(confd_src)):
        with open(os.path.join(confd_src, name)) as f:
            fragment = yaml.safe_load(f)
        with open(os.path.join(confd, name), "w") as f:
            yaml.safe_dump(rw(fragment), f, sort_keys=False)
    config_args += ["-c", confd + "/"]

# Directories that packaging / provisioning create on a real host (Synapse
# writes a missing signing key or log config into them, but won't mkdir).
if isinstance(raw, dict):
    for key in ("log_config", "signing_key_path", "pid_file"):
        v = rw(raw.get(key))
        if isinstance(v, str) and v.startswith(root + "/"):
            os.makedirs(os.path.dirname(v), exist_ok=True)

os.chdir(root)
import synapse
from synapse.config._base import ConfigError, format_config_error
from synapse.config.homeserver import HomeServerConfig

try:
    config = HomeServerConfig.load_or_generate_config("Synapse Homeserver", config_args)
except ConfigError as e:
    sys.stderr.write("\n")
    for line in format_config_error(e):
        sys.stderr.write(line)
    sys.stderr.write("\n")
    sys.exit(1)
if config is None:
    sys.exit("load_or_generate_config returned no config")

log_config = config.logging.log_config
if log_config:
    with open(log_config, "rb") as f:
        lc = yaml.safe_load(f.read())
    if not isinstance(lc, dict):
        sys.exit("log config %s does not parse into a mapping" % log_config)
    if lc.get("structured"):
        sys.exit("log config %s uses the removed structured logging format" % log_config)
    lc = rw(lc)
    # Log directories are made by packaging / provisioning, not by Synapse.
    for h in (lc.get("handlers") or {}).values():
        if isinstance(h, dict) and isinstance(h.get("filename"), str):
            os.makedirs(os.path.dirname(h["filename"]), exist_ok=True)
    logging.config.dictConfig(lc)

from synapse.storage.engines import create_engine
engines = []
for db in config.database.databases:
    create_engine(db.config)
    engines.append(db.config["name"])

print("synapse %s: config OK (server_name=%s, listeners=%d, databases=%s)" % (
    synapse.__version__, config.server.server_name, len(config.server.listeners), ",".join(engines)))
# Which secret settings the loaded configuration holds (names only, never values).
secrets = {
    "registration_shared_secret": config.registration.registration_shared_secret,
    "macaroon_secret_key": config.key.macaroon_secret_key,
    "form_secret": config.key.form_secret,
    "turn_shared_secret": config.voip.turn_shared_secret,
    "password_pepper": config.auth.password_pepper,
    "smtp_pass": getattr(config.email, "email_smtp_pass", None),
}
print("secrets set: %s" % " ".join(sorted(k for k, v in secrets.items() if v)))

# Optional probes: which addresses Synapse's own checks refuse (outbound requests and URL
# previews) and which URLs its URL-preview pattern blocklist refuses.
if len(sys.argv) > 4:
    import json, types
    from netaddr import IPAddress
    from synapse.http.client import _is_ip_blocked
    from synapse.media.url_previewer import UrlPreviewer
    with open(sys.argv[4]) as f:
        probes = json.load(f)
    previewer = types.SimpleNamespace(url_preview_url_blocklist=config.media.url_preview_url_blocklist)
    result = {
        "outbound": {ip: _is_ip_blocked(IPAddress(ip), config.server.ip_range_allowlist, config.server.ip_range_blocklist) for ip in probes["ips"]},
        "preview": {ip: _is_ip_blocked(IPAddress(ip), config.media.url_preview_ip_range_allowlist, config.media.url_preview_ip_range_blocklist) for ip in probes["ips"]},
        "urls": {url: UrlPreviewer._is_url_blocked(previewer, url) for url in probes["urls"]},
    }
    print("PROBES " + json.dumps(result))
`;

export interface SynapseProbes {
  /** IP addresses to test against the outbound and URL-preview address blocklists. */
  readonly ips: readonly string[];
  /** URLs to test against the URL-preview pattern blocklist. */
  readonly urls: readonly string[];
}

export interface SynapseProbeResult {
  /** Refused for federation, push and identity-server requests (`ip_range_blacklist`). */
  readonly outbound: Record<string, boolean>;
  /** Refused for URL previews (`url_preview_ip_range_blacklist`). */
  readonly preview: Record<string, boolean>;
  /** Refused by `url_preview_url_blacklist`. */
  readonly urls: Record<string, boolean>;
}

/** Loads homeserver.yaml as checkSynapseConfig does and asks Synapse's own code what it blocks. */
export function probeSynapseBlocklists(homeserverYaml: string, probes: SynapseProbes, extraFiles?: Record<string, string>, confD?: Record<string, string>): SynapseProbeResult {
  const out = checkSynapseConfig(homeserverYaml, extraFiles, confD, probes);
  const line = out.split("\n").find((l) => l.startsWith("PROBES "));
  if (!line) throw new Error(`the Synapse probe printed no result:\n${out}`);
  return JSON.parse(line.slice("PROBES ".length)) as SynapseProbeResult;
}

/**
 * Loads homeserver.yaml with Synapse's own config loader in the venv made by
 * scripts/setup-validators.sh. Every absolute path in it is moved into the temp
 * root (see the top of this file); `extraFiles` (e.g. the log config, an
 * appservice registration, a pre-made signing key) are written to
 * `<tmp><key>`. A missing signing key / log config is generated, as Synapse
 * does at startup (the directories of log_config, signing_key_path and
 * pid_file are created first, as packaging would).
 */
export function checkSynapseConfig(homeserverYaml: string, extraFiles?: Record<string, string>, confD?: Record<string, string>, probes?: SynapseProbes): string {
  const venv = synapseVenv();
  const python = requireTool(path.join(venv, "bin", "python"), `Synapse venv python (${venv})`);
  if (!fs.existsSync(path.join(venv, ".matrix-lxd-ready"))) {
    throw new Error(`Synapse venv ${venv} is incomplete: ${SETUP_HINT}`);
  }
  return withTempRoot((root) => {
    for (const [abs, content] of Object.entries(extraFiles ?? {})) {
      if (!path.isAbsolute(abs)) throw new Error(`extraFiles: key must be an absolute path: ${abs}`);
      const target = path.join(root, abs);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.writeFileSync(target, content === SELF_SIGNED_PEM ? selfSignedPem() : content, { mode: 0o600 });
    }
    const input = path.join(root, "homeserver.input.yaml");
    fs.writeFileSync(input, homeserverYaml);
    const env: NodeJS.ProcessEnv = { ...process.env, PYTHONDONTWRITEBYTECODE: "1" };
    delete env.PYTHONPATH;
    delete env.PYTHONHOME;
    const script = path.join(root, "check-synapse-config.py");
    fs.writeFileSync(script, SYNAPSE_CHECK_PY);
    const confDArgs: string[] = ["-"];
    if (confD) {
      const dir = path.join(root, "conf.d.input");
      fs.mkdirSync(dir);
      for (const [name, content] of Object.entries(confD)) fs.writeFileSync(path.join(dir, name), content, { mode: 0o600 });
      confDArgs[0] = dir;
    }
    if (probes) {
      confDArgs.push(path.join(root, "probes.json"));
      fs.writeFileSync(confDArgs[1], JSON.stringify(probes));
    }
    return run("synapse config loader", python, [script, root, input, ...confDArgs], {
      name: "homeserver.yaml",
      text: homeserverYaml,
    }, { cwd: root, env });
  });
}
