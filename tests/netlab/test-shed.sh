#!/usr/bin/env bash
# Overload shedding in the lab (meson test netlab-shed, suites netlab and
# quality): source -> relay v1 -> v2, v3, v4 (the source takes 1 child, the
# others 3). v1's uplink is capped (tc tbf on its eth0) below what three
# copies of the stream need but above two. With shed-overload (default) v1
# sees its children's receiver reports lose while its parent link is clean,
# reports itself overloaded, and the server moves its newest child under
# another viewer; then, over SECONDS (within up to 3 windows of SECONDS:
# SHED_WINDOWS), every viewer must decode >= MIN_PCT % of the frames the
# source sent:
#   test-shed.sh [shed|noshed [RATE [MIN_PCT [SECONDS]]]]
# (defaults shed 3000kbit 95 10). "noshed" sets shed-overload=false on every
# viewer and only prints the figure (waiting as long as shed would have);
# docs/benchmarks.md has both. Exit 77 (skip) without root or namespaces.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mode=${1:-shed} rate=${2:-3000kbit} min=${3:-95} secs=${4:-10}
# shellcheck source=tests/netlab/netlab.sh
. "$here/netlab.sh"
# shellcheck source=tests/netlab/peertree-chain.sh
. "$here/peertree-chain.sh"
netlab_check || exit 77
ptchain_check || exit 1

export PTCHAIN_ARGS_src="--set k1=1 --set k=3"
[ "$mode" = noshed ] && export PTCHAIN_VIEWER_SET="shed-overload=false"
netlab_new || exit 1
ptchain_hosts 4 || exit 1
st=$NETLAB_STATE/$NETLAB_LAB
netlab_rate v1 "$rate" 0 || exit 1
if ! ptchain_start; then
  tail -n 20 "$st"/peer-*.log "$st/server.log"
  exit 1
fi
fail=0
for h in v2 v3 v4; do
  grep -q '^joined depth=2' "$st/peer-$h.out" || { echo "FAIL: $h is not under the relay"; fail=1; }
done
[ $fail = 0 ] || exit 1

# the relay's verdict needs 3 s of loss reports, then the moved viewer a new link
shed_line=
for _ in $(seq 300); do
  shed_line=$(grep -h '^overloaded' "$st/peer-v1.out" 2>/dev/null | head -1)
  [ -n "$shed_line" ] && break
  sleep 0.1
done
if [ "$mode" = shed ]; then
  if [ -z "$shed_line" ]; then
    echo "FAIL: the relay never reported itself overloaded within 30 s"
    tail -n 20 "$st/peer-v1.log"
    ptchain_stop
    exit 1
  fi
  moved=$(sed -n 's/.*moved=\([^ ]*\).*/\1/p' <<<"$shed_line")
  echo "relay v1: $shed_line"
  mh=${moved%-"$PTCHAIN_TREE"}
  if [ "$mh" = - ] || ! [ -e "$st/peer-$mh.out" ]; then
    echo "FAIL: the server moved no viewer ($shed_line)"; ptchain_stop; exit 1
  fi
  # the moved viewer decodes again under its new parent (depth 3)
  for _ in $(seq 200); do
    grep -q '^depth=3' "$st/peer-$mh.out" && break
    sleep 0.1
  done
  grep -q '^depth=3' "$st/peer-$mh.out" || { echo "FAIL: $mh was not re-parented"; fail=1; }
fi
# let the moved viewer's link and the relay's queue settle
sleep 5 & wait $!
# "every viewer gets >= MIN_PCT % again": up to WINDOWS windows of SECONDS
# each (a relay that sheds at its limit can take a few seconds of keyframe
# requests and repairs to settle); the first window where every viewer
# reaches it ends the wait. noshed measures one window.
windows=${SHED_WINDOWS:-3}
[ "$mode" = shed ] || windows=1
for w in $(seq "$windows"); do
  ptchain_measure "$secs" >"$st/result"
  result=$(cat "$st/result")
  sent=$(awk '$1 == "source" { print $2 }' <<<"$result")
  worst=$(awk -v s="${sent:-0}" '$1 != "source" { p = s ? 100 * $2 / s : 0; if (n++ == 0 || p < m) m = p }
    END { printf "%.1f", m + 0 }' <<<"$result")
  echo "window $w of $secs s: the viewer with the fewest frames decoded $worst%"
  awk -v p="$worst" -v m="$min" 'BEGIN { exit !(p >= m) }' && break
done
sheds=$(grep -c '^overloaded' "$st/peer-v1.out" 2>/dev/null)
ptchain_stop
echo "relay uplink $rate, shed-overload $( [ "$mode" = shed ] && echo on || echo off ), ${secs} s: source sent $sent frames; relay reported ${sheds:-0} overload(s)"
[ "${sent:-0}" -gt $((secs * 25)) ] || { echo "FAIL: the source sent too few frames"; fail=1; }
i=0
while read -r depth frames _; do
  [ "$depth" = source ] && continue
  i=$((i + 1))
  pct=$(awk -v f="$frames" -v s="${sent:-0}" 'BEGIN { printf "%.1f", s ? 100 * f / s : 0 }')
  if awk -v p="$pct" -v m="$min" 'BEGIN { exit !(p >= m) }'; then
    echo "ok: v$i (depth $depth) decoded $frames frames ($pct%)"
  else
    echo "$( [ "$mode" = shed ] && echo FAIL || echo below ): v$i (depth $depth) decoded $frames frames ($pct% < $min%)"
    [ "$mode" = shed ] && fail=1
  fi
done <<<"$result"
[ "$(wc -l <<<"$result")" -eq 5 ] || { echo "FAIL: not every peer reported"; fail=1; }
exit $fail
