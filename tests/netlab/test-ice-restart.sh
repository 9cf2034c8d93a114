#!/usr/bin/env bash
# ICE restart (meson test netlab-nat-ice-restart): a viewer behind a
# port-preserving NAT router gets frames from a source on the lab's
# "internet" (the server hands out STUN and TURN, coturn); mid-stream the
# router loses its UDP bindings and maps UDP to other ports from then on
# (netlab_nat_rebind: the viewer's ICE pair dies, its signalling TCP
# connection lives). The viewer must decode frames again (>= MIN% of the
# source's over SECONDS), through an ICE restart on the same link (the
# upstream link's ice-restarts counter, and the source's for its child),
# not a re-parenting (no upstream-lost, no new parent).
#
#   test-ice-restart.sh [SECONDS [MIN_PCT]]
#
# Exit 77 (skip) without root, namespaces, coturn or conntrack.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
secs=${1:-5} min=${2:-90}
# shellcheck source=tests/netlab/netlab.sh
. "$here/netlab.sh"
# shellcheck source=tests/netlab/peertree-chain.sh
. "$here/peertree-chain.sh"
netlab_check || exit 77
command -v turnserver >/dev/null || { echo "coturn is not installed (scripts/deps)" >&2; exit 77; }
command -v conntrack >/dev/null || { echo "conntrack is not installed (scripts/deps)" >&2; exit 77; }
ptchain_check || exit 1
PTCHAIN_JOIN_TIMEOUT=${PTCHAIN_JOIN_TIMEOUT:-15}

netlab_new || exit 1
st=$NETLAB_STATE/$NETLAB_LAB
turn=$(netlab_host turn) || exit 1
netlab_nat natB --port-preserving >/dev/null || exit 1
netlab_host v1 --behind natB >/dev/null || exit 1
netlab_coturn turn --secret lab-secret || exit 1
echo lab-secret >"$st/turn-secret"
PTCHAIN_SERVER_ARGS="--stun stun:$turn:3478 --turn turn:$turn:3478?transport=udp --turn-secret $st/turn-secret"
ptchain_hosts 1 || exit 1      # the server, the source (public), v1 (behind natB)

# window SECONDS: frames counted by src and v1 over the same SECONDS; sets
# SENT and GOT (waits for each peer's new report: no stale line is read)
window () {
  local h pid n i
  declare -A before
  for h in src v1; do
    before[$h]=$(grep -c '^frames=' "$st/peer-$h.out" 2>/dev/null)
    pid=$(ptchain_pid "$h"); kill -USR1 "$pid" 2>/dev/null
  done
  sleep "$1" & wait $!
  for h in src v1; do pid=$(ptchain_pid "$h"); kill -USR2 "$pid" 2>/dev/null; done
  for h in src v1; do
    for i in $(seq 100); do
      n=$(grep -c '^frames=' "$st/peer-$h.out" 2>/dev/null)
      [ "$n" -gt "${before[$h]}" ] && break
      sleep 0.05
    done
  done
  SENT=$(grep '^frames=' "$st/peer-src.out" | tail -1 | sed -n 's/^frames=\([0-9]*\).*/\1/p')
  GOT=$(grep '^frames=' "$st/peer-v1.out" | tail -1 | sed -n 's/^frames=\([0-9]*\).*/\1/p')
}

enough () {  # SENT GOT: GOT >= min% of SENT
  awk -v s="${1:-0}" -v g="${2:-0}" -v m="$min" 'BEGIN { exit !(s > 0 && 100 * g >= m * s) }'
}

fail=0
if ! ptchain_start; then
  echo "FAIL: the viewer does not decode"
  tail -n 5 "$st"/peer-*.log "$st/server.log"
  exit 1
fi
window "$secs"
echo "before: the source sent $SENT frames, the viewer decoded $GOT"
enough "$SENT" "$GOT" || { echo "FAIL: the viewer decodes too few frames before the rebinding"; fail=1; }

netlab_nat_rebind natB || exit 1
# the link is found dead, restarted and back within seconds; bounded wait
# (1 s windows, at most 30) for the first window the viewer decodes in fully
back=0
for _ in $(seq 30); do
  window 1
  if enough "$SENT" "$GOT"; then back=1; break; fi
done
[ "$back" = 1 ] || { echo "FAIL: the viewer does not decode again after the rebinding"; fail=1; }
window "$secs"
echo "after: the source sent $SENT frames, the viewer decoded $GOT"
enough "$SENT" "$GOT" || { echo "FAIL: the viewer decodes too few frames after the rebinding"; fail=1; }

v1_restarts=$(grep '^ice-restarts=' "$st/peer-v1.out" | tail -1 | cut -d= -f2)
src_restarts=$(grep '^ice-restarts=' "$st/peer-src.out" | tail -1 | cut -d= -f2)
if [ "${v1_restarts:-0}" -ge 1 ] && [ "${src_restarts:-0}" -ge 1 ]; then
  echo "ok: through an ICE restart (the viewer answered $v1_restarts, the source made $src_restarts)"
else
  echo "FAIL: no ICE restart counted (viewer ${v1_restarts:-none}, source ${src_restarts:-none})"
  fail=1
fi
if grep -q '^upstream-lost' "$st/peer-v1.out" || grep -q '^depth=' "$st/peer-v1.out"; then
  echo "FAIL: the viewer was re-parented: $(grep -E '^(upstream-lost|depth=)' "$st/peer-v1.out" | tr '\n' ' ')"
  fail=1
else
  echo "ok: the viewer kept its link (no upstream-lost, no new parent)"
fi
[ "$fail" = 0 ] || { grep -a -E "ptlink|upstream" "$st"/peer-*.log | tail -n 20; }
ptchain_stop
exit $fail
