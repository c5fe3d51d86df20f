#!/usr/bin/env bash
# Builds the LXD images the constructs' `image` override expects ("software already
# installed; cloud-init works offline") and imports them into the local LXD daemon.
#
# Usage:
#   scripts/images.sh [--only NAME[,NAME…]] [--element-tarball FILE]
#                     [--synapse-admin-tarball FILE] [--rebuild] [--list]
#   (npm run images -- …)
#
# Images (the stable alias, which config/local.yaml names, and what is in it):
#   matrix-ingress-proxy   HAProxy, Certbot, OpenSSL, consul-template
#   matrix-postgres-15     PostgreSQL 15 (Debian's), consul-template
#   matrix-wellknown       nginx, consul-template
#   matrix-coturn          coturn, consul-template
#   matrix-synapse-<ver>   matrix-synapse[url-preview]==<ver> + psycopg2-binary from PyPI in a
#                          venv at /opt/venvs/matrix-synapse, system user matrix-synapse,
#                          matrix-synapse.service (disabled; the bootstrap starts it)
#   matrix-element-web     nginx + the Element Web release tarball given with
#                          --element-tarball (checked against the constructs' pinned sha256),
#                          unpacked at /var/www/element-<ver>, linked from /var/www/element.
#                          Without a tarball: nginx and a notice page that says no Element Web
#                          bundle is installed (this machine cannot reach the release downloads).
#   matrix-synapse-admin   the same for synapse-admin (--synapse-admin-tarball).
# Every image starts from one shared base rootfs: Debian 12 (debootstrap --variant=minbase)
# with systemd, cloud-init (NoCloud only), systemd-networkd and -resolved, nftables, curl.
# The image templates feed cloud-init's NoCloud seed from `cloud-init.*` config keys and
# fall back to `user.*` (user-data, vendor-data, network-config), because provider 1.x reads
# back only `user.*` keys. consul-template is the binary scripts/toolchain.sh test-tools
# builds from its Go module, at /usr/local/bin/consul-template.
#
# Cached by content: each image also gets the alias <stable alias>-<12 hex digits>, a hash of
# this script, the package list, the candidate versions of its Debian packages, the pinned
# versions and any tarball. An image whose hash alias exists is not rebuilt (--rebuild forces
# it); the stable alias moves to the newest build and older builds of it are deleted.
# The base rootfs is cached under ${MATRIX_LXD_CACHE:-$HOME/.cache/matrix-lxd}/images.
#
# Needs root and a running LXD daemon (npm run host:up). A failed build imports nothing,
# leaves the previous image in place and names the step that failed. --list prints the
# aliases and exits.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="${BASH_SOURCE[0]}"
CACHE="${MATRIX_LXD_CACHE:-$HOME/.cache/matrix-lxd}"
IMG_CACHE="$CACHE/images"
SUITE=bookworm
now_ms() { date +%s%3N; }
elapsed() { local ms=$(( $(now_ms) - $1 )); printf '%d.%01ds' $((ms / 1000)) $(((ms % 1000) / 100)); }
T_START=$(now_ms)
log() { echo "[images] $*"; }
die() { echo "[images] ERROR: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; }

ALL=(ingress-proxy postgres wellknown coturn synapse element-web synapse-admin)
ONLY="" ELEMENT_TARBALL="" ADMIN_TARBALL="" REBUILD=0 LIST=0
while [ $# -gt 0 ]; do
  case "$1" in
    --only) [ $# -ge 2 ] || die "--only needs names"; ONLY="$2"; shift ;;
    --only=*) ONLY="${1#--only=}" ;;
    --element-tarball) [ $# -ge 2 ] || die "--element-tarball needs a file"; ELEMENT_TARBALL="$2"; shift ;;
    --element-tarball=*) ELEMENT_TARBALL="${1#*=}" ;;
    --synapse-admin-tarball) [ $# -ge 2 ] || die "--synapse-admin-tarball needs a file"; ADMIN_TARBALL="$2"; shift ;;
    --synapse-admin-tarball=*) ADMIN_TARBALL="${1#*=}" ;;
    --rebuild) REBUILD=1 ;;
    --list) LIST=1 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
WANT=("${ALL[@]}")
if [ -n "$ONLY" ]; then
  IFS=, read -r -a WANT <<<"$ONLY"
  for n in "${WANT[@]}"; do
    [[ " ${ALL[*]} " == *" $n "* ]] || die "--only: unknown image $n (one of: ${ALL[*]})"
  done
fi

# ------------------------------------------------------------------ pins from the library
[ -f "$ROOT/dist/constructs/matrix/synapse.js" ] || die "dist/ is missing: run npm run build first"
eval "$(node -e '
const d = process.argv[1];
const q = (v) => `'"'"'${String(v)}'"'"'`;
const s = require(d + "/constructs/matrix/synapse"), e = require(d + "/constructs/matrix/element-web"), a = require(d + "/constructs/matrix/synapse-admin");
const v = require(d + "/versions.json");
console.log(`SYNAPSE_VERSION=${q(s.SYNAPSE_VERSION)}`);
console.log(`ELEMENT_VERSION=${q(e.ELEMENT_RELEASE.version)} ELEMENT_SHA256=${q(e.ELEMENT_RELEASE.sha256)}`);
console.log(`ADMIN_VERSION=${q(a.SYNAPSE_ADMIN_RELEASE.version)} ADMIN_SHA256=${q(a.SYNAPSE_ADMIN_RELEASE.sha256)}`);
console.log(`CT_VERSION=${q(v.consulTemplate.version)}`);
' "$ROOT/dist")"

stable_alias() {
  case "$1" in
    postgres) echo matrix-postgres-15 ;;
    synapse) echo "matrix-synapse-$SYNAPSE_VERSION" ;;
    *) echo "matrix-$1" ;;
  esac
}
if [ "$LIST" = 1 ]; then
  for n in "${ALL[@]}"; do stable_alias "$n"; done
  exit 0
fi

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, mounts)"
command -v lxc >/dev/null && timeout 10 lxc query /1.0 >/dev/null 2>&1 \
  || die "the LXD daemon is not running: run npm run host:up first"
for tool in debootstrap zstd; do
  command -v "$tool" >/dev/null || die "$tool is missing: npm run host:up (scripts/toolchain.sh host-tools) installs it"
done
mkdir -p "$IMG_CACHE/apt-archives/partial" "$IMG_CACHE/pip-cache" "$IMG_CACHE/work"

# One run at a time per cache.
exec 8>"$IMG_CACHE/.lock"
flock -w 1800 8 || die "another images.sh run holds $IMG_CACHE/.lock"

# ------------------------------------------------------------------ Debian mirror (the host's)
MIRROR="${MATRIX_LXD_DEBIAN_MIRROR:-}"
SECURITY_MIRROR="${MATRIX_LXD_DEBIAN_SECURITY_MIRROR:-}"
if [ -z "$MIRROR" ]; then
  eval "$(python3 - "$SUITE" <<'PY'
import glob, os, re, sys
suite = sys.argv[1]
found = {}
def add(uri, suites, comps):
    if "main" not in comps: return
    for s in suites:
        found.setdefault(s, uri)
for f in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    if os.path.isfile(f):
        for line in open(f):
            m = re.match(r"^deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*)$", line.split("#", 1)[0].strip())
            if m: add(m.group(2), [m.group(3)], m.group(4).split())
for f in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for para in re.split(r"\n\s*\n", open(f).read()):
        fl = {}
        for line in para.splitlines():
            if ":" in line and not line.startswith("#") and not line[:1].isspace():
                k, v = line.split(":", 1); fl[k.strip().lower()] = v.strip()
        if "deb" in fl.get("types", "").split() and fl.get("enabled", "yes") != "no":
            for u in fl.get("uris", "").split(): add(u, fl.get("suites", "").split(), fl.get("components", "").split())
print("MIRROR=%r" % found.get(suite, ""))
print("SECURITY_MIRROR=%r" % found.get(suite + "-security", ""))
PY
)"
fi
[ -n "$MIRROR" ] || die "no Debian $SUITE main source in /etc/apt: set MATRIX_LXD_DEBIAN_MIRROR"

# ------------------------------------------------------------------ what goes into each image
# debootstrap does not resolve virtual packages: python3-cffi-backend provides what
# python3-cryptography (cloud-init) needs, dbus the system bus systemd-resolved needs.
BASE_PACKAGES="systemd-sysv,udev,netbase,cloud-init,python3-cffi-backend,nftables,ca-certificates,iproute2,curl,dbus,systemd-resolved,less"
apt_packages() {
  case "$1" in
    ingress-proxy) echo "haproxy certbot openssl" ;;
    postgres) echo "postgresql-15" ;;
    wellknown|element-web|synapse-admin) echo "nginx" ;;
    coturn) echo "coturn" ;;
    synapse) echo "python3-venv" ;;
  esac
}
needs_consul_template() { case "$1" in ingress-proxy|postgres|wellknown|coturn) return 0 ;; *) return 1 ;; esac; }
describe() {
  case "$1" in
    ingress-proxy) echo "HAProxy, Certbot, OpenSSL, consul-template $CT_VERSION" ;;
    postgres) echo "PostgreSQL 15, consul-template $CT_VERSION" ;;
    wellknown) echo "nginx, consul-template $CT_VERSION" ;;
    coturn) echo "coturn, consul-template $CT_VERSION" ;;
    synapse) echo "Synapse $SYNAPSE_VERSION (PyPI, url-preview) in /opt/venvs/matrix-synapse" ;;
    element-web) if [ -n "$ELEMENT_TARBALL" ]; then echo "nginx, Element Web $ELEMENT_VERSION"; else echo "nginx, NO Element Web bundle (notice page)"; fi ;;
    synapse-admin) if [ -n "$ADMIN_TARBALL" ]; then echo "nginx, synapse-admin $ADMIN_VERSION"; else echo "nginx, NO synapse-admin bundle (notice page)"; fi ;;
  esac
}

check_tarball() { # check_tarball FILE SHA256 NAME → verified path
  local f="$1" want="$2" name="$3"
  [ -f "$f" ] || die "$name tarball $f does not exist"
  local got; got="$(sha256sum "$f" | cut -d' ' -f1)"
  [ "$got" = "$want" ] || die "$name tarball $f has sha256 $got, not the pinned $want"
  log "$name tarball: sha256 matches the pin"
}
[ -z "$ELEMENT_TARBALL" ] || { ELEMENT_TARBALL="$(realpath "$ELEMENT_TARBALL")"; check_tarball "$ELEMENT_TARBALL" "$ELEMENT_SHA256" "Element Web $ELEMENT_VERSION"; }
[ -z "$ADMIN_TARBALL" ] || { ADMIN_TARBALL="$(realpath "$ADMIN_TARBALL")"; check_tarball "$ADMIN_TARBALL" "$ADMIN_SHA256" "synapse-admin $ADMIN_VERSION"; }

# Candidate versions of Debian packages, from the host's apt lists (the same suites as the
# images), looked up once for every package any image installs.
declare -A CANDIDATE=()
load_candidates() {
  local pkgs=(systemd cloud-init nftables) n
  for n in "${ALL[@]}"; do read -r -a more <<<"$(apt_packages "$n")"; pkgs+=("${more[@]}"); done
  local out
  out="$(apt-cache policy "${pkgs[@]}" 2>/dev/null)"
  if ! grep -q 'Candidate: [0-9]' <<<"$out"; then
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    out="$(apt-cache policy "${pkgs[@]}" 2>/dev/null)"
  fi
  local pkg="" line
  while IFS= read -r line; do
    case "$line" in
      [a-z0-9]*:) pkg="${line%:}" ;;
      *Candidate:*) CANDIDATE[$pkg]="${line##*Candidate: }" ;;
    esac
  done <<<"$out"
}
load_candidates
candidates() { local p; for p in "$@"; do printf '%s=%s\n' "$p" "${CANDIDATE[$p]:-none}"; done; }

# The image builder's own code is part of every key; so is the base.
SCRIPT_SHA="$(sha256sum "$SELF" | cut -c1-64)"
BASE_KEY="$(printf '%s\n' "$SCRIPT_SHA" "$SUITE" "$BASE_PACKAGES" "$(candidates systemd cloud-init nftables)" | sha256sum | cut -c1-12)"
image_key() {
  local n="$1" extra=""
  needs_consul_template "$n" && extra="consul-template=$CT_VERSION"
  case "$n" in
    synapse) extra="matrix-synapse[url-preview]==$SYNAPSE_VERSION psycopg2-binary" ;;
    element-web) extra="element=${ELEMENT_TARBALL:+$ELEMENT_SHA256}" ;;
    synapse-admin) extra="synapse-admin=${ADMIN_TARBALL:+$ADMIN_SHA256}" ;;
  esac
  # shellcheck disable=SC2046
  printf '%s\n' "$BASE_KEY" "$n" "$(apt_packages "$n")" "$(candidates $(apt_packages "$n"))" "$extra" | sha256sum | cut -c1-12
}

# ------------------------------------------------------------------ chroot helpers
MOUNTS=()
chroot_mount() { # chroot_mount ROOTFS
  local r="$1"
  mount -t proc proc "$r/proc"; MOUNTS+=("$r/proc")
  mount -t sysfs sysfs "$r/sys"; MOUNTS+=("$r/sys")
  mount --bind /dev "$r/dev"; MOUNTS+=("$r/dev")
  mount --bind /dev/pts "$r/dev/pts"; MOUNTS+=("$r/dev/pts")
  mkdir -p "$r/var/cache/apt/archives"
  mount --bind "$IMG_CACHE/apt-archives" "$r/var/cache/apt/archives"; MOUNTS+=("$r/var/cache/apt/archives")
  # Name resolution and the host's CA bundle (this network may inspect TLS) for the build only.
  rm -f "$r/etc/resolv.conf"; cp /etc/resolv.conf "$r/etc/resolv.conf"
  cp /etc/ssl/certs/ca-certificates.crt "$r/tmp/build-ca.pem"
  printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"; chmod 755 "$r/usr/sbin/policy-rc.d"
}
chroot_umount() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[$i]}" 2>/dev/null || true; done
  MOUNTS=()
}
in_chroot() { # in_chroot ROOTFS CMD…
  local r="$1"; shift
  chroot "$r" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
    PIP_CERT=/tmp/build-ca.pem REQUESTS_CA_BUNDLE=/tmp/build-ca.pem SSL_CERT_FILE=/tmp/build-ca.pem \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 "$@"
}
apt_in() { local r="$1"; shift; in_chroot "$r" apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"; }
finish_rootfs() { # the image's final state: no build leftovers
  local r="$1"
  rm -f "$r/usr/sbin/policy-rc.d" "$r/tmp/build-ca.pem"
  rm -rf "$r/var/lib/apt/lists/"* "$r/var/cache/apt/"*.bin "$r/root/.cache" "$r/tmp/"* "$r/var/tmp/"*
  find "$r/var/cache/apt/archives" -name '*.deb' -delete
  # networkd (DHCP) and resolved (DNS from it) as the container's resolver.
  ln -sfn ../run/systemd/resolve/stub-resolv.conf "$r/etc/resolv.conf"
  : >"$r/etc/machine-id"
  rm -f "$r/var/lib/dbus/machine-id"
  find "$r/var/log" -type f -exec truncate -s 0 {} + 2>/dev/null || true
}

STEP="" CURRENT=""
on_exit() {
  local rc=$?
  chroot_umount
  if [ "$rc" != 0 ] && [ -n "$CURRENT" ]; then
    echo "[images] FAILED: image $CURRENT at step '$STEP' (exit $rc); nothing of it was imported" >&2
    rm -rf "$IMG_CACHE/work/$CURRENT"
    case "$CURRENT" in base-*) rm -rf "$IMG_CACHE/$CURRENT" ;; esac
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM
step() { STEP="$1"; STEP_T=$(now_ms); log "  $CURRENT: $1 …"; }
step_done() { log "  $CURRENT: $STEP done ($(elapsed "$STEP_T"))"; }

# No documentation, manual pages or translations in the images (copyright files stay): dpkg
# leaves them out of later installs, and the ones debootstrap installed go.
strip_docs() { # strip_docs ROOTFS (never the host's own /)
  local r="$1"
  case "$r" in "$IMG_CACHE"/*/rootfs) ;; *) die "strip_docs: refusing $r (not an image rootfs under $IMG_CACHE)" ;; esac
  printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright' \
    'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' \
    'path-exclude=/usr/share/locale/*' 'path-include=/usr/share/locale/locale.alias' \
    >"$r/etc/dpkg/dpkg.cfg.d/90matrix-lxd-nodoc"
  find "$r/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
  find "$r/usr/share/man" "$r/usr/share/info" -mindepth 1 -delete
  find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
}

# ------------------------------------------------------------------ base rootfs
BASE_DIR="$IMG_CACHE/base-$BASE_KEY"
build_base() {
  if [ -f "$BASE_DIR/.ready" ]; then
    log "base rootfs base-$BASE_KEY: cached"
    return
  fi
  CURRENT="base-$BASE_KEY"
  local t; t=$(now_ms)
  rm -rf "$BASE_DIR"; mkdir -p "$BASE_DIR"
  local r="$BASE_DIR/rootfs"
  step "debootstrap $SUITE (minbase + cloud-init, $MIRROR)"
  debootstrap --variant=minbase --include="$BASE_PACKAGES" --cache-dir="$IMG_CACHE/apt-archives" \
    "$SUITE" "$r" "$MIRROR" >"$BASE_DIR/debootstrap.log" 2>&1 \
    || { tail -n 20 "$BASE_DIR/debootstrap.log" >&2; false; }
  step_done
  step "configure the base"
  {
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$MIRROR" "$SUITE" "$SUITE"
    [ -z "$SECURITY_MIRROR" ] || printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$SECURITY_MIRROR" "$SUITE"
  } >"$r/etc/apt/sources.list.d/debian.sources"
  : >"$r/etc/apt/sources.list"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$r/etc/apt/apt.conf.d/90matrix-lxd"
  strip_docs "$r"
  cat >"$r/etc/cloud/cloud.cfg.d/90-matrix-lxd.cfg" <<'EOF'
# Images built by matrix-lxd scripts/images.sh: the LXD templates write the NoCloud seed.
datasource_list: [ NoCloud, None ]
locale: C.UTF-8
EOF
  chroot_mount "$r"
  in_chroot "$r" systemctl enable systemd-networkd.service systemd-resolved.service >/dev/null 2>&1
  in_chroot "$r" systemctl mask systemd-binfmt.service >/dev/null 2>&1
  apt_in "$r" update >/dev/null
  apt_in "$r" upgrade >/dev/null
  chroot_umount
  rm -f "$r/usr/sbin/policy-rc.d"
  rm -rf "$r/debootstrap" "$r/var/cache/apt/"*.bin
  find "$r/var/cache/apt/archives" -name '*.deb' -delete
  step_done
  touch "$BASE_DIR/.ready"
  # Older bases are superseded.
  find "$IMG_CACHE" -maxdepth 1 -name 'base-*' ! -name "base-$BASE_KEY" -exec rm -rf {} +
  log "base rootfs base-$BASE_KEY: built ($(elapsed "$t"))"
  CURRENT=""
}

# ------------------------------------------------------------------ per-image steps
CT_BIN="$CACHE/bin/consul-template"
SYNAPSE_UNIT='[Unit]
Description=Synapse Matrix homeserver
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
User=matrix-synapse
Group=matrix-synapse
WorkingDirectory=/var/lib/matrix-synapse
RuntimeDirectory=matrix-synapse
EnvironmentFile=-/etc/default/matrix-synapse
ExecStart=/opt/venvs/matrix-synapse/bin/python -m synapse.app.homeserver --config-path=/etc/matrix-synapse/homeserver.yaml --config-path=/etc/matrix-synapse/conf.d/
ExecReload=/bin/kill -HUP $MAINPID
Restart=always
RestartSec=3
SyslogIdentifier=matrix-synapse

[Install]
WantedBy=multi-user.target
'

notice_page() { # notice_page APP WHAT FLAG
  cat <<EOF
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>No $2 bundle installed</title></head>
<body><h1>No $2 bundle is installed in this image</h1>
<p>This container runs nginx from the image <code>$(stable_alias "$1")</code>, built without a
$2 release tarball. Rebuild it with <code>npm run images -- $3 FILE</code> (the pinned
release tarball) to serve $2 here.</p></body></html>
EOF
}

install_bundle() { # install_bundle ROOTFS APP VERSION TARBALL LABEL FLAG
  local r="$1" app="$2" version="$3" tarball="$4" label="$5" flag="$6"
  if [ -n "$tarball" ]; then
    local dest="$r/var/www/$app-$version"
    mkdir -p "$dest"
    tar -xzf "$tarball" -C "$dest" --strip-components=1 --no-same-owner
    ln -sfnT "$app-$version" "$r/var/www/$app"
  else
    mkdir -p "$r/var/www/$app-none"
    notice_page "$app" "$label" "$flag" >"$r/var/www/$app-none/index.html"
    ln -sfnT "$app-none" "$r/var/www/$app"
  fi
}

customize() { # customize NAME ROOTFS
  local n="$1" r="$2"
  if needs_consul_template "$n"; then
    install -m 0755 "$CT_BIN" "$r/usr/local/bin/consul-template"
  fi
  case "$n" in
    synapse)
      step "pip install matrix-synapse[url-preview]==$SYNAPSE_VERSION into /opt/venvs/matrix-synapse"
      mkdir -p "$r/root/.cache/pip"
      mount --bind "$IMG_CACHE/pip-cache" "$r/root/.cache/pip"; MOUNTS+=("$r/root/.cache/pip")
      in_chroot "$r" python3 -m venv /opt/venvs/matrix-synapse
      in_chroot "$r" /opt/venvs/matrix-synapse/bin/pip install -q --upgrade pip >/dev/null
      in_chroot "$r" /opt/venvs/matrix-synapse/bin/pip install -q \
        "matrix-synapse[url-preview]==$SYNAPSE_VERSION" psycopg2-binary
      in_chroot "$r" /opt/venvs/matrix-synapse/bin/python -c \
        'import synapse, psycopg2; from synapse.util.check_dependencies import check_requirements; check_requirements("url-preview"); from synapse.config.homeserver import HomeServerConfig; print("synapse", synapse.__version__)' \
        | grep -qx "synapse $SYNAPSE_VERSION" || { echo "the venv does not import Synapse $SYNAPSE_VERSION" >&2; false; }
      umount -l "$r/root/.cache/pip"; unset 'MOUNTS[${#MOUNTS[@]}-1]'
      in_chroot "$r" adduser --system --group --quiet --home /var/lib/matrix-synapse --no-create-home matrix-synapse
      mkdir -p "$r/etc/matrix-synapse/conf.d" "$r/var/lib/matrix-synapse"
      in_chroot "$r" chown matrix-synapse:matrix-synapse /var/lib/matrix-synapse
      printf '%s' "$SYNAPSE_UNIT" >"$r/etc/systemd/system/matrix-synapse.service"
      step_done
      ;;
    element-web)
      step "install the Element Web bundle"
      install_bundle "$r" element "$ELEMENT_VERSION" "$ELEMENT_TARBALL" "Element Web" --element-tarball
      step_done
      ;;
    synapse-admin)
      step "install the synapse-admin bundle"
      install_bundle "$r" synapse-admin "$ADMIN_VERSION" "$ADMIN_TARBALL" synapse-admin --synapse-admin-tarball
      step_done
      ;;
  esac
  # Packages that enable their own services would start them with stock configuration on
  # first boot; the constructs enable what they configure.
  local unit
  for unit in haproxy nginx coturn postgresql; do
    [ -e "$r/lib/systemd/system/$unit.service" ] && in_chroot "$r" systemctl disable "$unit.service" >/dev/null 2>&1 || true
  done
}

write_metadata() { # write_metadata DIR NAME KEY
  local d="$1" n="$2" key="$3"
  mkdir -p "$d/templates"
  cat >"$d/metadata.yaml" <<EOF
architecture: x86_64
creation_date: $(date +%s)
properties:
  description: "Debian 12 $SUITE, $(describe "$n") (matrix-lxd images.sh)"
  os: debian
  release: $SUITE
  architecture: amd64
  variant: cloud
  builder: matrix-lxd-images
  component: $n
  stable_alias: $(stable_alias "$n")
  content_key: "$key"
templates:
  /etc/hostname:
    when: [create, copy]
    template: hostname.tpl
  /etc/hosts:
    when: [create, copy]
    template: hosts.tpl
  /var/lib/cloud/seed/nocloud-net/meta-data:
    when: [create, copy]
    template: cloud-init-meta.tpl
  /var/lib/cloud/seed/nocloud-net/user-data:
    when: [create, copy]
    template: cloud-init-user.tpl
    properties:
      default: |
        #cloud-config
        {}
  /var/lib/cloud/seed/nocloud-net/vendor-data:
    when: [create, copy]
    template: cloud-init-vendor.tpl
    properties:
      default: |
        #cloud-config
        {}
  /var/lib/cloud/seed/nocloud-net/network-config:
    when: [create, copy]
    template: cloud-init-network.tpl
EOF
  printf '{{ container.name }}\n' >"$d/templates/hostname.tpl"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\t{{ container.name }}\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n' >"$d/templates/hosts.tpl"
  printf 'instance-id: {{ container.name }}\nlocal-hostname: {{ container.name }}\n{{ config_get("user.meta-data", "") }}\n' >"$d/templates/cloud-init-meta.tpl"
  # cloud-init.* wins; user.* is the fallback that provider 1.x can read back.
  printf '{%% if config_get("cloud-init.user-data", "") != "" %%}{{ config_get("cloud-init.user-data", "") }}{%% else %%}{{ config_get("user.user-data", properties.default) }}{%% endif %%}\n' >"$d/templates/cloud-init-user.tpl"
  printf '{%% if config_get("cloud-init.vendor-data", "") != "" %%}{{ config_get("cloud-init.vendor-data", "") }}{%% else %%}{{ config_get("user.vendor-data", properties.default) }}{%% endif %%}\n' >"$d/templates/cloud-init-vendor.tpl"
  cat >"$d/templates/cloud-init-network.tpl" <<'EOF'
{% if config_get("cloud-init.network-config", "") != "" %}{{ config_get("cloud-init.network-config", "") }}{% elif config_get("user.network-config", "") != "" %}{{ config_get("user.network-config", "") }}{% else %}version: 1
config:
  - type: physical
    name: eth0
    subnets:
      - type: dhcp
        control: auto
{% endif %}
EOF
}

IMPORTED=() CACHED=() TIMES=()
build_image() {
  local n="$1" t; t=$(now_ms)
  local key; key="$(image_key "$n")"
  local alias; alias="$(stable_alias "$n")"
  local content_alias="$alias-$key"
  if [ "$REBUILD" = 0 ] && lxc image info "$content_alias" >/dev/null 2>&1; then
    # Make sure the stable alias names this build.
    local fp; fp="$(lxc image info "$content_alias" | sed -n 's/^Fingerprint: //p')"
    if [ "$(lxc image info "$alias" 2>/dev/null | sed -n 's/^Fingerprint: //p')" != "$fp" ]; then
      lxc image alias delete "$alias" >/dev/null 2>&1 || true
      lxc image alias create "$alias" "$fp" >/dev/null
    fi
    log "$alias: up to date ($content_alias)"
    CACHED+=("$alias")
    return
  fi
  build_base
  t=$(now_ms)
  CURRENT="$n"
  log "$alias: building ($(describe "$n"))"
  local w="$IMG_CACHE/work/$n"
  rm -rf "$w"; mkdir -p "$w"
  local r="$w/rootfs"
  step "copy the base rootfs"
  cp -a --reflink=auto "$BASE_DIR/rootfs" "$r"
  step_done
  chroot_mount "$r"
  if needs_consul_template "$n" && [ ! -x "$CT_BIN" ]; then
    step "build consul-template $CT_VERSION (scripts/toolchain.sh test-tools)"
    bash "$ROOT/scripts/toolchain.sh" test-tools >/dev/null
    step_done
  fi
  step "apt-get install $(apt_packages "$n")"
  # shellcheck disable=SC2046
  apt_in "$r" install $(apt_packages "$n") >"$w/apt.log" 2>&1 || { tail -n 20 "$w/apt.log" >&2; false; }
  step_done
  customize "$n" "$r"
  chroot_umount
  finish_rootfs "$r"
  step "pack (tar + zstd)"
  write_metadata "$w/meta" "$n" "$key"
  tar -C "$w/meta" -cf "$w/meta.tar" metadata.yaml templates
  tar -C "$r" --numeric-owner --xattrs -cf - . | zstd -q -T0 -3 -o "$w/rootfs.tar.zst"
  step_done
  step "import into LXD"
  local out fp
  out="$(lxc image import "$w/meta.tar" "$w/rootfs.tar.zst" --alias "$content_alias" 2>&1)" || { echo "$out" >&2; false; }
  fp="$(lxc image info "$content_alias" | sed -n 's/^Fingerprint: //p')"
  [ -n "$fp" ] || { echo "imported image has no fingerprint" >&2; false; }
  # Older builds of this image go; the stable alias moves to this one.
  local old
  for old in $(lxc query /1.0/images?recursion=1 | python3 -c '
import json, sys
for i in json.load(sys.stdin):
    p = i.get("properties", {})
    if p.get("builder") == "matrix-lxd-images" and p.get("stable_alias") == sys.argv[1] and i["fingerprint"] != sys.argv[2]:
        print(i["fingerprint"])' "$alias" "$fp"); do
    lxc image delete "$old" >/dev/null 2>&1 || true
  done
  lxc image alias delete "$alias" >/dev/null 2>&1 || true
  lxc image alias create "$alias" "$fp" >/dev/null
  step_done
  local size; size="$(du -m "$w/rootfs.tar.zst" | cut -f1)"
  rm -rf "$w"
  CURRENT=""
  log "$alias: imported as $content_alias (${size} MB, $(elapsed "$t"))"
  IMPORTED+=("$alias")
  TIMES+=("$alias $(elapsed "$t")")
}

log "images: ${WANT[*]}"
for n in "${WANT[@]}"; do build_image "$n"; done

echo
echo "Images in LXD (stable alias → content alias; config/local.yaml names the stable ones):"
for n in "${WANT[@]}"; do
  a="$(stable_alias "$n")"
  printf '  %-26s %-40s %s\n' "$a" "$(lxc image info "$a" | sed -n 's/^    - //p' | grep -v "^$a\$" | head -n1)" "$(describe "$n")"
done
echo "Built ${#IMPORTED[@]}, up to date ${#CACHED[@]}, in $(elapsed "$T_START")."
for x in "${TIMES[@]}"; do echo "  build time: $x"; done
