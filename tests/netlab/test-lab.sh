#!/usr/bin/env bash
# The lab's self-test (meson test --suite netlab): two hosts on the bridge;
# 10% loss on one host's incoming UDP drops about 10% of 2000 datagrams;
# a 20 ms delay each way on one host makes a ping round trip ≥ 40 ms; a rate
# limit drops a burst; a killed `netlab run` leaves nothing behind.
# Exit 77 (skip) without root or network namespaces.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/netlab/netlab.sh
. "$here/netlab.sh"
netlab_check || exit 77
fail=0
check () {  # DESCRIPTION CONDITION...
  local what=$1; shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fail=1; fi
}

netlab_new || exit 1
netlab_host a >/dev/null && netlab_host b >/dev/null || exit 1
b=$(netlab_ip b)

check "a pings b" netlab_exec a ping -c 2 -i 0.2 -W 2 -q "$b" >/dev/null

# loss: 2000 UDP datagrams from a to b (bash's /dev/udp), counted by b's rules
netlab_loss b 10
netlab_exec a bash -c "for i in \$(seq 2000); do echo x >/dev/udp/$b/9; done" 2>/dev/null
dropped=$(netlab_drops b); passed=$(netlab_counter b udp-in)
echo "10% loss: $dropped dropped, $passed let in"
check "10% loss drops 6..14% of 2000 datagrams" \
  test $((dropped + passed)) -eq 2000 -a "$dropped" -ge 120 -a "$dropped" -le 280
netlab_loss b 0
check "0% loss lets ping through" netlab_exec a ping -c 20 -i 0.01 -W 2 -q "$b" >/dev/null

# delay: ping -U (user-to-user time: the kernel stamps a reply before the
# INPUT hook where the delayer holds it)
netlab_delay a 20 || exit 1
rtt=$(netlab_exec a ping -U -c 10 -i 0.1 -W 2 -q "$b" | awk -F/ '/^rtt/ { print $5 }')
echo "20 ms each way on a: ping RTT avg ${rtt:-none} ms"
check "delay 20 ms each way: 40 <= RTT < 60 ms" \
  awk -v r="${rtt:-0}" 'BEGIN { exit !(r >= 40 && r < 60) }'
netlab_delay a 20 10
rtt=$(netlab_exec a ping -U -c 20 -i 0.05 -W 2 "$b" | awk -F'time=' '/time=/ { split($2, t, " "); print t[1] }' |
  sort -n | awk '{ v[NR] = $1 } END { print v[1], v[NR] }')
echo "20 ± 10 ms each way: ping RTT min/max ${rtt:-none} ms"
check "jitter spreads the round trips by > 5 ms" \
  awk -v r="${rtt:-0 0}" 'BEGIN { split(r, m, " "); exit !(m[2] - m[1] > 5 && m[1] >= 20) }'
netlab_delay a 0
rtt=$(netlab_exec a ping -U -c 5 -i 0.1 -W 2 -q "$b" | awk -F/ '/^rtt/ { print $5 }')
check "delay 0 removes it (RTT ${rtt:-none} ms < 5)" awk -v r="${rtt:-99}" 'BEGIN { exit !(r < 5) }'

# rate: 200 datagrams of 1000 bytes sent at once through 1 mbit/s (a 100 ms
# queue): most are dropped at a's qdisc; without the limit all arrive
netlab_loss b 0
netlab_rate a 1mbit || exit 1
netlab_exec a bash -c "for i in \$(seq 200); do printf '%1000s' '' >/dev/udp/$b/9; done" 2>/dev/null
sleep 0.5
passed=$(netlab_counter b udp-in)
echo "200 x 1000 B through 1 mbit/s: $passed arrived"
check "rate 1 mbit/s: 5..150 of 200 datagrams arrive" test "$passed" -ge 5 -a "$passed" -le 150
netlab_rate a 0

# cleanup when killed: a `netlab run` killed with TERM removes its lab
"$here/netlab" run -h "x y" -- sleep 60 >/dev/null 2>&1 &
run=$!
# the lab of that run: the one whose owner is $run (other labs, e.g. of a
# concurrent test run, are not ours to judge)
other=
for _ in $(seq 50); do
  for d in "$NETLAB_STATE"/ptnl*; do
    [ "$(cut -d' ' -f1 "$d/owner" 2>/dev/null)" = "$run" ] && other=${d##*/}
  done
  [ -n "$other" ] && break
  sleep 0.1
done
sleep 0.5
kill -TERM "$run"; wait "$run" 2>/dev/null
check "a killed lab ($other) leaves no namespace, link or state" \
  test -n "$other" -a -z "$(ip netns list | grep "^$other-")" -a \
    -z "$(ip -o link show | grep "$other")" -a ! -e "$NETLAB_STATE/$other"

exit $fail
