#!/usr/bin/env bash
# Sets up the tokens of a Consul server whose ACLs are on, the way the stack expects them
# (host.consul.acl, the default). scripts/host.sh up runs it for the local host; on your own
# host, run it once the agent runs with
#   acl { enabled = true, default_policy = "deny", enable_token_persistence = true }
#
# Usage: scripts/consul-acl.sh --url http://HOST:8500 --dir DIR --node NODE
#   --url    Consul's HTTP API
#   --dir    where the tokens are kept, root-only (created 0700; files 0600)
#   --node   the agent's node name (its own token may write that node's catalog entry)
#
# Steps, each skipped when already done:
#   1. bootstraps the ACL system once; the management token goes to DIR/management-token
#      (Terraform's token: export CONSUL_HTTP_TOKEN="$(cat DIR/management-token)");
#   2. creates the policy matrix-lxd-dns-read (read the service and node catalog, no key) and
#      matrix-lxd-agent-NODE (write its own node);
#   3. creates a token with both (DIR/dns-token) and sets it as the agent's default token, which
#      answers DNS (HAProxy resolves its backends there) and requests that carry no token, and
#      as the agent's own token.
# Needs curl, python3 and the compiled library (npm run build: the DNS policy's rules come from
# lib/render/consul-acl.ts). Exit status: 0 done; 1 failed, with the reason.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
now_ms() { date +%s%3N; }
elapsed() { local ms=$(( $(now_ms) - $1 )); printf '%d.%01ds' $((ms / 1000)) $(((ms % 1000) / 100)); }
T_START=$(now_ms)
log() { echo "[consul-acl] $*"; }
die() { echo "[consul-acl] ERROR: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

CONSUL_URL="" DIR="" NODE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --url) [ $# -ge 2 ] || die "--url needs a URL"; CONSUL_URL="${2%/}"; shift ;;
    --dir) [ $# -ge 2 ] || die "--dir needs a directory"; DIR="$2"; shift ;;
    --node) [ $# -ge 2 ] || die "--node needs a node name"; NODE="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
missing=()
[ -n "$CONSUL_URL" ] || missing+=("--url")
[ -n "$DIR" ] || missing+=("--dir")
[ -n "$NODE" ] || missing+=("--node")
[ ${#missing[@]} -eq 0 ] || die "missing ${missing[*]} (see --help)"
for tool in curl python3 node; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
[ -f "$ROOT/dist/lib/render/consul-acl.js" ] || die "the compiled library is missing: run npm run build"
DNS_RULES="$(node -e 'process.stdout.write(require(process.argv[1]).CONSUL_DNS_POLICY)' "$ROOT/dist/lib/render/consul-acl.js")"

MANAGEMENT_TOKEN_FILE="$DIR/management-token"
DNS_TOKEN_FILE="$DIR/dns-token"
mkdir -p "$DIR"
chmod 0700 "$DIR"

http_code() { curl -sS -m 5 -o /dev/null -w '%{http_code}' "$@" 2>/dev/null || true; }
# A call with the management token; prints the body, fails on a non-2xx answer.
consul_api() {
  local method="$1" path="$2" body="${3:-}" data=()
  [ -z "$body" ] || data=(--data-binary "$body")
  curl -fsS -m 10 -X "$method" -H "X-Consul-Token: $(cat "$MANAGEMENT_TOKEN_FILE")" "${data[@]}" "$CONSUL_URL$path"
}
json() { python3 -c 'import json,sys; print(json.dumps(json.loads(sys.argv[1])))' "$1"; }
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
write_secret() { (umask 077; printf '%s' "$2" >"$1"); chmod 0600 "$1"; }

# 401 "ACL support disabled" without ACLs; 403 with ACLs on and no token.
case "$(http_code "$CONSUL_URL/v1/acl/policies")" in
  403) ;;
  401) die "Consul at $CONSUL_URL has ACLs off: start its agent with acl { enabled = true, default_policy = \"deny\", enable_token_persistence = true }" ;;
  000) die "Consul at $CONSUL_URL does not answer" ;;
  *) die "Consul at $CONSUL_URL answers /v1/acl/policies unexpectedly (ACLs with default_policy allow?)" ;;
esac

t=$(now_ms)
if [ -s "$MANAGEMENT_TOKEN_FILE" ]; then
  [ "$(http_code -H "X-Consul-Token: $(cat "$MANAGEMENT_TOKEN_FILE")" "$CONSUL_URL/v1/acl/token/self")" = 200 ] ||
    die "the management token in $MANAGEMENT_TOKEN_FILE is not accepted by $CONSUL_URL (from another bootstrap?)"
  log "1/3 management token: in $MANAGEMENT_TOKEN_FILE (present)"
else
  out=""
  # Right after the leader election the ACL system may still be starting: retry for up to 30 s.
  for i in $(seq 1 30); do
    code="$(curl -sS -m 5 -o "$DIR/.bootstrap.json" -w '%{http_code}' -X PUT "$CONSUL_URL/v1/acl/bootstrap" 2>/dev/null || true)"
    if [ "$code" = 200 ]; then out="$(cat "$DIR/.bootstrap.json")"; break; fi
    # 403: bootstrapped before, and its token is not here.
    if [ "$code" = 403 ]; then
      rm -f "$DIR/.bootstrap.json"
      die "Consul's ACL system at $CONSUL_URL was bootstrapped before and $MANAGEMENT_TOKEN_FILE is missing: put the management token there, or reset the bootstrap (Consul's acl bootstrap reset)"
    fi
    sleep 1
  done
  rm -f "$DIR/.bootstrap.json"
  [ -n "$out" ] || die "could not bootstrap Consul's ACL system at $CONSUL_URL within 30 s"
  write_secret "$MANAGEMENT_TOKEN_FILE" "$(printf '%s' "$out" | json_field SecretID)"
  log "1/3 management token: bootstrapped into $MANAGEMENT_TOKEN_FILE (root only) ($(elapsed "$t"))"
fi

t=$(now_ms)
DNS_POLICY="matrix-lxd-dns-read"
AGENT_POLICY="matrix-lxd-agent-$NODE"
ensure_policy() {
  local name="$1" description="$2" rules="$3"
  if consul_api GET "/v1/acl/policy/name/$name" >/dev/null 2>&1; then return; fi
  consul_api PUT /v1/acl/policy "$(python3 -c 'import json,sys; print(json.dumps({"Name": sys.argv[1], "Description": sys.argv[2], "Rules": sys.argv[3]}))' "$name" "$description" "$rules")" >/dev/null ||
    die "could not create the ACL policy $name"
  log "    created policy $name"
}
ensure_policy "$DNS_POLICY" "Consul DNS and requests without a token: read the catalog" "$DNS_RULES"
ensure_policy "$AGENT_POLICY" "the Consul agent $NODE: its own node" "node \"$NODE\" { policy = \"write\" }"
log "2/3 policies $DNS_POLICY, $AGENT_POLICY ($(elapsed "$t"))"

t=$(now_ms)
if [ -s "$DNS_TOKEN_FILE" ] && [ "$(http_code -H "X-Consul-Token: $(cat "$DNS_TOKEN_FILE")" "$CONSUL_URL/v1/acl/token/self")" = 200 ]; then
  state="present"
else
  token_json="$(consul_api PUT /v1/acl/token "$(json "{\"Description\": \"matrix-lxd: DNS and the agent $NODE\", \"Policies\": [{\"Name\": \"$DNS_POLICY\"}, {\"Name\": \"$AGENT_POLICY\"}]}")")" ||
    die "could not create the DNS token"
  write_secret "$DNS_TOKEN_FILE" "$(printf '%s' "$token_json" | json_field SecretID)"
  state="created"
fi
# Idempotent, and kept by the agent across restarts (enable_token_persistence).
for kind in default agent; do
  consul_api PUT "/v1/agent/token/$kind" "{\"Token\": \"$(cat "$DNS_TOKEN_FILE")\"}" >/dev/null || die "could not set the agent's $kind token"
done
log "3/3 DNS token: $state in $DNS_TOKEN_FILE, the agent's default and own token ($(elapsed "$t"))"
log "done in $(elapsed "$T_START"): ACLs default deny at $CONSUL_URL; for Terraform: export CONSUL_HTTP_TOKEN=\"\$(cat $MANAGEMENT_TOKEN_FILE)\""
