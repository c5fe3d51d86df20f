#!/usr/bin/env bash
# The real-LXD suite: boots every container of the example stack in this machine's LXD and
# checks it with real clients (test/lxd/*.lxd.ts, jest with test/lxd/jest.config.js).
#
# Usage: scripts/lxd-suite.sh [--keep] [JEST_ARGS…]      (npm run test:lxd -- …)
#   --keep   leave the deployment and the host up afterwards (to look around); by default
#            everything is torn down, also on failure.
#   --clean  only remove what a --keep run left (containers, volumes, KV entries), then exit.
#
# Steps: npm run build; host up (scripts/host.sh up CONFIG) unless it is up already; images
# (scripts/images.sh: built or reused from the cache); jest (its global setup synthesizes the
# stack and deploys it, its global teardown removes the deployment); then, if this run brought
# the host up, `host.sh down --purge`: the bridge, pool, volumes, Consul (and its data) and the
# daemon go; the Debian packages, the image cache and the images in LXD stay.
# CONFIG: $MATRIX_LXD_SUITE_CONFIG, else config/local.yaml. Needs root.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
now_ms() { date +%s%3N; }
elapsed() { local ms=$(( $(now_ms) - $1 )); printf '%d.%01ds' $((ms / 1000)) $(((ms % 1000) / 100)); }
T_START=$(now_ms)
log() { echo "[lxd-suite] $*"; }
die() { echo "[lxd-suite] ERROR: $*" >&2; exit 1; }

KEEP=0 CLEAN=0
JEST_ARGS=()
for a in "$@"; do
  case "$a" in
    --keep) KEEP=1; export MATRIX_LXD_SUITE_KEEP=1 ;;
    --clean) CLEAN=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) JEST_ARGS+=("$a") ;;
  esac
done
[ "$(id -u)" = 0 ] || die "must run as root (LXD, bridge, images)"
CONFIG="$(realpath "${MATRIX_LXD_SUITE_CONFIG:-$ROOT/config/local.yaml}")"
export MATRIX_LXD_SUITE_CONFIG="$CONFIG"
cd "$ROOT"

t=$(now_ms)
log "build"
npm run --silent build
eval "$(node scripts/host-facts.js "$CONFIG")"
STATE="${MATRIX_LXD_STATE:-/var/lib/matrix-lxd}/$HOST_ID"
BROUGHT_UP=1
if [ -n "$(ls -A "$STATE/created" 2>/dev/null)" ]; then
  BROUGHT_UP=0
  log "host $HOST_ID was already up (state in $STATE): it stays up afterwards"
fi

remove_suite_leftovers() {
  command -v lxc >/dev/null && timeout 10 lxc query /1.0 >/dev/null 2>&1 || return 0
  local name pool vol
  for name in $(lxc query '/1.0/instances?recursion=1' | python3 -c '
import json, sys
for i in json.load(sys.stdin):
    if i.get("config", {}).get("user.matrix-lxd-suite") == "true": print(i["name"])'); do
    log "removing leftover container $name"; lxc delete --force "$name" || true
  done
  for pool in $(lxc query /1.0/storage-pools | python3 -c 'import json, sys; print(" ".join(p.rsplit("/", 1)[1] for p in json.load(sys.stdin)))'); do
    for vol in $(lxc query "/1.0/storage-pools/$pool/volumes/custom?recursion=1" | python3 -c '
import json, sys
for v in json.load(sys.stdin):
    if v.get("config", {}).get("user.matrix-lxd-suite") == "true": print(v["name"])'); do
      log "removing leftover volume $pool/$vol"; lxc storage volume delete "$pool" "$vol" || true
    done
  done
  if [ -f "$ROOT/test/lxd/.suite-state.json" ]; then
    # With Consul ACLs on, the management token host:up keeps (CONSUL_HTTP_TOKEN wins).
    CONSUL_HTTP_TOKEN="${CONSUL_HTTP_TOKEN:-$(cat "$STATE/consul/management-token" 2>/dev/null || true)}" \
      python3 - "$ROOT/test/lxd/.suite-state.json" <<'PY' || true
import json, os, sys, urllib.error, urllib.request
s = json.load(open(sys.argv[1]))
base = "http://" + s["facts"]["CONSUL_ADDRESS"]
headers = {"X-Consul-Token": os.environ["CONSUL_HTTP_TOKEN"]} if os.environ.get("CONSUL_HTTP_TOKEN") else {}
def call(path, method, data=None):
    try:
        return urllib.request.urlopen(urllib.request.Request(base + path, data=data, method=method, headers=headers), timeout=5).read()
    except urllib.error.HTTPError:
        return None
for key in s["plan"]["kv"]:
    call("/v1/kv/" + key, "DELETE")
for node in {x["node"] for x in s["plan"]["services"]}:
    call("/v1/catalog/deregister", "PUT", json.dumps({"Node": node}).encode())
for token in s["plan"].get("aclTokens", []):
    call("/v1/acl/token/" + token["accessorId"], "DELETE")
for policy in s["plan"].get("aclPolicies", []):
    found = call("/v1/acl/policy/name/" + policy["name"], "GET")
    if found:
        call("/v1/acl/policy/" + json.loads(found)["ID"], "DELETE")
PY
    rm -f "$ROOT/test/lxd/.suite-state.json"
  fi
}

teardown() {
  local rc=$?
  set +e
  if [ "$KEEP" = 1 ]; then
    log "--keep: deployment and host left up (host.sh down --purge removes the host)"
  else
    # Normally jest's global teardown has removed the deployment; after an interrupted
    # run this removes what carries the suite's marker, and the plan's KV entries.
    remove_suite_leftovers
    if [ "$BROUGHT_UP" = 1 ]; then
      log "taking the host down (it was not up before this run)"
      bash scripts/host.sh down "$CONFIG" --purge | sed 's/^/[lxd-suite]   /'
    fi
  fi
  log "finished in $(elapsed "$T_START") (exit $rc)"
  exit "$rc"
}
if [ "$CLEAN" = 1 ]; then
  remove_suite_leftovers
  log "removed what earlier runs left"
  exit 0
fi
trap teardown EXIT

log "host up ($CONFIG)"
T_HOST=$(now_ms)
bash scripts/host.sh up "$CONFIG"
HOST_TIME="$(elapsed "$T_HOST")"
log "images"
T_IMAGES=$(now_ms)
bash scripts/images.sh
IMAGES_TIME="$(elapsed "$T_IMAGES")"
log "jest (test/lxd)"
T_JEST=$(now_ms)
rc=0
npx jest -c test/lxd/jest.config.js --runInBand "${JEST_ARGS[@]}" || rc=$?
log "summary: host up $HOST_TIME, images $IMAGES_TIME, deploy + checks + teardown $(elapsed "$T_JEST"), jest exit $rc"
exit "$rc"
