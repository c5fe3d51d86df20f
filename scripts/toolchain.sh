#!/usr/bin/env bash
# Installs the toolchain the deploy tests need, with versions from versions.json:
#   1. a Terraform CLI: `terraform` on PATH if >= terraform.minimum, else OpenTofu
#      (`go install …/cmd/tofu@<opentofuFallback>`) into the cache;
#   2. the Terraform providers in versions.json `providers`, built with the Go
#      toolchain from their Go modules (by commit: their v2+/v3 tags are not valid Go
#      module versions), placed in a local filesystem mirror (unpacked layout, under
#      registry.terraform.io/ and, for OpenTofu's short addresses, registry.opentofu.org/),
#      plus a Terraform CLI configuration <cache>/terraformrc that installs providers from
#      that mirror only;
#   3. a Consul agent (Debian bullseye's `consul`, pinned so only it comes from bullseye);
#   4. LXD (Debian's `lxd`, plus `iptables`). The daemon is not started or configured.
#
# Usage:
#   scripts/toolchain.sh [--allow-missing-providers]
#   scripts/toolchain.sh test-tools
#       only a Terraform CLI (its path in <cache>/terraform-cli), the Consul agent and
#       consul-template (into <cache>/bin), which the unit tests use to validate
#       provider-free Terraform and render consul-template templates for real; no providers.
#   scripts/toolchain.sh host-tools
#       only what scripts/host.sh and scripts/images.sh need to make this machine an
#       LXD + Consul host and build images: the Consul agent (step 3), LXD (step 4) plus
#       nftables (the host's outbound guard), debootstrap and zstd (image builds).
#       Nothing is started.
#   scripts/toolchain.sh schemas [--out DIR] [--allow-missing-providers]
#       after the build, dumps `providers schema -json` split per provider into DIR
#       (default: <repo>/schemas) as lxd.json, consul.json, random.json.
#
# Everything is cached outside the work tree, keyed by version, in
#   ${MATRIX_LXD_CACHE:-$HOME/.cache/matrix-lxd}
# A second run only checks paths and takes seconds. apt-get update runs at most once,
# and only when a Debian package must be installed.
#
# At the end it prints, and writes to <cache>/toolchain.env (for `source`):
#   export TF_CLI_CONFIG_FILE=<cache>/terraformrc
#   export TERRAFORM_BINARY_NAME=terraform|tofu
#   export MATRIX_LXD_TERRAFORM=<absolute path of that binary>
#   export CHECKPOINT_DISABLE=1
#   export MATRIX_LXD_CONSUL=<absolute path of consul>
#   export MATRIX_LXD_MISSING_PROVIDERS="<names of providers that could not be built>"
#
# Exit status: 0 when everything is in place; 3 when a provider could not be obtained
# (all the other steps still run and toolchain.env is still written), unless
# --allow-missing-providers (or MATRIX_LXD_ALLOW_MISSING_PROVIDERS=1) is given.
# Any other failure exits non-zero at once.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSIONS="$ROOT/versions.json"
CACHE="${MATRIX_LXD_CACHE:-$HOME/.cache/matrix-lxd}"
MIRROR="$CACHE/mirror"
TFRC="$CACHE/terraformrc"
ENVFILE="$CACHE/toolchain.env"

log() { echo "[toolchain] $*"; }
die() { echo "[toolchain] ERROR: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }
elapsed() { local ms=$(( $(now_ms) - $1 )); printf '%d.%01ds' $((ms / 1000)) $(((ms % 1000) / 100)); }

# ------------------------------------------------------------------ arguments
CMD=build
OUT_DIR="$ROOT/schemas"
ALLOW_MISSING="${MATRIX_LXD_ALLOW_MISSING_PROVIDERS:-0}"
while [ $# -gt 0 ]; do
  case "$1" in
    build) CMD=build ;;
    schemas) CMD=schemas ;;
    test-tools) CMD=test-tools ;;
    host-tools) CMD=host-tools ;;
    --out) [ $# -ge 2 ] || die "--out needs a directory"; OUT_DIR="$2"; shift ;;
    --out=*) OUT_DIR="${1#--out=}" ;;
    --allow-missing-providers) ALLOW_MISSING=1 ;;
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
eval "$(python3 - "$VERSIONS" <<'PY'
import json, shlex, sys
v = json.load(open(sys.argv[1]))
q = shlex.quote
print("TF_MINIMUM=%s" % q(v["terraform"]["minimum"]))
print("TOFU_VERSION=%s" % q(v["terraform"]["opentofuFallback"]))
print("CONSUL_AGENT_VERSION=%s" % q(v.get("consulAgent", "1.8.7")))
print("CONSUL_TEMPLATE_VERSION=%s" % q(v["consulTemplate"]["version"]))
names = []
for name, p in v["providers"].items():
    names.append(name)
    ns, typ = p["source"].split("/")
    # goModulePath, when present, is the path the module's go.mod declares (it can
    # differ from the repository's address); the Go module proxy serves it under that.
    mod = p.get("goModulePath") or p["goModule"]
    ref = p.get("commit") or ("v" + p["version"])
    for key, val in (("NS", ns), ("TYPE", typ), ("VERSION", p["version"]), ("MODULE", mod), ("REF", ref)):
        print("P_%s_%s=%s" % (key, name, q(val)))
print("PROVIDERS=(%s)" % " ".join(q(n) for n in names))
PY
)"

GOOS_GOARCH="linux_amd64"
if command -v go >/dev/null 2>&1; then
  GOOS_GOARCH="$(go env GOOS)_$(go env GOARCH)"
fi

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

# ------------------------------------------------------------------ 2. providers
MISSING_PROVIDERS=()

# build_provider NAME → $CACHE/providers/<name>-<version>/terraform-provider-<type>_v<version>
build_provider() {
  local name="$1"
  local ns="P_NS_$name" typ="P_TYPE_$name" ver="P_VERSION_$name" mod="P_MODULE_$name" ref="P_REF_$name"
  ns="${!ns}"; typ="${!typ}"; ver="${!ver}"; mod="${!mod}"; ref="${!ref}"
  local bdir="$CACHE/providers/$name-$ver"
  local bin="terraform-provider-${typ}_v${ver}"
  # OpenTofu resolves a short source ("hashicorp/consul") on its own registry host, so
  # the mirror holds each binary under both hosts (hard links).
  local mdir="$MIRROR/registry.terraform.io/$ns/$typ/$ver/$GOOS_GOARCH"
  local mdir2="$MIRROR/registry.opentofu.org/$ns/$typ/$ver/$GOOS_GOARCH"
  local t; t=$(now_ms)

  if [ -x "$mdir/$bin" ] && [ -x "$mdir2/$bin" ]; then
    log "provider $ns/$typ $ver: present in mirror"
    return 0
  fi
  if [ ! -x "$bdir/$bin" ]; then
    if ! command -v go >/dev/null 2>&1; then
      log "provider $ns/$typ $ver: UNAVAILABLE (no Go toolchain)"
      return 1
    fi
    log "provider $ns/$typ $ver: go mod download $mod@$ref …"
    local dl; dl="$(go mod download -json "$mod@$ref" 2>/dev/null || true)"
    local info
    info="$(python3 -c '
import json, shlex, sys
try:
    d = json.loads(sys.stdin.read() or "{}")
except ValueError:
    d = {"Error": "unreadable output from go mod download"}
err = d.get("Error") or ("" if d.get("Dir") else "no module directory in the answer")
print("DL_ERR=%s DL_DIR=%s DL_VER=%s" % (shlex.quote(err.replace("\n", " ")), shlex.quote(d.get("Dir", "")), shlex.quote(d.get("Version", ""))))
' <<<"$dl")"
    local DL_ERR DL_DIR DL_VER
    eval "$info"
    if [ -n "$DL_ERR" ]; then
      log "provider $ns/$typ $ver: UNAVAILABLE: $DL_ERR"
      return 1
    fi
    log "provider $ns/$typ $ver: module $mod@$DL_VER"

    # Stamp the version where main.go has a version variable (e.g. `var version = "dev"`).
    local ldflags="-s -w" var
    var="$(sed -n -E 's/^[[:space:]]*(var[[:space:]]+)?(version|Version)[[:space:]]*(string[[:space:]]*)?=.*/\2/p' \
      "$DL_DIR/main.go" 2>/dev/null | head -n1 || true)"
    if [ -n "$var" ]; then
      ldflags="$ldflags -X main.$var=$ver"
      log "provider $ns/$typ $ver: stamping -X main.$var=$ver"
    else
      log "provider $ns/$typ $ver: main.go has no version variable (nothing to stamp)"
    fi

    local tmp; tmp="$(mktemp -d)"
    local rc=0
    if grep -E -q '^[[:space:]]*(replace|exclude)\b' "$DL_DIR/go.mod"; then
      # go install refuses modules with replace/exclude: build a writable copy instead.
      log "provider $ns/$typ $ver: go.mod has replace/exclude: go build in a copy …"
      cp -R "$DL_DIR" "$tmp/src"
      chmod -R u+w "$tmp/src"
      (cd "$tmp/src" && go build -trimpath -ldflags "$ldflags" -o "$tmp/$bin" .) || rc=$?
    else
      log "provider $ns/$typ $ver: go install $mod@$ref …"
      mkdir -p "$tmp/bin"
      GOBIN="$tmp/bin" go install -trimpath -ldflags "$ldflags" "$mod@$ref" || rc=$?
      [ "$rc" != 0 ] || mv "$tmp/bin/${mod##*/}" "$tmp/$bin" || rc=$?
    fi
    if [ "$rc" != 0 ]; then
      chmod -R u+w "$tmp" 2>/dev/null || true; rm -rf "$tmp"
      log "provider $ns/$typ $ver: UNAVAILABLE: build failed (exit $rc)"
      return 1
    fi
    mkdir -p "$bdir"
    mv -f "$tmp/$bin" "$bdir/$bin.tmp" && mv -f "$bdir/$bin.tmp" "$bdir/$bin"
    printf '{"module": "%s", "ref": "%s", "moduleVersion": "%s", "version": "%s", "go": "%s"}\n' \
      "$mod" "$ref" "$DL_VER" "$ver" "$(go env GOVERSION)" >"$bdir/build-info.json"
    chmod -R u+w "$tmp" 2>/dev/null || true; rm -rf "$tmp"
    log "provider $ns/$typ $ver: built ($(elapsed "$t"))"
  fi
  local d
  for d in "$mdir" "$mdir2"; do
    mkdir -p "$d"
    ln -f "$bdir/$bin" "$d/$bin" 2>/dev/null || cp -f "$bdir/$bin" "$d/$bin"
  done
  log "provider $ns/$typ $ver: placed in mirror"
}

step_providers() {
  local name
  for name in "${PROVIDERS[@]}"; do
    build_provider "$name" || MISSING_PROVIDERS+=("$name")
  done
  local want
  want="$(printf 'provider_installation {\n  filesystem_mirror {\n    path    = "%s"\n    include = ["registry.terraform.io/*/*", "registry.opentofu.org/*/*"]\n  }\n}\ndisable_checkpoint = true\n' "$MIRROR")"
  if [ ! -f "$TFRC" ] || [ "$(cat "$TFRC")" != "$want" ]; then
    printf '%s\n' "$want" >"$TFRC"
    log "wrote $TFRC (filesystem mirror $MIRROR only)"
  else
    log "terraformrc present: $TFRC"
  fi
}

# ------------------------------------------------------------------ 3. Consul agent
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

# ------------------------------------------------------------------ 4. LXD
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
    printf 'export TF_CLI_CONFIG_FILE=%q\n' "$TFRC"
    printf 'export TERRAFORM_BINARY_NAME=%q\n' "$TF_NAME"
    printf 'export MATRIX_LXD_TERRAFORM=%q\n' "$TF_BIN"
    [ "$TF_NAME" != tofu ] || printf 'export PATH=%q:"$PATH"\n' "$(dirname "$TF_BIN")"
    printf 'export CHECKPOINT_DISABLE=1\n'
    printf 'export MATRIX_LXD_CONSUL=%q\n' "$CONSUL_BIN"
    printf 'export MATRIX_LXD_MISSING_PROVIDERS="%s"\n' "${MISSING_PROVIDERS[*]:-}"
  } >"$tmp"
  mv -f "$tmp" "$ENVFILE"
  cat "$ENVFILE"
  log "wrote $ENVFILE"
}

# ------------------------------------------------------------------ schemas
cmd_schemas() {
  local t; t=$(now_ms)
  local work; work="$(mktemp -d)"
  python3 - "$VERSIONS" >"$work/main.tf.json" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
# Full addresses, so that OpenTofu too resolves them to registry.terraform.io/….
req = {n: {"source": "registry.terraform.io/" + p["source"], "version": "= " + p["version"]}
       for n, p in v["providers"].items()}
json.dump({"terraform": {"required_providers": req}}, sys.stdout, indent=2)
PY
  log "schemas: $TF_NAME init (offline, filesystem mirror) in $work"
  (cd "$work" && TF_CLI_CONFIG_FILE="$TFRC" TF_IN_AUTOMATION=1 "$TF_BIN" init -input=false -no-color >"$work/init.log" 2>&1) \
    || { cat "$work/init.log" >&2; die "$TF_NAME init failed (log above)"; }
  (cd "$work" && TF_CLI_CONFIG_FILE="$TFRC" "$TF_BIN" providers schema -json >"$work/schema.json") \
    || die "$TF_NAME providers schema -json failed"
  mkdir -p "$OUT_DIR"
  python3 - "$VERSIONS" "$work/schema.json" "$OUT_DIR" <<'PY'
import json, os, sys
v = json.load(open(sys.argv[1]))
s = json.load(open(sys.argv[2]))
for name, p in v["providers"].items():
    key = "registry.terraform.io/" + p["source"]
    if key not in s.get("provider_schemas", {}):
        raise SystemExit("no schema for %s in the output" % key)
    out = {"format_version": s["format_version"], "provider_schemas": {key: s["provider_schemas"][key]}}
    path = os.path.join(sys.argv[3], name + ".json")
    with open(path, "w") as f:
        json.dump(out, f, indent=2, sort_keys=True)
        f.write("\n")
    print("[toolchain] schemas: wrote %s" % path)
PY
  rm -rf "$work"
  log "schemas: done ($(elapsed "$t"))"
}

# ------------------------------------------------------------------ main
log "cache: $CACHE"
if [ "$CMD" = test-tools ]; then
  step_cli
  # The unit tests validate provider-free parts of the synthesized stacks with this CLI.
  printf '%s\n' "$TF_BIN" >"$CACHE/terraform-cli"
  plan_consul
  install_consul
  step_consul_template
  log "test tools ready ($(elapsed "$T_START"))"
  exit 0
fi
if [ "$CMD" = host-tools ]; then
  plan_consul
  plan_lxd nftables debootstrap zstd
  install_consul
  install_lxd
  log "host tools ready ($(elapsed "$T_START"))"
  exit 0
fi
step_cli
step_providers
plan_consul
plan_lxd
install_consul
install_lxd
write_env

if [ "${#MISSING_PROVIDERS[@]}" -gt 0 ]; then
  log "WARNING: providers not available: ${MISSING_PROVIDERS[*]} (terraform init against the mirror will fail for them)"
fi
log "toolchain ready ($(elapsed "$T_START"))"

if [ "$CMD" = schemas ]; then
  [ "${#MISSING_PROVIDERS[@]}" = 0 ] || die "schemas needs every provider; missing: ${MISSING_PROVIDERS[*]}"
  cmd_schemas
fi

if [ "${#MISSING_PROVIDERS[@]}" -gt 0 ] && [ "$ALLOW_MISSING" != 1 ]; then
  exit 3
fi
exit 0
