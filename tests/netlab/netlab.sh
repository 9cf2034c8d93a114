# netlab.sh — a network on this one machine, in network namespaces (bash library).
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Source it from bash (`. tests/netlab/netlab.sh`), or use it through the
# `tests/netlab/netlab` command. See tests/netlab/README.md for the full API.
#
#   netlab_new                 a lab: a bridge (the "internet") in the root
#                              namespace, state in $NETLAB_STATE/$NETLAB_LAB;
#                              removed on EXIT/INT/TERM of this shell
#   NETLAB_KEEP_LOGS=DIR         the lab's state and logs are copied to DIR before it goes
#   netlab_host NAME [IP]      a host: namespace $NETLAB_LAB-NAME, eth0 on the
#                              bridge with IP (default: next of $NETLAB_NET.2..)
#   netlab_loss NAME PCT [udp|all]  drop PCT% of the UDP (or all) packets arriving on NAME's eth0
#   netlab_drops NAME          packets dropped so far (netlab_counter NAME udp-in: UDP let in)
#   netlab_delay NAME MS [JITTER_MS] [both|in|out]
#                              hold NAME's packets MS ms each way (NFQUEUE delayer)
#   netlab_rate NAME OUT [IN]  tc tbf on NAME's link: OUT leaving it, IN arriving
#   netlab_exec NAME CMD...    run CMD in NAME's namespace
#   netlab_nat NAME [--symmetric|--port-preserving]   a NAT router (see below)
#   netlab_nat_rebind NAME     the router loses its UDP bindings; new ones on other ports
#   netlab_destroy             tear it down (the trap does it for you)
#   netlab_cleanup [--all]     remove labs whose owner process is gone (all: every lab)
#
# Every name the lab creates starts with "ptnl" and a random 4-hex-digit id
# (namespaces "ptnlXXXX-NAME", links "ptnlXXXXbr" and "ptnlXXXXhN" in the root
# namespace); addresses are the lab's own private subnet (10.77.0.0/24 unless
# NETLAB_NET says otherwise), on a bridge that no other interface joins and
# that has no address in the root namespace: nothing leaves the lab.

NETLAB_STATE=${NETLAB_STATE:-/run/netlab}
NETLAB_NET=${NETLAB_NET:-10.77.0}
NETLAB_DIR=${NETLAB_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}

netlab_log () { [ -n "${NETLAB_QUIET:-}" ] || echo "netlab: $*" >&2; }
netlab_die () { echo "netlab: $*" >&2; return 1; }

# 0 when the lab can run here: root, ip netns, veth, bridge, nft, iptables.
# Prints why not on stderr (tests exit 77 then).
netlab_check () {
  [ "$(id -u)" -eq 0 ] || { netlab_die "needs root"; return 1; }
  local t
  for t in ip nft iptables tc; do
    command -v "$t" >/dev/null || { netlab_die "$t is missing (scripts/deps installs it)"; return 1; }
  done
  t=ptnlchk$$
  if ! ip netns add "$t" 2>/dev/null; then
    netlab_die "cannot create a network namespace"; return 1
  fi
  if ! ip netns exec "$t" nft add table inet netlab 2>/dev/null; then
    ip netns del "$t"; netlab_die "nft does not work in a namespace"; return 1
  fi
  if ! ip netns exec "$t" iptables -A OUTPUT -o lo -j NFQUEUE --queue-num 0 --queue-bypass 2>/dev/null; then
    ip netns del "$t"; netlab_die "iptables NFQUEUE does not work in a namespace"; return 1
  fi
  ip netns del "$t"
}

# the NFQUEUE delayer: $NETLAB_DELAY, the meson build's, or compiled here
netlab_delay_bin () {
  local b
  for b in "${NETLAB_DELAY:-}" "$NETLAB_DIR/../../build/tests/netlab/netlab-delay"; do
    [ -n "$b" ] && [ -x "$b" ] && { echo "$b"; return 0; }
  done
  b=$NETLAB_STATE/netlab-delay
  if [ ! -x "$b" ] || [ "$NETLAB_DIR/netlab-delay.c" -nt "$b" ]; then
    mkdir -p "$NETLAB_STATE"
    # shellcheck disable=SC2046
    cc -std=c11 -O2 -Wall -Wextra -o "$b.tmp.$$" "$NETLAB_DIR/netlab-delay.c" \
      $(pkg-config --cflags --libs libnetfilter_queue) &&
      mv -f "$b.tmp.$$" "$b" ||
      { rm -f "$b.tmp.$$"; netlab_die "cannot build netlab-delay (libnetfilter-queue-dev?)"; return 1; }
  fi
  echo "$b"
}

# "PID STARTTIME" of a live process, to recognise it later despite pid reuse
netlab_proc_id () {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  # a zombie is gone (this machine's init may reap late)
  case ${stat%% *} in Z|X|x) return 1 ;; esac
  # field 22 (starttime) is the 20th after "comm)"
  echo "$1 $(echo "$stat" | cut -d' ' -f20)"
}

netlab_owner_alive () {  # STATE_DIR
  local owner pid
  owner=$(cat "$1/owner" 2>/dev/null) || return 1
  pid=${owner%% *}
  [ "$(netlab_proc_id "$pid" 2>/dev/null)" = "$owner" ]
}

# netlab_new [OWNER_PID]: a new lab, owned by OWNER_PID (default: this shell).
# Sets NETLAB_LAB. Without NETLAB_NO_TRAP, traps EXIT INT TERM to destroy it.
netlab_new () {
  local owner=${1:-$BASHPID} i id
  mkdir -p "$NETLAB_STATE"
  netlab_cleanup           # leftovers of killed runs
  for i in $(seq 20); do
    id=ptnl$(od -An -N2 -tx2 /dev/urandom | tr -d ' ')
    [ ! -e "$NETLAB_STATE/$id" ] && ! ip link show "${id}br" >/dev/null 2>&1 && break
    id=
  done
  [ -n "$id" ] || { netlab_die "no free lab id"; return 1; }
  # the state directory appears complete (with its owner) or not at all
  mkdir "$NETLAB_STATE/.$id.$$" || return 1
  netlab_proc_id "$owner" >"$NETLAB_STATE/.$id.$$/owner"
  echo 1 >"$NETLAB_STATE/.$id.$$/next"
  : >"$NETLAB_STATE/.$id.$$/hosts"
  mv -T "$NETLAB_STATE/.$id.$$" "$NETLAB_STATE/$id" || { rm -rf "$NETLAB_STATE/.$id.$$"; return 1; }
  NETLAB_LAB=$id
  export NETLAB_LAB
  ip link add "${id}br" type bridge &&
    ip link set "${id}br" up || { netlab_destroy; return 1; }
  if [ -z "${NETLAB_NO_TRAP:-}" ]; then
    trap 'netlab_destroy' EXIT
    trap 'netlab_destroy; trap - INT; kill -INT $BASHPID' INT
    trap 'netlab_destroy; trap - TERM; kill -TERM $BASHPID' TERM
  fi
  netlab_log "lab $id on $NETLAB_NET.0/24"
}

netlab_ns () { echo "$NETLAB_LAB-$1"; }

netlab_ip () {
  local n ip
  while read -r n ip _; do [ "$n" = "$1" ] && { echo "$ip"; return 0; }; done \
    <"$NETLAB_STATE/$NETLAB_LAB/hosts"
  netlab_die "no host $1 in lab $NETLAB_LAB"
}

netlab_hosts () { cut -d' ' -f1 "$NETLAB_STATE/$NETLAB_LAB/hosts"; }

netlab_exec () { local h=$1; shift; ip netns exec "$(netlab_ns "$h")" "$@"; }

# netlab_host NAME [--behind NAT] [IP]: prints the IP. Behind a NAT router
# (netlab_nat), the host's eth0 is on the router's home network (its IP in
# the router's subnet, default route through the router).
netlab_host () {
  local name=$1 ip= nat= st=$NETLAB_STATE/$NETLAB_LAB idx ns veth k gw= outer_ns=
  shift
  while [ $# -gt 0 ]; do
    case $1 in
      --behind) nat=$2; shift 2 ;;
      *) ip=$1; shift ;;
    esac
  done
  [ -n "${NETLAB_LAB:-}" ] && [ -d "$st" ] || { netlab_die "no lab: netlab_new first"; return 1; }
  [[ $name =~ ^[A-Za-z0-9_]{1,20}$ ]] || { netlab_die "bad host name '$name'"; return 1; }
  grep -q "^$name " "$st/hosts" && { netlab_die "host $name exists"; return 1; }
  if [ -n "$nat" ]; then
    k=$(awk -v n="$nat" '$1 == n { print $3 }' "$st/nats" 2>/dev/null)
    [ -n "$k" ] || { netlab_die "no NAT router $nat (netlab_nat first)"; return 1; }
    outer_ns=$(netlab_ns "$nat"); gw=$(netlab_home_net "$k").1
  fi
  idx=$(cat "$st/next"); echo $((idx + 1)) >"$st/next"
  if [ -z "$ip" ]; then
    [ -n "$nat" ] && ip=$(netlab_home_net "$k").$((idx + 1)) || ip=$NETLAB_NET.$((idx + 1))
  fi
  [ "$idx" -lt 250 ] || { netlab_die "too many hosts"; return 1; }
  ns=$(netlab_ns "$name"); veth=${NETLAB_LAB}h$idx
  echo "$name $ip $idx ${nat:--}" >>"$st/hosts"
  ip netns add "$ns" || return 1
  if [ -n "$nat" ]; then
    # the outer end in the router's namespace, on its home bridge "lan"
    ip -n "$outer_ns" link add "h$idx" type veth peer name eth0 netns "$ns" || return 1
    ip -n "$outer_ns" link set "h$idx" master lan up || return 1
  else
    ip link add "$veth" type veth peer name eth0 netns "$ns" || return 1
    ip link set "$veth" master "${NETLAB_LAB}br" up
  fi
  ip netns exec "$ns" sh -c "
    sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 2>/dev/null
    ip link set lo up && ip addr add $ip/24 dev eth0 && ip link set eth0 up" || return 1
  [ -z "$gw" ] || ip -n "$ns" route add default via "$gw" || return 1
  # the lab's netfilter table: loss goes in chain 'input' (before iptables'
  # filter INPUT, where the delayer's NFQUEUE rule sits)
  ip netns exec "$ns" nft -f - <<EOF || return 1
table inet netlab {
  chain input { type filter hook input priority filter - 10; policy accept; }
}
EOF
  netlab_loss "$name" 0 || return 1
  echo "$ip"
}

# netlab_loss NAME PCT [udp|all]: drop PCT% (steps of 0.01) of the UDP (or
# all) packets arriving on NAME's eth0, each independently (nft numgen
# random), before the delayer sees them. 0 removes the loss.
netlab_loss () {
  local name=$1 pct=$2 proto=${3:-udp} ns per10k match
  ns=$(netlab_ns "$name")
  per10k=$(awk -v p="$pct" 'BEGIN { if (p < 0 || p > 100) exit 1; printf "%d", p * 100 + 0.5 }') ||
    { netlab_die "loss must be 0..100"; return 1; }
  case $proto in
    udp) match="meta l4proto udp" ;;
    all) match="" ;;
    *) netlab_die "loss: udp or all, not $proto"; return 1 ;;
  esac
  ip netns exec "$ns" nft flush chain inet netlab input || return 1
  if [ "$per10k" -ge 10000 ]; then
    # 100%: numgen's "< 10000" is out of its range
    # shellcheck disable=SC2086
    ip netns exec "$ns" nft add rule inet netlab input iifname eth0 $match \
      counter drop comment '"loss"' || return 1
  elif [ "$per10k" -gt 0 ]; then
    # shellcheck disable=SC2086
    ip netns exec "$ns" nft add rule inet netlab input iifname eth0 $match \
      numgen random mod 10000 "<" "$per10k" counter drop comment '"loss"' || return 1
  fi
  ip netns exec "$ns" nft add rule inet netlab input iifname eth0 meta l4proto udp \
    counter comment '"udp-in"'
}

# netlab_counter NAME loss|udp-in: packets the loss rule dropped so far | UDP
# packets that passed it (counted since the last netlab_loss)
netlab_counter () {
  netlab_exec "$1" nft list chain inet netlab input 2>/dev/null |
    awk -v c="\"$2\"" '$0 ~ "comment " c { for (i = 1; i < NF; i++) if ($i == "packets") n += $(i + 1) }
      END { print n + 0 }'
}
netlab_drops () { netlab_counter "$1" loss; }
# netlab_counter_bytes NAME COUNTER: the bytes of the packets it counted
netlab_counter_bytes () {
  netlab_exec "$1" nft list chain inet netlab input 2>/dev/null |
    awk -v c="\"$2\"" '$0 ~ "comment " c { for (i = 1; i < NF; i++) if ($i == "bytes") n += $(i + 1) }
      END { print n + 0 }'
}

# netlab_delay NAME MS [JITTER_MS] [both|in|out]: every packet leaving (out)
# and/or arriving on (in) NAME's eth0 waits MS ms (± JITTER_MS, uniform; order
# kept) in an NFQUEUE delayer running in NAME's namespace. "both" (default):
# a ping from NAME to an undelayed host takes 2*MS more; between two hosts
# with MS each, the round trip gains 4*MS. MS 0 removes the delay.
netlab_delay () {
  local name=$1 ms=$2 jitter=${3:-0} dir=${4:-both} ns st bin d q chain iface pid i
  ns=$(netlab_ns "$name"); st=$NETLAB_STATE/$NETLAB_LAB
  bin=$(netlab_delay_bin) || return 1
  for d in out in; do
    [ "$d" = out ] && { q=0; chain=OUTPUT; iface="-o eth0"; } || { q=1; chain=INPUT; iface="-i eth0"; }
    # shellcheck disable=SC2086
    while ip netns exec "$ns" iptables -D "$chain" $iface -j NFQUEUE --queue-num "$q" 2>/dev/null; do :; done
    if [ -f "$st/delay-$name-$d.pid" ]; then
      kill "$(cat "$st/delay-$name-$d.pid")" 2>/dev/null
      rm -f "$st/delay-$name-$d.pid"
    fi
    [ "$dir" = both ] || [ "$dir" = "$d" ] || continue
    awk -v m="$ms" 'BEGIN { exit !(m > 0) }' || continue
    ip netns exec "$ns" "$bin" -q "$q" -d "$ms" -j "$jitter" \
      >"$st/delay-$name-$d.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$st/delay-$name-$d.pid"
    for i in $(seq 100); do
      grep -q '^ready' "$st/delay-$name-$d.log" 2>/dev/null && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    grep -q '^ready' "$st/delay-$name-$d.log" ||
      { cat "$st/delay-$name-$d.log" >&2; netlab_die "delayer for $name did not start"; return 1; }
    # shellcheck disable=SC2086
    ip netns exec "$ns" iptables -A "$chain" $iface -j NFQUEUE --queue-num "$q" || return 1
  done
}

# netlab_rate NAME OUT [IN]: token bucket (tc tbf) on NAME's link, e.g. 2mbit;
# OUT shapes what NAME sends (its eth0), IN what it receives (the bridge side
# of its veth). "-" or "0" leaves that direction unshaped.
netlab_rate () {
  local name=$1 out=$2 in=${3:-0} ns idx nat veth outer=()
  ns=$(netlab_ns "$name")
  read -r idx nat < <(awk -v n="$name" '$1 == n { print $3, $4 }' "$NETLAB_STATE/$NETLAB_LAB/hosts")
  veth=${NETLAB_LAB}h$idx
  # a host behind a NAT router: its veth's outer end is in the router's namespace
  if [ -n "$nat" ] && [ "$nat" != - ]; then veth=h$idx; outer=(ip netns exec "$(netlab_ns "$nat")"); fi
  ip netns exec "$ns" tc qdisc del dev eth0 root 2>/dev/null
  "${outer[@]}" tc qdisc del dev "$veth" root 2>/dev/null
  # burst: 10 ms at the rate, at least 2 full packets; queue up to 100 ms
  [ "$out" = 0 ] || [ "$out" = - ] ||
    ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "$out" burst 32kb latency 100ms || return 1
  [ "$in" = 0 ] || [ "$in" = - ] ||
    "${outer[@]}" tc qdisc add dev "$veth" root tbf rate "$in" burst 32kb latency 100ms || return 1
}

# the home network of the K-th NAT router: ${NETLAB_NET%.*}.(100 + K), a /24
netlab_home_net () { echo "${NETLAB_NET%.*}.$((100 + $1))"; }

# netlab_nat NAME [--symmetric|--port-preserving] [PUBLIC_IP]: a NAT router,
# prints its public IP. A host on the bridge (namespace $NETLAB_LAB-NAME, eth0
# with PUBLIC_IP) that forwards and masquerades (nft, table ip netlab_nat) for
# a home network: a bridge "lan" in its namespace with the subnet
# netlab_home_net K (.1 is the router); `netlab_host H --behind NAME` puts
# hosts there. Both kinds filter by address and port (conntrack lets in only
# replies; nothing from the outside is forwarded to a home host unasked):
#   --port-preserving (default): plain masquerade keeps a socket's source
#     port towards every destination (endpoint-independent mapping): STUN's
#     server-reflexive candidate works for every peer;
#   --symmetric: masquerade random,fully-random: a new random public port
#     for each destination (address-and-port-dependent mapping): a peer sees
#     another port than the STUN server saw, so only TURN gets through.
netlab_nat () {
  local name=$1 mode=port-preserving ip= st=$NETLAB_STATE/$NETLAB_LAB k ns home flags=
  shift
  while [ $# -gt 0 ]; do
    case $1 in
      --symmetric) mode=symmetric; shift ;;
      --port-preserving) mode=port-preserving; shift ;;
      *) ip=$1; shift ;;
    esac
  done
  # shellcheck disable=SC2086
  ip=$(netlab_host "$name" $ip) || return 1
  k=$(($(cat "$st/nats" 2>/dev/null | wc -l) + 1))
  echo "$name $mode $k" >>"$st/nats"
  ns=$(netlab_ns "$name"); home=$(netlab_home_net "$k")
  [ "$mode" = symmetric ] && flags="random,fully-random"
  ip -n "$ns" link add lan type bridge &&
    ip -n "$ns" addr add "$home.1/24" dev lan &&
    ip -n "$ns" link set lan up &&
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 || return 1
  ip netns exec "$ns" nft -f - <<EOF || return 1
table ip netlab_nat {
  chain postrouting { type nat hook postrouting priority srcnat; policy accept;
    oifname eth0 ip saddr $home.0/24 masquerade $flags
  }
  chain forward { type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname lan oifname eth0 accept
  }
  # unasked UDP for the router itself is dropped before conntrack confirms
  # it: a peer's check arriving before the home host's own first packet
  # would otherwise hold the tuple, and masquerade would pick another port
  chain input { type filter hook input priority filter; policy accept;
    iifname eth0 meta l4proto udp ct state new drop
  }
}
EOF
  echo "$ip"
}

# netlab_nat_rebind NAME: the router loses its UDP bindings, as when they
# expire (its conntrack UDP entries are deleted; TCP ones stay, so the
# signalling connections live on) and maps UDP to other public ports from
# now on (masquerade to a port range none of its earlier mappings was in:
# 20000-29999, then 10000-19999, alternately). A peer behind it keeps its
# sockets but is seen from another address: its ICE pairs die. Needs
# conntrack (scripts/deps).
netlab_nat_rebind () {
  local name=$1 st=$NETLAB_STATE/$NETLAB_LAB k mode ns home n range flags=
  command -v conntrack >/dev/null || { netlab_die "conntrack is missing (scripts/deps)"; return 1; }
  read -r mode k < <(awk -v n="$name" '$1 == n { print $2, $3 }' "$st/nats" 2>/dev/null)
  [ -n "$k" ] || { netlab_die "no NAT router $name"; return 1; }
  ns=$(netlab_ns "$name"); home=$(netlab_home_net "$k")
  n=$(($(cat "$st/rebind-$name" 2>/dev/null || echo 0) + 1)); echo "$n" >"$st/rebind-$name"
  [ $((n % 2)) -eq 1 ] && range=20000-29999 || range=10000-19999
  [ "$mode" = symmetric ] && flags="random,fully-random"
  # the new rule before the bindings go: no packet is mapped the old way in between
  ip netns exec "$ns" nft -f - <<EOF || return 1
flush chain ip netlab_nat postrouting
add rule ip netlab_nat postrouting oifname eth0 ip saddr $home.0/24 meta l4proto udp masquerade to :$range $flags
add rule ip netlab_nat postrouting oifname eth0 ip saddr $home.0/24 masquerade $flags
EOF
  ip netns exec "$ns" conntrack -D -p udp >/dev/null 2>&1
  netlab_log "NAT $name: UDP bindings lost, new ones on ports $range"
}

# netlab_nat_mode NAME: symmetric | port-preserving (nothing if no such router)
netlab_nat_mode () { awk -v n="$1" '$1 == n { print $2 }' "$NETLAB_STATE/$NETLAB_LAB/nats" 2>/dev/null; }

# netlab_coturn HOST [--stun-only|--no-stun] [--secret S] [--user U:P] [--port P]:
# runs Debian's coturn (turnserver) in HOST's namespace, listening and
# relaying only on HOST's lab address (UDP and TCP, port P, default 3478),
# with a configuration file of the lab's own ($st/coturn-HOST.conf; nothing
# of /etc/turnserver.conf is read): realm "netlab", long-term credentials,
# no TLS/DTLS, no CLI. Credentials: TURN REST ones (use-auth-secret,
# static-auth-secret S, default "netlab-secret"), or with --user a static
# user U:P instead (coturn cannot mix the two: a shared secret overrides
# static users; run two coturns for both). --stun-only:
# a STUN server that refuses TURN; --no-stun: a TURN server that ignores
# STUN Binding requests. Logs to $st/coturn-HOST.log; returns once it
# listens. netlab_destroy ends it with every other process of the lab.
netlab_coturn () {
  local host=$1 st=$NETLAB_STATE/$NETLAB_LAB ip port=3478 secret=netlab-secret user= mode= \
    conf pid i auth
  shift
  while [ $# -gt 0 ]; do
    case $1 in
      --stun-only) mode=stun-only; shift ;;
      --no-stun) mode=no-stun; shift ;;
      --secret) secret=$2; shift 2 ;;
      --user) user=$2; shift 2 ;;
      --port) port=$2; shift 2 ;;
      *) netlab_die "netlab_coturn: unknown option $1"; return 1 ;;
    esac
  done
  command -v turnserver >/dev/null ||
    { netlab_die "turnserver is missing: install coturn (scripts/deps)"; return 1; }
  ip=$(netlab_ip "$host") || return 1
  conf=$st/coturn-$host.conf
  if [ -n "$user" ]; then auth="user=$user"
  else auth="use-auth-secret
static-auth-secret=$secret"; fi
  cat >"$conf" <<EOF
# netlab: coturn in namespace $(netlab_ns "$host") only
listening-ip=$ip
relay-ip=$ip
listening-port=$port
realm=netlab
fingerprint
lt-cred-mech
$auth
userdb=$st/coturn-$host.db
no-cli
no-tls
no-dtls
no-multicast-peers
no-stdout-log
simple-log
log-file=$st/coturn-$host.log
pidfile=$st/coturn-$host.turnpid
verbose
${mode}
EOF
  ip netns exec "$(netlab_ns "$host")" turnserver -c "$conf" >"$st/coturn-$host.out" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$st/coturn-$host.pid"
  for i in $(seq 100); do
    ip netns exec "$(netlab_ns "$host")" ss -Hlun "sport = :$port" 2>/dev/null | grep -q . && {
      netlab_log "coturn on $ip:$port (${mode:-stun+turn}, pid $pid)"; return 0; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  tail -5 "$st/coturn-$host.log" "$st/coturn-$host.out" >&2 2>/dev/null
  netlab_die "coturn in $host did not start"
}

# netlab_destroy [LAB]: kill what runs in its namespaces, delete them, the
# veths, the bridge and the state directory.
netlab_destroy () {
  local lab=${1:-${NETLAB_LAB:-}} ns pids l
  [ -n "$lab" ] || return 0
  [[ $lab =~ ^ptnl[0-9a-f]{4}$ ]] || { netlab_die "not a lab id: $lab"; return 1; }
  for ns in $(ip netns list 2>/dev/null | awk -v p="$lab-" 'index($1, p) == 1 { print $1 }'); do
    pids=$(ip netns pids "$ns" 2>/dev/null)
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -TERM $pids 2>/dev/null
  done
  for l in $(seq 20); do
    pids=
    for ns in $(ip netns list 2>/dev/null | awk -v p="$lab-" 'index($1, p) == 1 { print $1 }'); do
      pids="$pids $(ip netns pids "$ns" 2>/dev/null)"
    done
    [ -z "${pids// /}" ] && break
    # shellcheck disable=SC2086
    [ "$l" -lt 20 ] && sleep 0.1 || kill -KILL $pids 2>/dev/null
  done
  for ns in $(ip netns list 2>/dev/null | awk -v p="$lab-" 'index($1, p) == 1 { print $1 }'); do
    ip netns del "$ns" 2>/dev/null
  done
  for l in $(ip -o link show 2>/dev/null | awk -F': ' '{ print $2 }' | cut -d@ -f1 |
      grep -E "^${lab}(br|h[0-9]+)$"); do
    ip link del "$l" 2>/dev/null
  done
  # NETLAB_KEEP_LOGS=DIR: the lab's state (the peers' logs) is copied there first
  if [ -n "${NETLAB_KEEP_LOGS:-}" ]; then
    mkdir -p "$NETLAB_KEEP_LOGS" && cp -r "${NETLAB_STATE:?}/$lab" "$NETLAB_KEEP_LOGS/" 2>/dev/null
  fi
  rm -rf "${NETLAB_STATE:?}/$lab"
  [ "$lab" != "${NETLAB_LAB:-}" ] || unset NETLAB_LAB
  netlab_log "lab $lab removed"
}

# netlab_cleanup [--all]: remove the labs whose owner process is gone, and
# any ptnlXXXX namespace or link without a state directory; --all: every lab.
netlab_cleanup () {
  local all=${1:-} lab labs
  labs=$( { ls "$NETLAB_STATE" 2>/dev/null
      ip netns list 2>/dev/null | awk '{ print $1 }' | grep -oE '^ptnl[0-9a-f]{4}-' | tr -d -
      ip -o link show 2>/dev/null | awk -F': ' '{ print $2 }' | grep -oE '^ptnl[0-9a-f]{4}(br|h)' |
        sed 's/\(br\|h\)$//'
    } | grep -E '^ptnl[0-9a-f]{4}$' | sort -u)
  # netlab_check's probe namespaces, ptnlchkPID, of a check that was killed
  for lab in $(ip netns list 2>/dev/null | awk '{ print $1 }' | grep -E '^ptnlchk[0-9]+$'); do
    kill -0 "${lab#ptnlchk}" 2>/dev/null && [ "$all" != --all ] || ip netns del "$lab" 2>/dev/null
  done
  for lab in $labs; do
    [ "$lab" = "${NETLAB_LAB:-}" ] && [ "$all" != --all ] && continue
    if [ "$all" = --all ] || ! netlab_owner_alive "$NETLAB_STATE/$lab"; then
      NETLAB_QUIET=${NETLAB_QUIET:-} netlab_destroy "$lab"
    fi
  done
}
