#!/usr/bin/env bash
# Installs the real tools that test/support/validators.ts uses to check rendered
# config files:
#   - Debian packages: haproxy (haproxy -c), nginx (nginx -t), cloud-init
#     (cloud-init schema), nftables (nft -c), openssl (self-signed test certs),
#     coturn (turnserver on loopback: peer permissions and the TLS listener)
#   - a Python virtualenv with matrix-synapse (its own config loader) at
#     ${MATRIX_LXD_CACHE:-$HOME/.cache/matrix-lxd}/synapse-venv-<SYNAPSE_VERSION>-url-preview
#
# Idempotent: when everything is present it only checks a few paths and exits
# (well under a second). apt-get update runs once, and only if a package is
# missing. Package daemons are never left running: a temporary policy-rc.d
# blocks service starts during the install, and haproxy/nginx/coturn units are
# disabled (and stopped if running) afterwards. cloud-init, if this script had
# to install it, is disabled at boot (/etc/cloud/cloud-init.disabled): it is
# only wanted for `cloud-init schema`.
#
# test/support/validators.ts reads SYNAPSE_VERSION from the line below: keep
# the format `SYNAPSE_VERSION="x.y.z"`.
set -euo pipefail

SYNAPSE_VERSION="1.163.2"
CACHE_DIR="${MATRIX_LXD_CACHE:-$HOME/.cache/matrix-lxd}"
# The [url-preview] extra is part of the name: the loader needs it when URL previews are on.
VENV="$CACHE_DIR/synapse-venv-$SYNAPSE_VERSION-url-preview"
VENV_MARKER="$VENV/.matrix-lxd-ready"

log() { echo "[validators] $*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    log "not root and no sudo: cannot install Debian packages" >&2
  fi
fi

# ---------------------------------------------------------------- Debian packages
# "binary to look for" -> "package that provides it"
declare -A WANT=(
  [/usr/sbin/haproxy]=haproxy
  [/usr/sbin/nginx]=nginx
  [/usr/bin/cloud-init]=cloud-init
  [/usr/sbin/nft]=nftables
  [/usr/bin/openssl]=openssl
  [/usr/lib/postgresql/15/bin/postgres]=postgresql-15
  [/usr/bin/turnserver]=coturn
)
missing=()
for bin in "${!WANT[@]}"; do
  [ -x "$bin" ] || missing+=("${WANT[$bin]}")
done

# Python used for the venv: python3 on PATH if it can build a venv with pip,
# else Debian's (needs python3-venv).
PYTHON=""
if [ ! -f "$VENV_MARKER" ]; then
  for cand in "$(command -v python3 || true)" /usr/bin/python3; do
    [ -n "$cand" ] && [ -x "$cand" ] || continue
    if "$cand" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 10) else 1)' >/dev/null 2>&1; then
      PYTHON="$cand"; break
    fi
  done
  if [ -z "$PYTHON" ]; then
    missing+=(python3 python3-venv)
    PYTHON=/usr/bin/python3
  fi
fi

if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  installed_cloud_init=0
  [ -x /usr/bin/cloud-init ] || installed_cloud_init=1

  # Block service starts during the install (restored afterwards).
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  cleanup_policy() { if [ "$own_policy" = 1 ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi; }
  trap cleanup_policy EXIT

  export DEBIAN_FRONTEND=noninteractive
  log "apt-get update"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" >/dev/null

  cleanup_policy
  own_policy=0
  trap - EXIT

  # Never leave the daemons running or enabled at boot.
  if command -v systemctl >/dev/null 2>&1; then
    for unit in haproxy.service nginx.service coturn.service; do
      if [ -d /run/systemd/system ]; then
        $SUDO systemctl stop "$unit" >/dev/null 2>&1 || true
      fi
      $SUDO systemctl disable "$unit" >/dev/null 2>&1 || true
    done
  fi
  for pidfile in /run/haproxy.pid /run/nginx.pid /run/turnserver/turnserver.pid; do
    if [ -s "$pidfile" ]; then
      $SUDO kill "$(cat "$pidfile")" >/dev/null 2>&1 || true
    fi
  done
  if [ "$installed_cloud_init" = 1 ] && [ -d /etc/cloud ]; then
    $SUDO touch /etc/cloud/cloud-init.disabled
  fi
else
  log "Debian packages present (haproxy, nginx, cloud-init, nftables, openssl, postgresql-15, coturn)"
fi

# ---------------------------------------------------------------- Synapse venv
if [ -f "$VENV_MARKER" ]; then
  log "synapse venv present: $VENV"
else
  log "creating synapse venv $VENV (matrix-synapse==$SYNAPSE_VERSION) with $PYTHON"
  rm -rf "$VENV"
  mkdir -p "$CACHE_DIR"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "matrix-synapse[url-preview]==$SYNAPSE_VERSION" psycopg2-binary
  # Prove the config loader imports before declaring the venv ready.
  "$VENV/bin/python" -c 'import synapse, psycopg2; from synapse.config.homeserver import HomeServerConfig; print("[validators] synapse", synapse.__version__)'
  touch "$VENV_MARKER"
fi

# consul and consul-template render the modules' templates in the tests.
bash "$(dirname "${BASH_SOURCE[0]}")/toolchain.sh" test-tools | sed 's/^\[toolchain\]/[validators]/'

log "ready"
