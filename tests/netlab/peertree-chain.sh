# peertree-chain.sh — a peertree chain in the network lab (bash library).
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Source netlab.sh and this file, then:
#
#   netlab_new                    # the lab (trap removes it)
#   ptchain_hosts 4               # hosts "server", "src", "v1".."v4"; the server runs
#   ptchain_links 2 40            # 2% incoming UDP loss, 40 ms RTT on every peer link
#   ptchain_start                 # source, then v1..v4 joined one after the other:
#                                 # a chain src -> v1 -> v2 -> v3 -> v4 (k1=1, k=1)
#   ptchain_measure 20            # prints "source FRAMES KEYFRAMES ASKED RECEIVED", then
#                                 # "DEPTH FRAMES ASKED RECEIVED" (NACKed sequence numbers
#                                 # this peer asked of its parent, and received from children)
#                                 # per viewer (frames counted over the same 20 s)
#   ptchain_stop                  # peers stop (the server stays for the next start)
#
# Each peer is bench/netlab-peer in its own namespace, ICE restricted to its
# lab address; the source is videotestsrc 640x360@30 ! vp8enc (1 Mbit/s, no
# periodic keyframes) ! peertreesink; viewers decode and count frames.
# Binaries come from $PTCHAIN_BUILD (default: the build/ of this checkout);
# the peers' logs are in $NETLAB_STATE/$NETLAB_LAB/peer-*.log.
#
# Options (environment): PTCHAIN_SERVER_ARGS: more arguments of
# peertree-server (e.g. "--stun stun:10.77.0.3:3478"); PTCHAIN_ARGS_<HOST>:
# more arguments of that host's netlab-peer (e.g. PTCHAIN_ARGS_v2="--set
# turn-server=turn://u:p@10.77.0.3:3478"; no spaces inside an argument);
# hosts that exist before ptchain_hosts are kept (a NAT lab makes its peers
# behind routers first). PTCHAIN_REPAIR=on|off passes --repair to every peer
# (used only when the elements have a "repair" property);
# PTCHAIN_JOIN_TIMEOUT (s, default 20) bounds the wait for each viewer's join
# and for every viewer's first frame; PTCHAIN_LOSS_AFTER_JOIN=1 turns the
# loss on only once every viewer decodes (default: loss from the start).

PTCHAIN_BUILD=${PTCHAIN_BUILD:-$(cd "$NETLAB_DIR/../.." && pwd)/build}
PTCHAIN_JOIN_TIMEOUT=${PTCHAIN_JOIN_TIMEOUT:-20}
PTCHAIN_PORT=8645

ptchain_check () {
  local f
  for f in "$PTCHAIN_BUILD/server/peertree-server" "$PTCHAIN_BUILD/bench/netlab-peer" \
      "$PTCHAIN_BUILD/gst/libgstpeertree.so"; do
    [ -e "$f" ] || { netlab_die "$f is missing: build first (ninja -C build)"; return 1; }
  done
}

# ptchain_hosts N: the server's host and N + 1 peer hosts; starts the server
ptchain_hosts () {
  local n=$1 i st=$NETLAB_STATE/$NETLAB_LAB ip
  ptchain_check || return 1
  PTCHAIN_N=$n
  # hosts made before (e.g. behind a NAT router: netlab_host v1 --behind nat) are kept
  ip=$(NETLAB_QUIET=1 netlab_ip server 2>/dev/null) || ip=$(netlab_host server) || return 1
  for i in src $(seq -f 'v%g' "$n"); do
    NETLAB_QUIET=1 netlab_ip "$i" >/dev/null 2>&1 || netlab_host "$i" >/dev/null || return 1
  done
  # shellcheck disable=SC2086
  ip netns exec "$(netlab_ns server)" "$PTCHAIN_BUILD/server/peertree-server" --host "$ip" \
    --port "$PTCHAIN_PORT" ${PTCHAIN_SERVER_ARGS:-} >"$st/server.log" 2>&1 </dev/null &
  PTCHAIN_SERVER_PID=$!
  PTCHAIN_URL=ws://$ip:$PTCHAIN_PORT
  for i in $(seq 50); do
    grep -q 'ws://' "$st/server.log" 2>/dev/null && return 0
    kill -0 "$PTCHAIN_SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$st/server.log" >&2
  netlab_die "peertree-server did not start"
}

ptchain_peers () { echo src; seq -f 'v%g' "$PTCHAIN_N"; }

# ptchain_links LOSS_PCT RTT_MS [JITTER_MS]: on every peer host (not the
# server's), LOSS_PCT% incoming UDP loss, and a delay of RTT_MS/4 each way
# (so two neighbours in the chain see RTT_MS; the server sees RTT_MS/2)
ptchain_links () {
  local loss=$1 rtt=$2 jitter=${3:-0} h d
  d=$(awk -v r="$rtt" 'BEGIN { printf "%g", r / 4 }')
  PTCHAIN_LOSS=$loss
  for h in $(ptchain_peers); do
    [ -n "${PTCHAIN_LOSS_AFTER_JOIN:-}" ] || netlab_loss "$h" "$loss" || return 1
    netlab_delay "$h" "$d" "$jitter" || return 1
  done
}

ptchain_peer () {  # HOST ROLE
  local st=$NETLAB_STATE/$NETLAB_LAB ip
  ip=$(netlab_ip "$1")
  # shellcheck disable=SC2046
  # ip netns exec, not a function, in the background: $! is the peer itself
  ip netns exec "$(netlab_ns "$1")" env GST_PLUGIN_PATH="$PTCHAIN_BUILD/gst" GIO_USE_PROXY_RESOLVER=dummy \
    "$PTCHAIN_BUILD/bench/netlab-peer" "$2" "$PTCHAIN_URL" "$PTCHAIN_TREE" "$ip" \
    --name "$1-$PTCHAIN_TREE" --max-seconds 900 ${PTCHAIN_REPAIR:+--repair "$PTCHAIN_REPAIR"} \
    $( [ "$2" = viewer ] && for kv in ${PTCHAIN_VIEWER_SET:-}; do printf -- '--set %s ' "$kv"; done ) \
    $(eval "echo \${PTCHAIN_ARGS_$1:-}") \
    >"$st/peer-$1.out" 2>"$st/peer-$1.log" </dev/null &
  eval "PTCHAIN_PID_$1=$!"
}

ptchain_pid () { eval "echo \${PTCHAIN_PID_$1:-}"; }

# ptchain_wait HOST PATTERN SECONDS: until HOST's output has a line matching
ptchain_wait () {
  local st=$NETLAB_STATE/$NETLAB_LAB i
  for i in $(seq $(($3 * 20))); do
    grep -q "$2" "$st/peer-$1.out" 2>/dev/null && return 0
    kill -0 "$(ptchain_pid "$1")" 2>/dev/null || break
    sleep 0.05
  done
  netlab_die "$1: no '$2' within $3 s (log: $st/peer-$1.log)"
  tail -5 "$st/peer-$1.log" >&2
  return 1
}

# ptchain_start [TREE_ID]: the source, then each viewer once the one before
# joined; returns when every viewer decodes (1 if one does not in time)
ptchain_start () {
  local h rc=0
  PTCHAIN_TREE=${1:-chain$RANDOM}
  ptchain_peer src source
  ptchain_wait src first-frame "$PTCHAIN_JOIN_TIMEOUT" || return 1
  for h in $(ptchain_peers); do
    [ "$h" = src ] && continue
    ptchain_peer "$h" viewer
    ptchain_wait "$h" '^joined' "$PTCHAIN_JOIN_TIMEOUT" || rc=1
  done
  for h in $(ptchain_peers); do
    [ "$h" = src ] && continue
    ptchain_wait "$h" first-frame "$PTCHAIN_JOIN_TIMEOUT" || rc=1
  done
  if [ -n "${PTCHAIN_LOSS_AFTER_JOIN:-}" ]; then
    for h in $(ptchain_peers); do netlab_loss "$h" "${PTCHAIN_LOSS:-0}" || rc=1; done
  fi
  return $rc
}

# ptchain_measure SECONDS: counts frames for SECONDS on every peer at once
# (SIGUSR1 ... SIGUSR2); prints "source FRAMES KEYFRAMES", then "DEPTH FRAMES" for
# each viewer, by the depth it reports (its index when it never joined)
ptchain_measure () {
  local st=$NETLAB_STATE/$NETLAB_LAB h pid f d i k n a r
  for h in $(ptchain_peers); do
    pid=$(ptchain_pid "$h"); [ -z "$pid" ] || kill -USR1 "$pid" 2>/dev/null
  done
  # a trapped INT/TERM interrupts wait at once (not sleep): the lab goes now
  sleep "$1" & wait $!
  for h in $(ptchain_peers); do
    pid=$(ptchain_pid "$h"); [ -z "$pid" ] || kill -USR2 "$pid" 2>/dev/null
  done
  for h in $(ptchain_peers); do
    for i in $(seq 40); do
      grep -q '^frames=' "$st/peer-$h.out" 2>/dev/null && break
      sleep 0.05
    done
    f=$(grep '^frames=' "$st/peer-$h.out" 2>/dev/null | tail -1)
    d=$(echo "$f" | sed -n 's/.*depth=\([0-9]*\).*/\1/p')
    f=$(echo "$f" | sed -n 's/^frames=\([0-9]*\).*/\1/p')
    n=$(grep '^nacks ' "$st/peer-$h.out" 2>/dev/null | tail -1)
    a=$(echo "$n" | sed -n 's/.*asked=\([0-9]*\).*/\1/p')
    r=$(echo "$n" | sed -n 's/.*received=\([0-9]*\).*/\1/p')
    if [ "$h" = src ]; then
      k=$(grep '^frames=' "$st/peer-$h.out" 2>/dev/null | tail -1 | sed -n 's/.*keyframes=\([0-9]*\).*/\1/p')
      echo "source ${f:-0} ${k:-0} ${a:-0} ${r:-0}"
    else
      [ -n "$d" ] && [ "$d" != 0 ] || d=${h#v}
      echo "$d ${f:-0} ${a:-0} ${r:-0}"
    fi
  done
}

# ptchain_stop: stops every peer (TERM, then KILL after 3 s); keeps the server
ptchain_stop () {
  local h pid i st=$NETLAB_STATE/$NETLAB_LAB
  for h in $(ptchain_peers); do
    pid=$(ptchain_pid "$h"); [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null
  done
  for h in $(ptchain_peers); do
    pid=$(ptchain_pid "$h"); [ -n "$pid" ] || continue
    for i in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    eval "PTCHAIN_PID_$h="
    # keep the logs of the last run only
    mv -f "$st/peer-$h.out" "$st/peer-$h.out.last" 2>/dev/null
    mv -f "$st/peer-$h.log" "$st/peer-$h.log.last" 2>/dev/null
  done
}
