#!/usr/bin/env bash
# Installs the toolchain the deploy tests need, with versions from versions.json, and checks
# that Terraform can install the providers:
#   1. a Terraform CLI: `terraform` on PATH if >= terraform.minimum, else OpenTofu
#      (`go install …/cmd/tofu@<opentofuFallback>`) into the cache;
#   2. a Consul agent (Debian bullseye's `consul`, pinned so only it comes from bullseye);
#   3. LXD (Debian's `lxd`, plus `iptables`). The daemon is not started or configured.
# Providers are not built or installed here: installing them is Terraform's job, from the
# registry on a normal machine, or from a filesystem mirror that a Terraform CLI
# configuration named by TF_CLI_CONFIG_FILE points at. This script only reports, per provider
# version in versions.json, whether `terraform init` can install it.
#
# Usage:
#   scripts/toolchain.sh                  the steps above, then the provider report
#   scripts/toolchain.sh providers [--lxd-major 1|3|all]
#       only checks that `terraform init` can install the providers (default: all); exits 3
#       naming every one it cannot install. Scripts that need providers run this first.
#   scripts/toolchain.sh schemas [--out DIR]
#       dumps `providers schema -json` of every provider version in versions.json into DIR
#       (default: <repo>/schemas) as <provider>-<version>.json; needs all of them installable.
#   scripts/toolchain.sh test-tools
#       only a Terraform CLI (its path in <cache>/terraform-cli), the Consul agent and
#       consul-template (into <cache>/bin), which the unit tests use to validate
#       provider-free Terraform and render consul-template templates for real; no providers.
#   scripts/toolchain.sh host-tools
#       only what scripts/host.sh and scripts/images.sh need to make this machine an
#       LXD + Consul host and build images: the Consul agent, LXD plus nftables (the host's
#       outbound guard), debootstrap and zstd (image builds). Nothing is started.
#
# Everything is cached outside the work tree, keyed by version, in
#   ${MATRIX_LXD_CACHE:-$HOME/.cache/matrix-lxd}
# (downloaded providers in <cache>/plugin-cache). A second run only checks paths and takes
# seconds. apt-get update runs at most once, and only when a Debian package must be installed.
#
# At the end it prints, and writes to <cache>/toolchain.env (for `source`):
#   export TERRAFORM_BINARY_NAME=terraform|tofu
#   export MATRIX_LXD_TERRAFORM=<absolute path of that binary>
#   export CHECKPOINT_DISABLE=1
#   export MATRIX_LXD_CONSUL=<absolute path of consul>
#   export TF_CLI_CONFIG_FILE=<as given>   (only when it was set)
#
# Exit status: 0 when everything is in place; 3 when `providers`/`schemas` find a provider
# that terraform init cannot install; any other failure exits non-zero at once.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSIONS="$ROOT/versions.json"
CACHE="${MATRIX_LXD_CACHE:-$HOME/.cache/matrix-lxd}"
ENVFILE="$CACHE/toolchain.env"

log() { echo "[toolchain] $*"; }
die() { echo "[toolchain] ERROR: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }
elapsed() { local ms=$(( $(now_ms) - $1 )); printf '%d.%01ds' $((ms / 1000)) $(((ms % 1000) / 100)); }

# ------------------------------------------------------------------ arguments
CMD=build
OUT_DIR="$ROOT/schemas"
LXD_MAJOR=all
while [ $# -gt 0 ]; do
  case "$1" in
    build) CMD=build ;;
    providers) CMD=providers ;;
    schemas) CMD=schemas ;;
    test-tools) CMD=test-tools ;;
    host-tools) CMD=host-tools ;;
    --out) [ $# -ge 2 ] || die "--out needs a directory"; OUT_DIR="$2"; shift ;;
    --out=*) OUT_DIR="${1#--out=}" ;;
    --lxd-major) [ $# -ge 2 ] || die "--lxd-major needs 1, 3 or all"; LXD_MAJOR="$2"; shift ;;
    --lxd-major=*) LXD_MAJOR="${1#--lxd-major=}" ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done

T_START=$(now_ms)
command -v python3 >/dev/null 2>&1 || die "python3 is needed (it reads versions.json)"
[ -f "$VERSIONS" ] || die "missing $VERSIONS"
mkdir -p "$CACHE"

# One run at a time per cache dir.
exec 9>"$CACHE/.toolchain.lock"
if command -v flock >/dev/null 2>&1; then
  flock -w 1800 9 || die "another toolchain.sh run holds $CACHE/.toolchain.lock"
fi

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

# Keep Terraform off the network and away from any CLI config the environment names.
export CHECKPOINT_DISABLE=1

# versions.json → shell variables.
case "$LXD_MAJOR" in 1|3|all) ;; *) die "--lxd-major must be 1, 3 or all, got '$LXD_MAJOR'" ;; esac
eval "$(python3 - "$VERSIONS" "$LXD_MAJOR" <<'PY'
import json, shlex, sys
v = json.load(open(sys.argv[1]))
q = shlex.quote
print("TF_MINIMUM=%s" % q(v["terraform"]["minimum"]))
print("TOFU_VERSION=%s" % q(v["terraform"]["opentofuFallback"]))
print("CONSUL_AGENT_VERSION=%s" % q(v.get("consulAgent", "1.8.7")))
print("CONSUL_TEMPLATE_VERSION=%s" % q(v["consulTemplate"]["version"]))
# One line per provider version: <local name> <source> <version> <major>, LXD filtered by --lxd-major.
want = sys.argv[2]
pins = []
for name, p in v["providers"].items():
    for major, version in sorted(p["versions"].items(), key=lambda kv: -int(kv[0])):
        if name == "lxd" and want != "all" and major != want:
            continue
        pins.append("%s %s %s %s" % (name, p["source"], version, major))
print("PROVIDER_PINS=(%s)" % " ".join(q(x) for x in pins))
PY
)"

# ------------------------------------------------------------------ helpers
version_ge() { # version_ge A B: A >= B (dotted numbers, leading v ignored)
  python3 - "$1" "$2" <<'PY'
import re, sys
def key(s): return [int(x) for x in re.findall(r"\d+", s.lstrip("v").split("-")[0])]
sys.exit(0 if key(sys.argv[1]) >= key(sys.argv[2]) else 1)
PY
}

APT_UPDATED=0
apt_update_once() {
  if [ "$APT_UPDATED" = 0 ]; then
    local t; t=$(now_ms)
    log "apt-get update"
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
    APT_UPDATED=1
    log "apt-get update done ($(elapsed "$t"))"
  fi
}

apt_install() { # apt_install PKG...  (service starts blocked while it runs)
  local t own_policy=0; t=$(now_ms)
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  log "apt-get install $*"
  local rc=0
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" >/dev/null || rc=$?
  if [ "$own_policy" = 1 ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
  [ "$rc" = 0 ] || die "apt-get install $* failed (exit $rc)"
  log "apt-get install $* done ($(elapsed "$t"))"
}

dpkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

# ------------------------------------------------------------------ 1. Terraform CLI
TF_NAME=""
TF_BIN=""
tf_version_of() { # prints the version a terraform/tofu binary reports
  TF_CLI_CONFIG_FILE=/dev/null "$1" version -json 2>/dev/null \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["terraform_version"])' 2>/dev/null || true
}

step_cli() {
  local t; t=$(now_ms)
  local sys_tf; sys_tf="$(command -v terraform || true)"
  if [ -z "${MATRIX_LXD_FORCE_TOFU:-}" ] && [ -n "$sys_tf" ]; then
    local v; v="$(tf_version_of "$sys_tf")"
    if [ -n "$v" ] && version_ge "$v" "$TF_MINIMUM"; then
      TF_NAME=terraform; TF_BIN="$sys_tf"
      log "terraform CLI: terraform $v (>= $TF_MINIMUM) at $TF_BIN"
      return
    fi
    log "terraform on PATH is ${v:-unreadable}, older than $TF_MINIMUM: using OpenTofu $TOFU_VERSION"
  fi
  local dir="$CACHE/opentofu-$TOFU_VERSION/bin"
  TF_NAME=tofu; TF_BIN="$dir/tofu"
  if [ -x "$TF_BIN" ] && [ "$(tf_version_of "$TF_BIN")" = "${TOFU_VERSION#v}" ]; then
    log "terraform CLI: tofu $(tf_version_of "$TF_BIN") at $TF_BIN (cached)"
    return
  fi
  command -v go >/dev/null 2>&1 || die "no Terraform >= $TF_MINIMUM on PATH and no Go toolchain to build OpenTofu"
  log "building OpenTofu $TOFU_VERSION (go install …/cmd/tofu@$TOFU_VERSION) …"
  mkdir -p "$dir"
  # version.dev=no is what OpenTofu's release builds set: without it the binary says "<v>-dev".
  GOBIN="$dir" go install -trimpath -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" \
    "github.com/opentofu/opentofu/cmd/tofu@$TOFU_VERSION" \
    || die "go install of OpenTofu $TOFU_VERSION failed"
  log "terraform CLI: tofu $(tf_version_of "$TF_BIN") at $TF_BIN (built in $(elapsed "$t"))"
}

# ------------------------------------------------------------------ providers (check only)
MISSING_PROVIDERS=()
PLUGIN_CACHE="$CACHE/plugin-cache"

# check_provider NAME SOURCE VERSION: can `terraform init` install exactly this version?
check_provider() {
  local name="$1" source="$2" version="$3" t work rc=0; t=$(now_ms)
  work="$(mktemp -d)"
  printf '{"terraform": {"required_providers": {"%s": {"source": "%s", "version": "= %s"}}}}\n' "$name" "$source" "$version" >"$work/main.tf.json"
  mkdir -p "$PLUGIN_CACHE"
  (cd "$work" && TF_PLUGIN_CACHE_DIR="$PLUGIN_CACHE" TF_IN_AUTOMATION=1 "$TF_BIN" init -backend=false -input=false -no-color >"$work/init.log" 2>&1) || rc=$?
  if [ "$rc" = 0 ]; then
    log "provider $source $version: installable ($(elapsed "$t"))"
  else
    # Terraform's error paragraph: "Error: …", a blank line, then the reason.
    local why; why="$(sed 's/^│ \{0,1\}//' "$work/init.log" | awk '/^Error:/{on=1} on&&/^$/{n++} on&&n<2' | grep -v '^$' | tr '\n' ' ' | cut -c1-400)"
    log "provider $source $version: NOT installable by $TF_NAME init: ${why:-see $TF_NAME init output}"
    MISSING_PROVIDERS+=("$source $version")
  fi
  rm -rf "$work"
}

step_providers() {
  local pin
  if [ -n "${TF_CLI_CONFIG_FILE:-}" ]; then
    [ -f "$TF_CLI_CONFIG_FILE" ] || die "TF_CLI_CONFIG_FILE names $TF_CLI_CONFIG_FILE, which does not exist"
    log "providers: installing through the CLI configuration $TF_CLI_CONFIG_FILE"
  else
    log "providers: installing from the registry (no TF_CLI_CONFIG_FILE)"
  fi
  for pin in "${PROVIDER_PINS[@]}"; do
    # shellcheck disable=SC2086
    check_provider $pin
  done
}

# Stops with exactly what is missing and how to provide it.
require_providers() {
  [ "${#MISSING_PROVIDERS[@]}" -gt 0 ] || return 0
  {
    echo "[toolchain] ERROR: $TF_NAME init cannot install these providers:"
    printf '[toolchain]   - %s\n' "${MISSING_PROVIDERS[@]}"
    echo "[toolchain] Provide them the way Terraform installs providers: from the registry on a machine that"
    echo "[toolchain] reaches it, or from a filesystem mirror named in a Terraform CLI configuration:"
    echo "[toolchain]   export TF_CLI_CONFIG_FILE=/path/to/terraformrc   (currently: ${TF_CLI_CONFIG_FILE:-not set})"
    echo "[toolchain] LXD provider 3.x cannot be built from the Go module proxy; with 1.9.1 only, pass --lxd-major 1"
    echo "[toolchain] and set host.lxd.provider: 1 in the configuration."
  } >&2
  exit 3
}

# ------------------------------------------------------------------ 2. Consul agent
CONSUL_BIN=""
consul_version_of() { "$1" version 2>/dev/null | sed -n 's/^Consul v\([0-9.]*\).*/\1/p' | head -n1; }

# Prints "URI<TAB>SIGNED_BY" of the machine's main Debian mirror (the entry whose suite
# is this release's codename), and "HAS_BULLSEYE<TAB>1" if some source already has
# bullseye main on that URI.
debian_mirror() {
  python3 - <<'PY'
import glob, os, re
codename = ""
for line in open("/etc/os-release"):
    if line.startswith("VERSION_CODENAME="):
        codename = line.split("=", 1)[1].strip().strip('"')
entries = []  # (uri, suites, components, signed_by)
files = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list"))
for f in files:
    if not os.path.isfile(f):
        continue
    for line in open(f):
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*)$", line)
        if m:
            opts = m.group(1) or ""
            sb = re.search(r"signed-by=(\S+?)\]?(\s|$)", opts)
            entries.append((m.group(2), [m.group(3)], m.group(4).split(), sb.group(1) if sb else ""))
for f in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for para in re.split(r"\n\s*\n", open(f).read()):
        fields = {}
        for line in para.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            k, v = line.split(":", 1)
            fields[k.strip().lower()] = v.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            entries.append((uri, fields.get("suites", "").split(), fields.get("components", "").split(),
                            fields.get("signed-by", "")))
main = [e for e in entries if codename and codename in e[1] and "main" in e[2]]
if not main:
    raise SystemExit("no apt source with suite %r and component main" % codename)
uri, _, _, signed_by = main[0]
print("%s\t%s" % (uri, signed_by if signed_by.startswith("/") else ""))
norm = lambda u: u.rstrip("/")
if any(norm(e[0]) == norm(uri) and "bullseye" in e[1] and "main" in e[2] for e in entries):
    print("HAS_BULLSEYE\t1")
PY
}

CONSUL_NEEDED=0
plan_consul() {
  local c; c="$(command -v consul || true)"
  for cand in "$c" /usr/bin/consul; do
    [ -n "$cand" ] && [ -x "$cand" ] || continue
    if [ "$(consul_version_of "$cand")" = "$CONSUL_AGENT_VERSION" ]; then
      CONSUL_BIN="$cand"
      log "consul agent: $CONSUL_AGENT_VERSION at $CONSUL_BIN"
      return
    fi
  done
  CONSUL_NEEDED=1
  local out; out="$(debian_mirror)" || die "cannot find the machine's Debian mirror in /etc/apt"
  local uri signed_by has
  uri="$(printf '%s\n' "$out" | sed -n 1p | cut -f1)"
  signed_by="$(printf '%s\n' "$out" | sed -n 1p | cut -f2)"
  has="$(printf '%s\n' "$out" | grep -c '^HAS_BULLSEYE' || true)"
  local src=/etc/apt/sources.list.d/matrix-lxd-bullseye.sources
  if [ "$has" = 0 ]; then
    {
      printf 'Types: deb\nURIs: %s\nSuites: bullseye\nComponents: main\n' "$uri"
      [ -z "$signed_by" ] || printf 'Signed-By: %s\n' "$signed_by"
    } | $SUDO tee "$src" >/dev/null
    log "consul agent: added apt source $src (bullseye on $uri)"
  else
    log "consul agent: an apt source for bullseye on $uri is already configured"
  fi
  local pref=/etc/apt/preferences.d/matrix-lxd-bullseye
  local want
  want="$(printf 'Package: consul\nPin: release n=bullseye\nPin-Priority: 500\n\nPackage: *\nPin: release n=bullseye\nPin-Priority: -1\n')"
  if [ ! -f "$pref" ] || [ "$(cat "$pref")" != "$want" ]; then
    printf '%s\n' "$want" | $SUDO tee "$pref" >/dev/null
    log "consul agent: pinned bullseye to consul only ($pref)"
  fi
}

install_consul() {
  [ "$CONSUL_NEEDED" = 1 ] || return 0
  apt_update_once
  local cand
  cand="$(apt-cache policy consul | sed -n 's/^ *Candidate: //p')"
  case "$cand" in
    "$CONSUL_AGENT_VERSION"*) ;;
    *) die "apt offers consul '${cand:-none}', not $CONSUL_AGENT_VERSION" ;;
  esac
  apt_install --no-install-recommends "consul=$cand"
  # The Debian package enables a unit; the tests run their own agent.
  if command -v systemctl >/dev/null 2>&1; then
    if [ -d /run/systemd/system ]; then $SUDO systemctl stop consul.service >/dev/null 2>&1 || true; fi
    $SUDO systemctl disable consul.service >/dev/null 2>&1 || true
  fi
  CONSUL_BIN=/usr/bin/consul
  [ "$(consul_version_of "$CONSUL_BIN")" = "$CONSUL_AGENT_VERSION" ] \
    || die "$CONSUL_BIN does not report Consul v$CONSUL_AGENT_VERSION"
  log "consul agent: $CONSUL_AGENT_VERSION installed at $CONSUL_BIN"
}

# ------------------------------------------------------------------ 3. LXD
LXD_PKGS=()
plan_lxd() { # plan_lxd [EXTRA_PACKAGE...]
  local p
  for p in lxd iptables "$@"; do dpkg_installed "$p" || LXD_PKGS+=("$p"); done
  if [ "${#LXD_PKGS[@]}" = 0 ]; then
    log "lxd: installed ($(dpkg-query -W -f='${Version}' lxd)), iptables${*:+ $*} installed"
  fi
}
install_lxd() {
  [ "${#LXD_PKGS[@]}" -gt 0 ] || return 0
  apt_update_once
  apt_install "${LXD_PKGS[@]}"
  log "lxd: installed $(dpkg-query -W -f='${Version}' lxd) (daemon not started)"
}

# ------------------------------------------------------------------ consul-template
# Built from its Go module (no replace directives since v0.34), into <cache>/bin.
step_consul_template() {
  local bin="$CACHE/bin/consul-template" t
  if [ -x "$bin" ] && "$bin" -v 2>&1 | grep -q "v$CONSUL_TEMPLATE_VERSION "; then
    log "consul-template: v$CONSUL_TEMPLATE_VERSION present ($bin)"
    return 0
  fi
  command -v go >/dev/null 2>&1 || die "consul-template needs the Go toolchain (go) on PATH"
  t=$(now_ms)
  log "consul-template: go install github.com/hashicorp/consul-template@v$CONSUL_TEMPLATE_VERSION (first run takes a minute or two)"
  mkdir -p "$CACHE/bin"
  GOBIN="$CACHE/bin" CGO_ENABLED=0 go install "github.com/hashicorp/consul-template@v$CONSUL_TEMPLATE_VERSION"
  "$bin" -v 2>&1 | grep -q "v$CONSUL_TEMPLATE_VERSION" || die "consul-template at $bin does not report v$CONSUL_TEMPLATE_VERSION"
  log "consul-template: installed v$CONSUL_TEMPLATE_VERSION ($(elapsed "$t"))"
}

# ------------------------------------------------------------------ env file
write_env() {
  local tmp; tmp="$(mktemp "$CACHE/.toolchain.env.XXXXXX")"
  {
    printf 'export TERRAFORM_BINARY_NAME=%q\n' "$TF_NAME"
    printf 'export MATRIX_LXD_TERRAFORM=%q\n' "$TF_BIN"
    [ "$TF_NAME" != tofu ] || printf 'export PATH=%q:"$PATH"\n' "$(dirname "$TF_BIN")"
    printf 'export CHECKPOINT_DISABLE=1\n'
    printf 'export MATRIX_LXD_CONSUL=%q\n' "$CONSUL_BIN"
    [ -z "${TF_CLI_CONFIG_FILE:-}" ] || printf 'export TF_CLI_CONFIG_FILE=%q\n' "$TF_CLI_CONFIG_FILE"
  } >"$tmp"
  mv -f "$tmp" "$ENVFILE"
  cat "$ENVFILE"
  log "wrote $ENVFILE"
}

# ------------------------------------------------------------------ schemas
# One `providers schema -json` per provider version (two versions of one provider cannot share
# a configuration), written as <name>-<version>.json, the files scripts/generate-bindings.js reads.
cmd_schemas() {
  local t pin name source version major work; t=$(now_ms)
  mkdir -p "$OUT_DIR"
  for pin in "${PROVIDER_PINS[@]}"; do
    read -r name source version major <<<"$pin"
    work="$(mktemp -d)"
    printf '{"terraform": {"required_providers": {"%s": {"source": "registry.terraform.io/%s", "version": "= %s"}}}}\n' "$name" "$source" "$version" >"$work/main.tf.json"
    (cd "$work" && TF_PLUGIN_CACHE_DIR="$PLUGIN_CACHE" TF_IN_AUTOMATION=1 "$TF_BIN" init -backend=false -input=false -no-color >"$work/init.log" 2>&1) \
      || { cat "$work/init.log" >&2; die "$TF_NAME init for $source $version failed (log above)"; }
    (cd "$work" && "$TF_BIN" providers schema -json >"$work/schema.json") || die "$TF_NAME providers schema -json failed for $source $version"
    python3 - "$work/schema.json" "registry.terraform.io/$source" "$OUT_DIR/$name-$version.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
key = sys.argv[2]
if key not in s.get("provider_schemas", {}):
    raise SystemExit("no schema for %s in the output" % key)
with open(sys.argv[3], "w") as f:
    json.dump({"format_version": s["format_version"], "provider_schemas": {key: s["provider_schemas"][key]}}, f, indent=2, sort_keys=True)
    f.write("\n")
PY
    log "schemas: wrote $OUT_DIR/$name-$version.json"
    rm -rf "$work"
  done
  log "schemas: done ($(elapsed "$t"))"
}

# ------------------------------------------------------------------ main
log "cache: $CACHE"
case "$CMD" in
  host-tools)
    plan_consul
    plan_lxd nftables debootstrap zstd
    install_consul
    install_lxd
    log "host tools ready ($(elapsed "$T_START"))"
    exit 0
    ;;
  test-tools)
    step_cli
    # The unit tests validate provider-free parts of the synthesized stacks with this CLI.
    printf '%s\n' "$TF_BIN" >"$CACHE/terraform-cli"
    plan_consul
    install_consul
    step_consul_template
    log "test tools ready ($(elapsed "$T_START"))"
    exit 0
    ;;
  providers)
    step_cli
    step_providers
    require_providers
    log "providers: all installable ($(elapsed "$T_START"))"
    exit 0
    ;;
  schemas)
    step_cli
    step_providers
    require_providers
    cmd_schemas
    exit 0
    ;;
esac
step_cli
plan_consul
plan_lxd
install_consul
install_lxd
write_env
step_providers
log "toolchain ready ($(elapsed "$T_START")): $TF_NAME at $TF_BIN, consul at $CONSUL_BIN, lxd $(dpkg-query -W -f='${Version}' lxd 2>/dev/null || echo '(not installed)')"
if [ "${#MISSING_PROVIDERS[@]}" -gt 0 ]; then
  log "not installable here: ${MISSING_PROVIDERS[*]}; stacks for those versions cannot be planned or deployed on this machine"
  log "(scripts/toolchain.sh providers --help says how to provide them)"
fi
exit 0
