#!/usr/bin/env bash
# peertree across NATs (meson test --suite netlab): on the lab's "internet",
# peertree-server and a coturn; the source behind a port-preserving NAT A, a
# relay (v1) behind a port-preserving NAT B, a viewer (v2) behind a symmetric
# NAT C (masquerade random,fully-random); a chain src -> v1 -> v2. Every viewer
# must decode >= 90% of the frames the source sends over 5 s, and v2 must get
# them over a TURN relay candidate, its own or its parent's (its upstream
# link's selected pair, from peertreesrc's stats). The coturn host has no route to the home networks,
# as in the issue: a relay candidate paired with a peer's private host
# address made coturn drop the allocation (the TURN failure this catches).
#
#   test-nat.sh turn        both elements set stun-server and turn-server
#                           (turn://u:p@…, a static long-term user)
#   test-nat.sh stun-down   the server hands out a STUN server that drops
#                           everything and a TURN server (REST credentials)
#   test-nat.sh server      only server= on the elements: the server hands
#                           out STUN and TURN (REST credentials, --turn-secret)
#
# Prints each viewer's join time (PLAYING -> first decoded frame) and the
# candidate types of its selected pair. Exit 77 (skip) without root,
# namespaces or coturn.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mode=${1:-turn} secs=${2:-5} min=${3:-90}
# shellcheck source=tests/netlab/netlab.sh
. "$here/netlab.sh"
# shellcheck source=tests/netlab/peertree-chain.sh
. "$here/peertree-chain.sh"
netlab_check || exit 77
command -v turnserver >/dev/null || { echo "coturn is not installed (scripts/deps)" >&2; exit 77; }
ptchain_check || exit 1
PTCHAIN_JOIN_TIMEOUT=${PTCHAIN_JOIN_TIMEOUT:-15}

netlab_new || exit 1
st=$NETLAB_STATE/$NETLAB_LAB
turn=$(netlab_host turn) || exit 1
netlab_nat natA --port-preserving >/dev/null &&
  netlab_nat natB --port-preserving >/dev/null &&
  netlab_nat natC --symmetric >/dev/null || exit 1
netlab_host src --behind natA >/dev/null &&
  netlab_host v1 --behind natB >/dev/null &&
  netlab_host v2 --behind natC >/dev/null || exit 1

case $mode in
  turn)
    netlab_coturn turn --user u:p || exit 1
    ice="--set stun-server=stun://$turn:3478 --set turn-server=turn://u:p@$turn:3478"
    PTCHAIN_ARGS_src=$ice PTCHAIN_ARGS_v1=$ice PTCHAIN_ARGS_v2=$ice ;;
  stun-down)
    # a STUN server that answers nothing (all its incoming packets dropped),
    # and a TURN server that ignores STUN requests
    stun=$(netlab_host stun) || exit 1
    netlab_coturn stun --stun-only || exit 1
    netlab_loss stun 100 all || exit 1
    netlab_coturn turn --no-stun --secret lab-secret || exit 1
    echo lab-secret >"$st/turn-secret"
    PTCHAIN_SERVER_ARGS="--stun stun:$stun:3478 --turn turn:$turn:3478 --turn-secret $st/turn-secret" ;;
  server)
    netlab_coturn turn --secret lab-secret || exit 1
    echo lab-secret >"$st/turn-secret"
    PTCHAIN_SERVER_ARGS="--stun stun:$turn:3478 --turn turn:$turn:3478?transport=udp --turn-secret $st/turn-secret" ;;
  *) echo "usage: $0 turn|stun-down|server [SECONDS [MIN_PCT]]" >&2; exit 2 ;;
esac
ptchain_hosts 2 || exit 1

fail=0
if ! ptchain_start; then
  echo "FAIL: not every viewer decodes"
  tail -n 5 "$st"/peer-*.log "$st/server.log"
  grep -E "closed|error" "$st"/coturn-*.log | tail -n 10
  fail=1
fi
# the selected pair is reported shortly after the first frame
for _ in $(seq 40); do grep -q '^ice ' "$st/peer-v2.out" 2>/dev/null && break; sleep 0.05; done
# not in $( ): a signal's trap would wait for the substitution to end
ptchain_measure "$secs" >"$st/result"
result=$(cat "$st/result")
for h in v1 v2; do
  echo "$h: join $(grep -o 'first-frame ms=[0-9]*' "$st/peer-$h.out" | cut -d= -f2) ms," \
    "$(grep '^ice ' "$st/peer-$h.out" || echo 'no selected pair')"
done
ptchain_stop
sent=$(awk '$1 == "source" { print $2 }' <<<"$result")
echo "$mode: source sent $sent frames in $secs s"
[ "${sent:-0}" -gt $((secs * 25)) ] || { echo "FAIL: the source sent too few frames"; fail=1; }
while read -r depth frames _; do
  [ "$depth" = source ] && continue
  pct=$(awk -v f="$frames" -v s="${sent:-0}" 'BEGIN { printf "%.1f", s ? 100 * f / s : 0 }')
  if awk -v p="$pct" -v m="$min" 'BEGIN { exit !(p >= m) }'; then
    echo "ok: depth $depth decoded $frames frames ($pct%)"
  else
    echo "FAIL: depth $depth decoded $frames frames ($pct% < $min%)"; fail=1
  fi
done <<<"$result"
# its own relay candidate, or (ICE may pick either) its parent's, reached
# from its symmetric NAT's mapping: both go through coturn
if grep -qE '^ice (local=relay |.* remote=relay$)' "$st/peer-v2.out.last" 2>/dev/null; then
  echo "ok: the viewer behind the symmetric NAT gets its frames over a TURN relay candidate" \
    "($(grep '^ice ' "$st/peer-v2.out.last"))"
else
  echo "FAIL: v2's selected pair is not a relay candidate:" \
    "$(grep '^ice ' "$st/peer-v2.out.last" 2>/dev/null || echo none)"; fail=1
fi
exit $fail
