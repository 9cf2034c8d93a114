#!/usr/bin/env bash
# Runs one case of test-browser.mjs inside a loopback-only network namespace
# (unshare -n: Chromium, the server and the GStreamer peers see only lo).
# Installs what is missing through scripts/deps --browser first; exits 77
# (skipped) with the reason when Chromium, Node.js, playwright-core or a
# network namespace cannot be had.
#   run-browser.sh CASE [LOSS]   LOSS: percent of UDP packets dropped (nft) once the
#                                pages play, 0 by default
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
case_name=${1:?case}
loss=${2:-0}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export CHROMIUM

skip() { echo "SKIP: $*"; exit 77; }
if [ ! -x "$CHROMIUM" ] || [ ! -f "$here/node_modules/playwright-core/package.json" ]; then
  bash "$here/../../scripts/deps" --browser
fi
[ -x "$CHROMIUM" ] || skip "no Chromium at $CHROMIUM (Debian package chromium; scripts/deps --browser could not install it)"
command -v node >/dev/null || skip "no Node.js (node) to drive Chromium"
[ -f "$here/node_modules/playwright-core/package.json" ] ||
  skip "playwright-core is not in tests/browser/node_modules (scripts/deps --browser: npm ci failed)"
command -v ip >/dev/null || skip "no ip (iproute2) to bring lo up in the namespace"

# a new network namespace as root, else in a new user namespace
ns=(unshare -n)
if ! unshare -n true 2>/dev/null; then
  ns=(unshare -rn)
  unshare -rn true 2>/dev/null || skip "cannot make a network namespace (unshare -n, unshare -rn)"
fi
if [ "$loss" != 0 ]; then
  command -v nft >/dev/null || skip "no nft (nftables) to drop packets"
fi

cd "$here"
# shellcheck disable=SC2016
# test-browser.mjs drops the packets itself (nft), once every page plays:
# loss during ICE and DTLS is not what the case is about
export PT_BROWSER_LOSS=$loss
exec "${ns[@]}" bash -c 'ip link set lo up && exec node test-browser.mjs "$1"' bash "$case_name"
