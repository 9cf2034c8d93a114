#!/usr/bin/env bash
# A relay whose ICE fails to one child keeps its other children (meson test
# netlab-child-ice-fail, suite netlab): source -> relay v1 -> v2, v3 (the
# source takes 1 child, the others 2), each peer in a namespace of its own.
# Once all decode, v3's host drops every UDP packet from v1: the v1 -> v3
# link dies (ICE restarts fail, then the link is failed on both ends). Over
# the next SECONDS v2 must keep decoding >= MIN_PCT % of the frames the source
# sends, and stay where it was (v1's child, no upstream-lost); v3 must be
# re-parented and decode again.
#   test-child-ice-fail.sh [MIN_PCT [SECONDS]]   (defaults 90 15)
# Exit 77 (skip) without root or namespaces.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
min=${1:-90} secs=${2:-15}
# shellcheck source=tests/netlab/netlab.sh
. "$here/netlab.sh"
# shellcheck source=tests/netlab/peertree-chain.sh
. "$here/peertree-chain.sh"
netlab_check || exit 77
ptchain_check || exit 1

export PTCHAIN_ARGS_src="--set k1=1 --set k=2"
netlab_new || exit 1
ptchain_hosts 3 || exit 1
st=$NETLAB_STATE/$NETLAB_LAB
if ! ptchain_start; then
  tail -n 20 "$st"/peer-*.log "$st/server.log"
  exit 1
fi
fail=0
for h in v2 v3; do
  grep -q '^joined depth=2' "$st/peer-$h.out" || { echo "FAIL: $h is not under the relay"; fail=1; }
done
[ $fail = 0 ] || { ptchain_stop; exit 1; }

netlab_exec v3 nft insert rule inet netlab input ip saddr "$(netlab_ip v1)" meta l4proto udp drop ||
  { echo "FAIL: cannot block v1 -> v3"; exit 1; }
echo "v3's host now drops every UDP packet from v1"
ptchain_measure "$secs" >"$st/result"
result=$(cat "$st/result")
# v3 decodes again under another parent (bounded)
for _ in $(seq 200); do
  grep -q '^depth=' "$st/peer-v3.out" && break
  sleep 0.1
done
v3_moved=$(grep '^depth=' "$st/peer-v3.out" | tail -1)
v2_lost=$(grep -c '^upstream-lost\|^depth=' "$st/peer-v2.out")
ptchain_stop

sent=$(awk '$1 == "source" { print $2 }' <<<"$result")
v2=$(awk 'NR == 3 { print $2 }' <<<"$result")   # source, v1, v2, v3 in order
pct=$(awk -v f="${v2:-0}" -v s="${sent:-0}" 'BEGIN { printf "%.1f", s ? 100 * f / s : 0 }')
echo "over $secs s after the block: source sent ${sent:-0} frames, v2 decoded ${v2:-0} ($pct%)"
if awk -v p="$pct" -v m="$min" 'BEGIN { exit !(p >= m) }'; then
  echo "ok: v2, v1's other child, kept decoding"
else
  echo "FAIL: v2 decoded $pct% < $min% while v1's link to v3 died"; fail=1
fi
if [ "$v2_lost" -eq 0 ]; then
  echo "ok: v2 kept its parent (no upstream-lost, no re-parenting)"
else
  echo "FAIL: v2 lost its parent or was moved"; grep '^upstream-lost\|^depth=' "$st/peer-v2.out.last"; fail=1
fi
if [ -n "$v3_moved" ]; then
  echo "ok: v3 was re-parented ($v3_moved)"
else
  echo "FAIL: v3 was not re-parented within 20 s"; fail=1
fi
exit $fail
