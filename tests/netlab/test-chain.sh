#!/usr/bin/env bash
# A peertree chain in the lab (meson test --suite netlab): the server, the
# source and 4 viewers, each in its own namespace; source -> v1 -> v2 -> v3
# -> v4 (k1=1, k=1), no loss, no delay. Every viewer must decode >= 95% of
# the frames the source sent over 10 s. Checks the lab end to end; the loss
# tests build on it (with loss, it also checks that the source received only
# its own child's NACKs):
#   test-chain.sh [VIEWERS [LOSS_PCT [RTT_MS [MIN_PCT [SECONDS]]]]]
# (defaults 4 0 0 95 10). Exit 77 (skip) without root or namespaces.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
n=${1:-4} loss=${2:-0} rtt=${3:-0} min=${4:-95} secs=${5:-10}
# shellcheck source=tests/netlab/netlab.sh
. "$here/netlab.sh"
# shellcheck source=tests/netlab/peertree-chain.sh
. "$here/peertree-chain.sh"
netlab_check || exit 77
ptchain_check || exit 1

netlab_new || exit 1
ptchain_hosts "$n" || exit 1
ptchain_links "$loss" "$rtt" || exit 1
if ! ptchain_start; then
  tail -n 20 "$NETLAB_STATE/$NETLAB_LAB"/peer-*.log "$NETLAB_STATE/$NETLAB_LAB/server.log"
  exit 1
fi
# not in $( ): a signal's trap would wait for the substitution to end
ptchain_measure "$secs" >"$NETLAB_STATE/$NETLAB_LAB/result"
result=$(cat "$NETLAB_STATE/$NETLAB_LAB/result")
ptchain_stop
sent=$(awk '$1 == "source" { print $2 }' <<<"$result")
echo "$n viewers, ${loss}% loss per hop, ${rtt} ms RTT per link, ${secs} s: source sent $sent frames"
fail=0
[ "${sent:-0}" -gt $((secs * 25)) ] || { echo "FAIL: the source sent too few frames"; fail=1; }
while read -r depth frames _; do
  [ "$depth" = source ] && continue
  pct=$(awk -v f="$frames" -v s="${sent:-0}" 'BEGIN { printf "%.1f", s ? 100 * f / s : 0 }')
  if awk -v p="$pct" -v m="$min" 'BEGIN { exit !(p >= m) }'; then
    echo "ok: depth $depth decoded $frames frames ($pct%)"
  else
    echo "FAIL: depth $depth decoded $frames frames ($pct% < $min%)"
    fail=1
  fi
done <<<"$result"
[ "$(wc -l <<<"$result")" -eq $((n + 1)) ] || { echo "FAIL: not every peer reported"; fail=1; }
# With loss, NACKs are answered hop by hop: the source receives those of its
# child (depth 1) only, never those the relays below answered (with them it
# would receive about the sum of every viewer's)
if [ "$loss" != 0 ] && [ "${PTCHAIN_REPAIR:-on}" != off ] && [ "$n" -ge 2 ]; then
  at_src=$(awk '$1 == "source" { print $5 }' <<<"$result")
  d1=$(awk '$1 == "1" { print $3 }' <<<"$result")
  below=$(awk '$1 != "source" && $1 != "1" { s += $3 } END { print s + 0 }' <<<"$result")
  echo "NACKed sequence numbers: the source received ${at_src:-?}, depth 1 asked ${d1:-?}, depths 2-$n asked $below"
  if [ "${below:-0}" -eq 0 ]; then
    echo "FAIL: no viewer below depth 1 asked for a repair (nothing to check)"; fail=1
  elif [ "${at_src:-0}" -gt $(( ${d1:-0} + ${d1:-0} / 5 + 10 )) ]; then
    echo "FAIL: the source received more NACKs than its child asked: relays forwarded NACKs up"; fail=1
  else
    echo "ok: no NACK of a relay's children reached the source"
  fi
fi
exit $fail
