#!/usr/bin/env bash
# libvirt's QEMU driver, for real, on this machine: two libvirtd daemons (libvirtd.sh) boot
# the builder's QEMU domain XML (TCG: the machine has no usable KVM) and live-migrate it.
#   1. imgrun migrate-check --libvirt A B          boot on A, status checks, A -> B, libvirt's
#                                                  job figures in the report
#   2. imgrun migrate-check --hosts B,A --repeat 2 the ring, adopting the guest on B
#   3. wrong inputs: a URI that is not one, a guest already running elsewhere: exit 2, one
#      message, nothing started
# Reports go to $REPORTS (default out/reports). Needs root (namespaces, bridge, taps).
#   IMGRUN, IMGBUILD   the binaries (default: target/release/…)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PATH:/usr/sbin:/sbin"
IMGRUN=${IMGRUN:-$PWD/target/release/imgrun}
IMGBUILD=${IMGBUILD:-$PWD/target/release/imgbuild}
REPORTS=${REPORTS:-$PWD/out/reports}
for tool in libvirtd virsh qemu-system-x86_64 unshare jq ip; do
    command -v "$tool" >/dev/null || { echo "libvirt test: needs $tool (bash scripts/setup installs it)" >&2; exit 1; }
done
mkdir -p "$REPORTS"

. tests/libvirt/libvirtd.sh
trap lv_cleanup EXIT
trap 'exit 130' INT TERM
say() { printf 'libvirt test: %s\n' "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }

# The guest, built where both daemons are told their storage is shared.
out=$LV_RUN/out
"$IMGBUILD" recipe recipes/busybox.toml --out "$out" >"$LV_RUN/build.log" 2>&1 \
    || { cat "$LV_RUN/build.log" >&2; fail "imgbuild recipe recipes/busybox.toml"; }
guest=$out/busybox

lv_network_up
lv_start a 10.99.0.101 "$out"
lv_start b 10.99.0.102 "$out"
A=$(lv_uri a)
B=$(lv_uri b)
say "daemons: $(virsh -q -c "$A" hostname) and $(virsh -q -c "$B" hostname), $(virsh -q -c "$A" version | grep daemon)"

imgrun() { ip netns exec "$LV_NS" "$IMGRUN" "$@"; }

say "1. --libvirt A B: boot, checks, live migration"
r=$REPORTS/libvirt-qemu-migrate-check.json
imgrun migrate-check --json --libvirt "$A" "$B" "$guest" >"$r" || true
cat "$r"
jq -e '.passed == true and .backend == "libvirt"' "$r" >/dev/null || fail "migrate-check --libvirt A B did not pass ($r)"
jq -e '.migrations[0].from == "lv-a" and .migrations[0].to == "lv-b"' "$r" >/dev/null || fail "the route is not lv-a -> lv-b"
# libvirt's own figures (virsh domjobinfo --completed), not the runner's clock.
jq -e '.migrations[0].stats.downtime_ms != null and .migrations[0].stats.transferred_bytes > 0' "$r" >/dev/null \
    || fail "no libvirt job figures in the report"
[ "$(virsh -q -c "$B" domstate busybox)" = running ] || fail "the guest is not running on b"
virsh -q -c "$A" domstate busybox >/dev/null 2>&1 && fail "the guest is still defined on a (--undefinesource)"
virsh -q -c "$B" list --persistent --name | grep -qx busybox || fail "the guest is not persistent on b"

say "2. --hosts B,A --repeat 2: the ring, twice round, adopting the guest on b"
r=$REPORTS/libvirt-qemu-ring.json
imgrun migrate-check --json --hosts "$B,$A" --repeat 2 "$guest" >"$r" || true
jq -c '[.passed, [.migrations[] | "\(.from)->\(.to):\(.passed)"]]' "$r" >&2
jq -e '.passed == true and (.migrations | length) == 4' "$r" >/dev/null || fail "the ring did not pass ($r)"
jq -e '[.migrations[] | "\(.from)>\(.to)"] == ["lv-b>lv-a","lv-a>lv-b","lv-b>lv-a","lv-a>lv-b"]' "$r" >/dev/null \
    || fail "the ring did not go b -> a -> b -> a -> b"

say "3. wrong inputs"
set +e
msg=$(imgrun migrate-check --libvirt "$A" "qemu+ssh://h;reboot/system" "$guest" 2>&1 >/dev/null)
code=$?
set -e
[ "$code" = 2 ] || fail "a bad URI: exit $code, not 2"
[ "$(grep -c 'libvirt URI "qemu+ssh://h;reboot/system"' <<<"$msg")" = 1 ] || fail "a bad URI: $msg"
set +e
msg=$(imgrun migrate-check --libvirt "$A" "$B" "$guest" 2>&1 >/dev/null)
code=$?
set -e
[ "$code" = 2 ] || fail "guest running elsewhere: exit $code, not 2"
grep -q "already running on $B" <<<"$msg" || fail "guest running elsewhere: $msg"
virsh -q -c "$A" domstate busybox >/dev/null 2>&1 && fail "a refused run defined the guest on a"
say "PASS"
