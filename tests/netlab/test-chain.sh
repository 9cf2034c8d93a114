#!/usr/bin/env bash
# A peertree chain in the lab (meson test --suite netlab): the server, the
# source and 4 viewers, each in its own namespace; source -> v1 -> v2 -> v3
# -> v4 (k1=1, k=1), no loss, no delay. Every viewer must decode >= 95% of
# the frames the source sent over 10 s. Checks the lab end to end; the loss
# tests build on it:
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
while read -r depth frames; do
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
exit $fail
