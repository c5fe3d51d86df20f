#!/usr/bin/env bash
# Makes this machine the LXD + Consul host that the synthesized stack expects, or undoes it.
#
# Usage:
#   scripts/host.sh up   [CONFIG] [--state-dir DIR]
#   scripts/host.sh down [CONFIG] [--state-dir DIR] [--purge] [--purge-images]
#   (npm run host:up -- [CONFIG] …, npm run host:down -- [CONFIG] …)
#
# CONFIG is the file synth reads (default: $MATRIX_CONFIG, else config/example.yaml). From it
# (through the library's own Host, scripts/host-facts.js) come the bridge name and addresses,
# the DHCP range, the storage pool, the profiles and Consul's address and datacenter.
#
# up, in order, each step checked first and skipped when already in place:
#   1. installs Debian's LXD, iptables, nftables, debootstrap, zstd and bullseye's consul
#      1.8.7 when missing (scripts/toolchain.sh host-tools);
#   2. refuses, before creating anything, when it cannot work: not root, the LXD address in
#      the file is not this machine, Consul is not on the bridge address, the bridge name or
#      the subnet is taken by something else, a port Consul needs is in use;
#   3. starts the LXD daemon (systemctl where systemd is PID 1, otherwise `lxd` directly);
#   4. creates the storage pool (driver dir) and gives each profile a root disk on it;
#   5. installs a host nftables table that drops everything the bridge would forward to any
#      other interface and back, so no container traffic leaves the machine;
#   6. creates the bridge: IPv4 <part>.1/24, DHCP <part>.100-<part>.254 (clear of the static
#      addresses), no NAT; with an IPv6 prefix in the file also <prefix>::<subnet>:1/112 with
#      ipv6.dhcp.stateful (static IPv6 addresses on NICs need it), no NAT;
#   7. starts a Consul server agent: datacenter = the file's datacenter (default: host id),
#      HTTP and DNS on the bridge address only, data in <state>/consul. With host.consul.acl
#      (the default) ACLs are on with default deny: the ACL system is bootstrapped once and
#      the management token kept root-only in <state>/consul/management-token (export it as
#      CONSUL_HTTP_TOKEN for cdktf deploy); the agent answers DNS with a token that reads the
#      catalog only (<state>/consul/dns-token), so HAProxy's lookups keep working.
# Then it prints what the stack will use. A failed run undoes what that run created.
#
# down stops and removes what up recorded as created, in reverse: Consul, the bridge, the
# guard table, the profiles' root disks and the pool, the daemon. Custom volumes (data) are
# kept, and with them the pool and root disks, unless --purge; --purge also deletes Consul's
# data. The images `npm run images` built stay (a cache) unless --purge-images. It refuses
# while containers still use the bridge.
#
# State: ${MATRIX_LXD_STATE:-/var/lib/matrix-lxd}/<host id>/ (what was created, pids, logs,
# Consul's data). Exit status: 0 done; 1 refused or failed (nothing half-created).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
T_START=$(date +%s%3N)
now_ms() { date +%s%3N; }
elapsed() { local ms=$(( $(now_ms) - $1 )); printf '%d.%01ds' $((ms / 1000)) $(((ms % 1000) / 100)); }
log() { echo "[host] $*"; }
die() { echo "[host] ERROR: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

CMD="" CONFIG="" STATE_BASE="${MATRIX_LXD_STATE:-/var/lib/matrix-lxd}" PURGE=0 PURGE_IMAGES=0
while [ $# -gt 0 ]; do
  case "$1" in
    up|down) [ -z "$CMD" ] || die "give one of up/down"; CMD="$1" ;;
    --state-dir) [ $# -ge 2 ] || die "--state-dir needs a directory"; STATE_BASE="$2"; shift ;;
    --state-dir=*) STATE_BASE="${1#--state-dir=}" ;;
    --purge) PURGE=1 ;;
    --purge-images) PURGE_IMAGES=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option: $1 (see --help)" ;;
    *) [ -z "$CONFIG" ] || die "only one configuration file, got $CONFIG and $1"; CONFIG="$1" ;;
  esac
  shift
done
[ -n "$CMD" ] || { usage >&2; exit 1; }
[ "$PURGE$PURGE_IMAGES" = 00 ] || [ "$CMD" = down ] || die "--purge and --purge-images belong to down"
[ "$(id -u)" = 0 ] || die "must run as root (it installs packages, starts the LXD daemon and creates a bridge)"

# ------------------------------------------------------------------ facts from the config
FACTS="$(node "$ROOT/scripts/host-facts.js" ${CONFIG:+"$CONFIG"})" || die "cannot read the configuration (problems above)"
eval "$FACTS"
STATE="$STATE_BASE/$HOST_ID"
CREATED="$STATE/created"
log "configuration: $CONFIG_FILE (host $HOST_ID, state $STATE)"

created() { [ -e "$CREATED/$1" ]; }
mark() { printf '%s\n' "${2:-1}" >"$CREATED/$1"; }
unmark() { rm -f "$CREATED/$1"; }

systemd_pid1() { [ -d /run/systemd/system ]; }
lxd_up() { command -v lxc >/dev/null 2>&1 && timeout 10 lxc query /1.0 >/dev/null 2>&1; }
pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
CONSUL_UNIT="matrix-lxd-consul-$HOST_ID"
CONSUL_URL="http://$CONSUL_IP:$CONSUL_HTTP_PORT"
consul_ours_running() {
  if [ "$(cat "$CREATED/consul" 2>/dev/null)" = systemd ]; then
    systemctl is-active --quiet "$CONSUL_UNIT" 2>/dev/null
  else
    pid_alive "$STATE/consul.pid"
  fi
}
MANAGEMENT_TOKEN_FILE="$STATE/consul/management-token"
# 401 "ACL support disabled" without ACLs; 403 with ACLs on and no token.
consul_acl_enabled() { [ "$(curl -sS -m 5 -o /dev/null -w '%{http_code}' "$CONSUL_URL/v1/acl/policies" 2>/dev/null)" = 403 ]; }
consul_leader() { curl -fsS -m 3 "$CONSUL_URL/v1/status/leader" 2>/dev/null | grep -q '"[0-9]'; }

# ------------------------------------------------------------------ rollback of this run
UNDO=()
on_exit() {
  local rc=$?
  if [ "$rc" != 0 ] && [ "${#UNDO[@]}" -gt 0 ]; then
    log "failed: undoing what this run created"
    local i
    for ((i = ${#UNDO[@]} - 1; i >= 0; i--)); do
      log "  undo: ${UNDO[$i]}"
      eval "${UNDO[$i]}" >/dev/null 2>&1 || log "  undo failed: ${UNDO[$i]}"
    done
  fi
  exit "$rc"
}
trap on_exit EXIT

# ------------------------------------------------------------------ up
port_users() { # port_users PROTO PORT ADDR… → lines of ss output for listeners on those addresses or wildcards
  local proto="$1" port="$2"; shift 2
  local flag=-Hltnp; [ "$proto" = udp ] && flag=-Hlunp
  local pats=("0.0.0.0:$port" "*:$port" "[::]:$port") a
  for a in "$@"; do case "$a" in *:*) pats+=("[$a]:$port") ;; *) pats+=("$a:$port") ;; esac; done
  ss $flag 2>/dev/null | awk -v pats="${pats[*]}" 'BEGIN { n = split(pats, p, " ") } { for (i = 1; i <= n; i++) if ($4 == p[i]) print }'
}

preflight() {
  local t; t=$(now_ms)
  log "checking that this machine can be the host"
  local problems=()
  case "$LXD_ADDRESS" in
    unix://|unix:///var/lib/lxd/unix.socket) ;;
    *) problems+=("host.lxd.address is $LXD_ADDRESS: host:up makes this machine the host, which the stack reaches as unix://") ;;
  esac
  [ "$CONSUL_IP" = "$GATEWAY4" ] || problems+=("host.consul.address is $CONSUL_ADDRESS: host:up runs Consul on the bridge address $GATEWAY4 only")
  [ "$CONSUL_SCHEME" = http ] || problems+=("host.consul scheme $CONSUL_SCHEME: host:up runs Consul over plain http on the bridge")
  [ "$LXD_PROJECT" = default ] || problems+=("host.lxd.project is $LXD_PROJECT: host:up sets up the default LXD project only")

  # The bridge name and the subnets must be free, or be this host's own bridge.
  local own_bridge=0
  if ip link show dev "$NETWORK" >/dev/null 2>&1; then
    if created network; then own_bridge=1
    elif lxd_up && lxc network show "$NETWORK" 2>/dev/null | grep -q '^managed: true'; then
      local have; have="$(lxc network get "$NETWORK" ipv4.address 2>/dev/null || true)"
      if [ "$have" = "$GATEWAY4/24" ]; then own_bridge=1; else
        problems+=("LXD network $NETWORK exists with ipv4.address ${have:-none}, not $GATEWAY4/24: rename host.network_name or delete it")
      fi
    else
      problems+=("interface $NETWORK exists and is not an LXD bridge: set host.network_name to a free name")
    fi
  fi
  local other
  other="$(ip -o -4 addr show 2>/dev/null | awk -v part="$IPV4_PART." -v net="$NETWORK" 'index($4, part) == 1 && $2 != net { print $2 " " $4 }')"
  [ -z "$other" ] || problems+=("subnet $IPV4_PART.0/24 is already on another interface ($other): choose another host.ipv4_network_part")
  other="$(ip -4 route show "$IPV4_PART.0/24" 2>/dev/null | grep -v "dev $NETWORK\b" || true)"
  [ -z "$other" ] || problems+=("a route for $IPV4_PART.0/24 exists ($other): choose another host.ipv4_network_part")
  if [ -n "$NETWORK6" ]; then
    local p6="${NETWORK6%/*}"; p6="${p6%0}"
    other="$(ip -o -6 addr show 2>/dev/null | awk -v part="$p6" -v net="$NETWORK" 'index($4, part) == 1 && $2 != net { print $2 " " $4 }')"
    [ -z "$other" ] || problems+=("IPv6 subnet $NETWORK6 is already on another interface ($other): choose another host.ipv6_prefix/ipv6_subnet")
  fi

  # Consul's ports on the bridge address (or a wildcard), unless our own agent holds them.
  if ! consul_ours_running; then
    local spec proto port users
    for spec in "tcp:$CONSUL_HTTP_PORT" "tcp:$CONSUL_DNS_PORT" "udp:$CONSUL_DNS_PORT" tcp:8300 tcp:8301 udp:8301 tcp:8302 udp:8302; do
      proto="${spec%%:*}" port="${spec#*:}"
      users="$(port_users "$proto" "$port" "$GATEWAY4")"
      [ -z "$users" ] || problems+=("$proto port $port (Consul) is in use: $(echo "$users" | awk '{ print $4, $NF }' | head -n1)")
    done
  fi
  if [ "${#problems[@]}" -gt 0 ]; then
    echo "[host] ERROR: this machine cannot be the host as configured; nothing was changed:" >&2
    local p; for p in "${problems[@]}"; do echo "  - $p" >&2; done
    exit 1
  fi
  [ "$own_bridge" = 1 ] && log "bridge $NETWORK is this host's own" || true
  log "checks passed ($(elapsed "$t"))"
}

start_daemon() {
  local t; t=$(now_ms)
  if lxd_up; then
    log "LXD daemon: running ($(lxc query /1.0 | python3 -c 'import json,sys; print(json.load(sys.stdin)["environment"]["server_version"])'))"
    return
  fi
  if systemd_pid1; then
    log "LXD daemon: systemctl start lxd.service"
    systemctl start lxd.service
    mark daemon systemd
    UNDO+=("systemctl stop lxd.service lxd.socket; rm -f '$CREATED/daemon'")
  else
    log "LXD daemon: starting /usr/bin/lxd (PID 1 is not systemd; log $STATE/lxd.log)"
    setsid nohup /usr/bin/lxd --group lxd --logfile="$STATE/lxd.log" >/dev/null 2>&1 </dev/null &
    echo $! >"$STATE/lxd.pid"
    mark daemon direct
    UNDO+=("lxd shutdown --timeout 60; rm -f '$CREATED/daemon' '$STATE/lxd.pid'")
  fi
  lxd waitready --timeout=60 || die "the LXD daemon did not become ready within 60 s (see $STATE/lxd.log)"
  log "LXD daemon: ready ($(elapsed "$t"))"
}

ensure_pool() {
  if lxc storage show "$STORAGE_POOL" >/dev/null 2>&1; then
    log "storage pool $STORAGE_POOL: present (driver $(lxc storage show "$STORAGE_POOL" | sed -n 's/^driver: //p'))"
  else
    lxc storage create "$STORAGE_POOL" dir >/dev/null
    mark pool
    UNDO+=("lxc storage delete '$STORAGE_POOL'; rm -f '$CREATED/pool'")
    log "storage pool $STORAGE_POOL: created (driver dir)"
  fi
  local profile
  for profile in $PROFILES; do
    if ! lxc profile show "$profile" >/dev/null 2>&1; then
      lxc profile create "$profile" >/dev/null
      mark "profile-$profile"
      UNDO+=("lxc profile delete '$profile'; rm -f '$CREATED/profile-$profile'")
      log "profile $profile: created"
    fi
    local root_pool
    root_pool="$(lxc profile device get "$profile" root pool 2>/dev/null || true)"
    if [ -n "$root_pool" ]; then
      log "profile $profile: root disk on pool $root_pool"
    else
      lxc profile device add "$profile" root disk path=/ pool="$STORAGE_POOL" >/dev/null
      mark "root-$profile"
      UNDO+=("lxc profile device remove '$profile' root; rm -f '$CREATED/root-$profile'")
      log "profile $profile: root disk added on pool $STORAGE_POOL"
    fi
  done
}

GUARD_TABLE="matrix_lxd_guard_$HOST_ID"
ensure_guard() {
  local want
  want="table inet $GUARD_TABLE {
  chain forward {
    type filter hook forward priority -10; policy accept;
    iifname \"$NETWORK\" oifname != \"$NETWORK\" counter drop comment \"container traffic stays on this machine\"
    oifname \"$NETWORK\" iifname != \"$NETWORK\" counter drop comment \"nothing from outside is forwarded to containers\"
  }
}"
  if nft list table inet "$GUARD_TABLE" >/dev/null 2>&1; then
    log "guard: nftables table inet $GUARD_TABLE present"
    return
  fi
  printf '%s\n' "$want" | nft -f -
  mark guard
  UNDO+=("nft delete table inet '$GUARD_TABLE'; rm -f '$CREATED/guard'")
  log "guard: nftables table inet $GUARD_TABLE drops what $NETWORK would forward off this machine"
}

ensure_network() {
  local t; t=$(now_ms)
  local want=(
    "ipv4.address=$GATEWAY4/24" "ipv4.nat=false" "ipv4.dhcp.ranges=$IPV4_PART.$DHCP_FIRST-$IPV4_PART.$DHCP_LAST"
    "raw.dnsmasq=no-resolv"
  )
  if [ -n "$GATEWAY6" ]; then
    want+=("ipv6.address=$GATEWAY6/${NETWORK6#*/}" "ipv6.nat=false" "ipv6.dhcp.stateful=true")
  else
    want+=("ipv6.address=none")
  fi
  if lxc network show "$NETWORK" >/dev/null 2>&1; then
    local kv k v have drift=()
    for kv in "${want[@]}"; do
      k="${kv%%=*}" v="${kv#*=}"
      have="$(lxc network get "$NETWORK" "$k" 2>/dev/null || true)"
      [ "$have" = "$v" ] || drift+=("$k=${have:-unset} (want $v)")
    done
    if [ "${#drift[@]}" -gt 0 ]; then
      if created network; then
        local kv2; for kv2 in "${want[@]}"; do lxc network set "$NETWORK" "$kv2"; done
        log "bridge $NETWORK: corrected ${drift[*]}"
      else
        die "LXD network $NETWORK exists with other settings: ${drift[*]}; host:up did not create it and leaves it alone"
      fi
    else
      log "bridge $NETWORK: present ($GATEWAY4/24${GATEWAY6:+, $GATEWAY6/${NETWORK6#*/}})"
    fi
    return
  fi
  lxc network create "$NETWORK" "${want[@]}" >/dev/null
  mark network
  UNDO+=("lxc network delete '$NETWORK'; rm -f '$CREATED/network'")
  log "bridge $NETWORK: created, $GATEWAY4/24, DHCP .$DHCP_FIRST-.$DHCP_LAST, no NAT${GATEWAY6:+; $GATEWAY6/${NETWORK6#*/} with stateful DHCPv6, no NAT} ($(elapsed "$t"))"
}

CONSUL_BIN=""
ensure_consul() {
  local t; t=$(now_ms)
  CONSUL_BIN="$(command -v consul || true)"
  [ -n "$CONSUL_BIN" ] || die "consul is not installed (scripts/toolchain.sh host-tools installs it)"
  if consul_ours_running; then
    log "Consul: running (datacenter $CONSUL_DATACENTER, $CONSUL_URL)"
  else
    local data="$STATE/consul/data"
    mkdir -p "$data"
    chmod 0700 "$STATE/consul"
    local args=(agent -server -bootstrap-expect=1 -datacenter="$CONSUL_DATACENTER" -node="$HOST_ID"
      -bind="$GATEWAY4" -advertise="$GATEWAY4" -client="$GATEWAY4"
      -http-port="$CONSUL_HTTP_PORT" -dns-port="$CONSUL_DNS_PORT" -domain="$CONSUL_DNS_DOMAIN"
      -data-dir="$data" -disable-host-node-id -log-level=warn)
    if [ "$CONSUL_ACL" = 1 ]; then
      # Agent tokens set through the API (the DNS token) survive restarts.
      args+=(-hcl='acl { enabled = true, default_policy = "deny", down_policy = "extend-cache", enable_token_persistence = true }')
    fi
    if systemd_pid1; then
      log "Consul: starting unit $CONSUL_UNIT (systemd-run)"
      systemd-run --unit="$CONSUL_UNIT" --property=Restart=on-failure "$CONSUL_BIN" "${args[@]}" >/dev/null
      mark consul systemd
      UNDO+=("systemctl stop '$CONSUL_UNIT'; rm -f '$CREATED/consul'")
    else
      log "Consul: starting $CONSUL_BIN agent -server (log $STATE/consul/consul.log)"
      setsid nohup "$CONSUL_BIN" "${args[@]}" >"$STATE/consul/consul.log" 2>&1 </dev/null &
      echo $! >"$STATE/consul.pid"
      mark consul direct
      UNDO+=("kill \$(cat '$STATE/consul.pid'); rm -f '$CREATED/consul' '$STATE/consul.pid'")
    fi
  fi
  local i
  for i in $(seq 1 60); do
    consul_leader && break
    consul_ours_running || die "the Consul agent exited (see $STATE/consul/consul.log)"
    sleep 0.5
  done
  consul_leader || die "Consul at $CONSUL_URL elected no leader within 30 s (see $STATE/consul/consul.log)"
  log "Consul: leader elected, $CONSUL_URL, DNS $CONSUL_IP:$CONSUL_DNS_PORT ($(elapsed "$t"))"
  if [ "$CONSUL_ACL" = 1 ]; then
    consul_acl_enabled || die "the running Consul agent at $CONSUL_URL has ACLs off, and the configuration wants them (host.consul.acl, default true): stop it (npm run host:down) and run host:up again, or set host.consul.acl: false"
    bash "$ROOT/scripts/consul-acl.sh" --url "$CONSUL_URL" --dir "$STATE/consul" --node "$HOST_ID" | sed 's/^\[consul-acl\]/[host]/' || die "Consul ACL setup failed (above)"
  elif consul_acl_enabled; then
    die "the running Consul agent at $CONSUL_URL enforces ACLs, and the configuration turns them off (host.consul.acl: false): the stack would write nothing; remove that setting, or host:down --purge and host:up again"
  fi
}

summary_up() {
  echo
  echo "Host $HOST_ID is ready for the stack in $CONFIG_FILE:"
  echo "  LXD            $(lxc query /1.0 | python3 -c 'import json,sys; print(json.load(sys.stdin)["environment"]["server_version"])') at unix://, storage pool $STORAGE_POOL, profiles $PROFILES"
  echo "  bridge         $NETWORK: $GATEWAY4/24 (DHCP .$DHCP_FIRST-.$DHCP_LAST)${GATEWAY6:+, $GATEWAY6/${NETWORK6#*/}}; no NAT, nothing forwarded off this machine"
  echo "  Consul         $CONSUL_URL, datacenter $CONSUL_DATACENTER, DNS $CONSUL_IP:$CONSUL_DNS_PORT, data $STATE/consul"
  if [ "$CONSUL_ACL" = 1 ]; then
    echo "  Consul ACLs    on (default deny); before cdktf deploy/destroy (npm run local:deploy does this itself):"
    echo "                   export CONSUL_HTTP_TOKEN=\"\$(cat $MANAGEMENT_TOKEN_FILE)\""
  else
    echo "  Consul ACLs    off (host.consul.acl: false): every container can write Consul's KV"
  fi
  [ "$PUBLIC_IPV4" = "$GATEWAY4" ] || echo "  note           host.public_ipv4 is $PUBLIC_IPV4: proxy devices listen there; it is not the bridge address"
  echo "  images:"
  local c key img
  for c in $CONTAINERS; do
    key="IMAGE_$(echo "$c" | tr 'a-z-' 'A-Z_')"; img="${!key}"
    if [ -z "$img" ]; then
      printf '    %-14s stock image (%s): installs software at first boot, needs the internet\n' "$c" "images:debian/12/cloud"
    elif lxc image info "$img" >/dev/null 2>&1; then
      printf '    %-14s %s (present)\n' "$c" "$img"
    else
      printf '    %-14s %s (MISSING: run npm run images)\n' "$c" "$img"
    fi
  done
  echo "Done in $(elapsed "$T_START"). Undo with: npm run host:down${CONFIG:+ -- $CONFIG}"
}

cmd_up() {
  local t; t=$(now_ms)
  log "step 1/7: tools"
  bash "$ROOT/scripts/toolchain.sh" host-tools | sed 's/^\[toolchain\]/[host]  /'
  log "step 1/7: tools ready ($(elapsed "$t"))"
  log "step 2/7: checks"; preflight
  mkdir -p "$CREATED"
  chmod 0700 "$STATE_BASE" "$STATE"
  log "step 3/7: LXD daemon"; start_daemon
  log "step 4/7: storage"; ensure_pool
  log "step 5/7: guard"; ensure_guard
  log "step 6/7: bridge"; ensure_network
  log "step 7/7: Consul"; ensure_consul
  UNDO=()
  summary_up
}

# ------------------------------------------------------------------ down
cmd_down() {
  if [ -z "$(ls -A "$CREATED" 2>/dev/null)" ]; then
    log "nothing recorded as created by host:up in $STATE: nothing to do"
    return
  fi
  local did=() kept=()
  if ! lxd_up && { created network || created pool || [ "$PURGE_IMAGES" = 1 ]; } && ! created daemon; then
    die "the LXD daemon is not running, and host:up did not start it: start it so that host:down can remove the bridge and pool"
  fi
  local daemon_started_here=0
  if ! lxd_up && created daemon; then
    # A recorded daemon that is not running (reboot): start it to clean up, stop it again after.
    setsid nohup /usr/bin/lxd --group lxd --logfile="$STATE/lxd.log" >/dev/null 2>&1 </dev/null &
    lxd waitready --timeout=60
    daemon_started_here=1
  fi

  if lxd_up && lxc network show "$NETWORK" >/dev/null 2>&1; then
    local users
    users="$(lxc network show "$NETWORK" | sed -n 's|^- /1.0/instances/\([^?]*\).*|\1|p' | tr '\n' ' ')"
    [ -z "$users" ] || die "containers still use bridge $NETWORK: $users- destroy the stack first (cdktf destroy), then run host:down again; nothing was changed"
  fi

  # Consul
  if created consul; then
    if [ "$(cat "$CREATED/consul")" = systemd ]; then
      systemctl stop "$CONSUL_UNIT" >/dev/null 2>&1 || true
    elif pid_alive "$STATE/consul.pid"; then
      local pid; pid="$(cat "$STATE/consul.pid")"
      kill "$pid" 2>/dev/null || true
      local i; for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$STATE/consul.pid"; unmark consul
    did+=("stopped Consul")
  fi
  if [ -d "$STATE/consul" ]; then
    if [ "$PURGE" = 1 ]; then rm -rf "$STATE/consul"; did+=("deleted Consul's data ($STATE/consul)")
    else kept+=("Consul's data (KV, catalog) in $STATE/consul (--purge deletes it)"); fi
  fi

  if created network; then
    if ! lxc network delete "$NETWORK" >/dev/null 2>&1 && lxc network show "$NETWORK" >/dev/null 2>&1; then
      die "could not delete bridge $NETWORK"
    fi
    unmark network; did+=("deleted bridge $NETWORK")
  fi
  if created guard; then
    nft delete table inet "$GUARD_TABLE" 2>/dev/null || true
    unmark guard; did+=("deleted nftables table inet $GUARD_TABLE")
  fi

  if lxd_up; then
    if [ "$PURGE_IMAGES" = 1 ]; then
      local fp n=0
      for fp in $(lxc query /1.0/images?recursion=1 | python3 -c '
import json, sys
for i in json.load(sys.stdin):
    if i.get("properties", {}).get("builder") == "matrix-lxd-images":
        print(i["fingerprint"])'); do
        lxc image delete "$fp" && n=$((n + 1))
      done
      [ "$n" = 0 ] || did+=("deleted $n images built by npm run images")
    fi
    # Volumes are only looked at in a pool host:up created; another pool is not ours to empty.
    local volumes=""
    if created pool; then
      volumes="$(lxc storage volume list "$STORAGE_POOL" --format csv -c tn 2>/dev/null | awk -F, '$1 == "custom" { print $2 }' | tr '\n' ' ' || true)"
    fi
    if [ -n "$volumes" ] && [ "$PURGE" = 1 ]; then
      local v; for v in $volumes; do lxc storage volume delete "$STORAGE_POOL" "$v"; done
      did+=("deleted custom volumes: $volumes")
      volumes=""
    fi
    if [ -n "$volumes" ]; then
      kept+=("custom volumes (data) in pool $STORAGE_POOL: $volumes(--purge deletes them)")
      kept+=("storage pool $STORAGE_POOL and the profiles' root disks, which hold them")
    else
      local profile
      for profile in $PROFILES; do
        if created "root-$profile"; then lxc profile device remove "$profile" root >/dev/null; unmark "root-$profile"; did+=("removed profile $profile's root disk"); fi
        if created "profile-$profile"; then lxc profile delete "$profile" >/dev/null; unmark "profile-$profile"; did+=("deleted profile $profile"); fi
      done
      if created pool; then lxc storage delete "$STORAGE_POOL" >/dev/null; unmark pool; did+=("deleted storage pool $STORAGE_POOL"); fi
    fi
    if [ "$PURGE_IMAGES" = 0 ]; then
      local imgs
      imgs="$(lxc query /1.0/images?recursion=1 | python3 -c '
import json, sys
print(" ".join(sorted(i["properties"].get("stable_alias", i["fingerprint"][:12]) for i in json.load(sys.stdin) if i.get("properties", {}).get("builder") == "matrix-lxd-images")))')"
      [ -z "$imgs" ] || kept+=("images (a cache for npm run images): $imgs (--purge-images deletes them)")
    fi
  fi

  if created daemon || [ "$daemon_started_here" = 1 ]; then
    if [ "$(cat "$CREATED/daemon" 2>/dev/null)" = systemd ]; then
      systemctl stop lxd.service lxd.socket >/dev/null 2>&1 || true
    else
      lxd shutdown --timeout 60 >/dev/null 2>&1 || true
    fi
    rm -f "$STATE/lxd.pid"; unmark daemon
    # LXD leaves its (then empty) firewall table behind.
    if nft list table inet lxd 2>/dev/null | grep -q 'chain'; then :; else nft delete table inet lxd 2>/dev/null || true; fi
    did+=("stopped the LXD daemon")
  fi

  echo
  echo "Host $HOST_ID taken down in $(elapsed "$T_START"):"
  local d; for d in "${did[@]}"; do echo "  - $d"; done
  [ "${#did[@]}" -gt 0 ] || echo "  - nothing to remove"
  if [ "${#kept[@]}" -gt 0 ]; then
    echo "Kept:"
    for d in "${kept[@]}"; do echo "  - $d"; done
  fi
  echo "Left installed: the Debian packages (lxd, iptables, nftables, debootstrap, zstd, consul)."
}

case "$CMD" in
  up) cmd_up ;;
  down) cmd_down ;;
esac
