#!/usr/bin/env bash
# A Matrix homeserver on this machine, from a fresh clone, and its removal.
#
# Usage:
#   scripts/local.sh deploy  [CONFIG]             (npm run local:deploy)
#   scripts/local.sh destroy [CONFIG] [--purge]   (npm run local:destroy)
#   scripts/local.sh destroy --stack-dir DIR      (a stack synthesized elsewhere)
#   scripts/local.sh init --stack-dir DIR         (only: terraform init there, or say which providers are missing)
#
# CONFIG defaults to config/local.yaml: every container from the images `npm run images`
# builds, the host on the bridge address, so nothing needs the Internet.
#
# deploy: brings the host up (scripts/host.sh up), builds or reuses the images
#   (scripts/images.sh), synthesizes the stack, checks that `terraform init` can install the
#   providers (from the registry, or the filesystem mirror that TF_CLI_CONFIG_FILE names) and
#   runs `cdktf deploy`. Then it prints the URLs and how to reach them. The admin password is
#   $TF_VAR_admin_password; when unset, one is generated once and kept (mode 0600) in
#   ${MATRIX_LXD_STATE:-/var/lib/matrix-lxd}/local-admin-password. With host.consul.acl (the
#   default) Terraform writes to Consul with $CONSUL_HTTP_TOKEN; when unset, with the
#   management token host:up keeps in <state>/<host id>/consul/management-token.
# destroy: removes the containers, Consul KV entries and catalog entries, and keeps the data:
#   the storage volumes (PostgreSQL, Synapse's media and keys, certificates) and the generated
#   secrets in the Terraform state, so a later deploy finds everything again. `terraform
#   destroy` alone refuses, because the volumes are protected (prevent_destroy).
#   --purge also deletes the volumes and the state's secrets: every message and user is gone.
#   The host itself stays up: `npm run host:down` (add `-- --purge` for its data too).
#
# Exit status: 0 done; 1 failed, with the step named.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { echo "[local] $*"; }
die() { echo "[local] ERROR: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }
elapsed() { local ms=$(( $(now_ms) - $1 )); printf '%d.%01ds' $((ms / 1000)) $(((ms % 1000) / 100)); }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

CMD="" CONFIG="" PURGE=0 STACK_DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    deploy|destroy|init) [ -z "$CMD" ] || die "give one of deploy/destroy/init"; CMD="$1" ;;
    --purge) PURGE=1 ;;
    --stack-dir) [ $# -ge 2 ] || die "--stack-dir needs a directory"; STACK_DIR="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option: $1 (see --help)" ;;
    *) [ -z "$CONFIG" ] || die "only one configuration file, got $CONFIG and $1"; CONFIG="$1" ;;
  esac
  shift
done
[ -n "$CMD" ] || { usage >&2; exit 1; }
CONFIG="$(cd "$ROOT" && realpath "${CONFIG:-config/local.yaml}")"
[ -f "$CONFIG" ] || die "no configuration file $CONFIG"
TF="${TERRAFORM_BINARY_NAME:-terraform}"
command -v "$TF" >/dev/null || die "no Terraform CLI ($TF) on PATH"
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
STATE_BASE="${MATRIX_LXD_STATE:-/var/lib/matrix-lxd}"
T0=$(now_ms)

project_id() { node -e 'const y=require("yaml");const c=y.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(c.project.id)' "$CONFIG"; }

admin_password() {
  if [ -n "${TF_VAR_admin_password:-}" ]; then return; fi
  local f="$STATE_BASE/local-admin-password"
  if [ ! -s "$f" ]; then
    mkdir -p "$STATE_BASE"
    (umask 077; node -e 'const c=require("crypto");process.stdout.write("Local-"+c.randomBytes(15).toString("base64url")+"7a")' >"$f")
    log "generated the admin password into $f (mode 0600)"
  fi
  TF_VAR_admin_password="$(cat "$f")"
  export TF_VAR_admin_password
}

# Terraform's Consul token: $CONSUL_HTTP_TOKEN, else the one host:up keeps (ACLs on).
consul_token() {
  [ -z "${CONSUL_HTTP_TOKEN:-}" ] || return 0
  [ -f "$ROOT/dist/lib/config.js" ] || (cd "$ROOT" && npm run --silent build)
  local facts HOST_ID="" CONSUL_ACL=""
  facts="$(node "$ROOT/scripts/host-facts.js" "$CONFIG")" || die "cannot read the configuration $CONFIG (problems above)"
  eval "$(printf '%s\n' "$facts" | grep -E '^(HOST_ID|CONSUL_ACL)=')"
  [ "$CONSUL_ACL" = 1 ] || return 0
  local f="$STATE_BASE/$HOST_ID/consul/management-token"
  [ -s "$f" ] || die "host.consul.acl is on, CONSUL_HTTP_TOKEN is unset and host:up left no token in $f: run npm run host:up, or export CONSUL_HTTP_TOKEN with a token that may write the KV prefixes, the catalog and ACL policies and tokens"
  CONSUL_HTTP_TOKEN="$(cat "$f")"
  export CONSUL_HTTP_TOKEN
  log "Consul ACLs on: Terraform writes with the management token in $f"
}
# terraform init in a synthesized stack, with a message that names what is missing.
check_providers() {
  local dir="$1" out
  if ! out="$(cd "$dir" && "$TF" init -input=false -no-color 2>&1)"; then
    echo "$out" | tail -n 12 >&2
    local missing
    # Terraform wraps its lines: "… versions for provider\nhashicorp/random: …" or "- registry.terraform.io/ns/name:".
    missing="$(echo "$out" | tr '\n' ' ' | grep -oE '(for provider|registry\.terraform\.io/)[[:space:]]*[a-z0-9-]+/[a-z0-9-]+:' \
      | sed -E 's#^(for provider|registry\.terraform\.io/)[[:space:]]*##; s#:$##' | sort -u | tr '\n' ' ' || true)"
    die "terraform init cannot install the providers ${missing:-(see above)}: install them from the registry, or name a filesystem mirror that has them with TF_CLI_CONFIG_FILE"
  fi
}

cmd_deploy() {
  local t id
  id="$(project_id)"
  admin_password
  t=$(now_ms); log "1/4 host up"; bash "$ROOT/scripts/host.sh" up "$CONFIG"; log "host ready ($(elapsed "$t"))"
  consul_token
  t=$(now_ms); log "2/4 images"; bash "$ROOT/scripts/images.sh"; log "images ready ($(elapsed "$t"))"
  t=$(now_ms); log "3/4 synth and provider check"
  (cd "$ROOT" && npm run --silent build && node dist/main.js "$CONFIG")
  check_providers "$ROOT/cdktf.out/stacks/$id"
  log "synthesized $ROOT/cdktf.out/stacks/$id ($(elapsed "$t"))"
  t=$(now_ms); log "4/4 cdktf deploy"
  (cd "$ROOT" && MATRIX_CONFIG="$CONFIG" npx cdktf deploy --auto-approve "$id")
  log "deployed ($(elapsed "$t"))"
  node "$ROOT/scripts/local-summary.js" "$CONFIG" "$STATE_BASE"
}

cmd_destroy() {
  local dir="$STACK_DIR"
  if [ -z "$dir" ]; then
    dir="$ROOT/cdktf.out/stacks/$(project_id)"
    [ -d "$dir" ] || (cd "$ROOT" && npm run --silent build && node dist/main.js "$CONFIG")
  fi
  [ -d "$dir" ] || die "no synthesized stack in $dir"
  admin_password
  consul_token
  check_providers "$dir"
  local keep targets=()
  if [ "$PURGE" = 1 ]; then
    keep='^$'
    log "destroying everything in $dir, data volumes and generated secrets included (--purge)"
    # prevent_destroy is in the synthesized file: lift it in place for this destroy only.
    python3 - "$dir/cdk.tf.json" <<'PY'
import json, sys
p = sys.argv[1]; d = json.load(open(p))
for kind in ("lxd_volume", "lxd_storage_volume"):
    for r in d.get("resource", {}).get(kind, {}).values():
        r.get("lifecycle", {}).pop("prevent_destroy", None)
json.dump(d, open(p, "w"), indent=2)
PY
  else
    # Volumes hold the data, random_* the secrets that data was made with.
    keep='^(lxd_volume|lxd_storage_volume|random_password|random_id|random_string|random_bytes)\.'
    log "destroying containers, KV and catalog entries in $dir; keeping data volumes and generated secrets"
  fi
  while IFS= read -r addr; do
    [ -n "$addr" ] || continue
    if ! [[ "$addr" =~ $keep ]]; then targets+=("-target=$addr"); fi
  done < <(cd "$dir" && "$TF" state list 2>/dev/null || true)
  if [ "${#targets[@]}" = 0 ]; then log "nothing to destroy"; return; fi
  # The full plan repeats every rendered file: keep the log, print the progress lines.
  local log="$dir/destroy.log"
  if ! (cd "$dir" && "$TF" destroy -input=false -no-color -auto-approve "${targets[@]}") >"$log" 2>&1; then
    sed -n '/Error/,$p' "$log" | sed 's/^/  | /' >&2
    die "terraform destroy failed (above; the whole output is in $log)"
  fi
  grep -E 'Destruction complete|Destroy complete' "$log" | sed 's/^/  | /'
  if [ "$PURGE" = 1 ]; then
    log "destroyed everything ($(elapsed "$T0"))"
  else
    log "destroyed ${#targets[@]} resources, kept the data ($(elapsed "$T0")); 'npm run local:destroy -- --purge' deletes it"
  fi
}

cmd_init() {
  [ -n "$STACK_DIR" ] && [ -f "$STACK_DIR/cdk.tf.json" ] || die "init needs --stack-dir with a synthesized cdk.tf.json"
  check_providers "$STACK_DIR"
}

"cmd_$CMD"
