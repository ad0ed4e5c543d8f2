#!/usr/bin/env bash
# Benchmark of `imgrun migrate-check` under QEMU (issues 5 and 14): the fast
# boot (the default) side by side with `--legacy-boot` (the previous
# defaults), RUNS runs each, interleaved, idle and with `--dirty 64`: end to
# end, the boot and its stages, the client-seen downtime (UDP probe answered
# by the init, ICMP echo answered by the kernel), QEMU's own downtime.
# Medians and p90. Needs root (the runner's namespace). Run it alone: the
# machine's load is in every figure.
#   bench/migrate.sh [IMAGE_DIR] [RUNS] [-- extra imgrun options]
#   (default: out/busybox, built with `imgbuild recipe recipes/busybox.toml` if missing; 10 runs)
# Reference: the Xen NSDI 2005 paper ("Live Migration of Virtual Machines")
# reports 60-210 ms of downtime for its workloads.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH:/usr/sbin:/sbin"
image=${1:-out/busybox}
runs=${2:-10}
shift $(( $# > 2 ? 2 : $# ))
[ "${1:-}" = "--" ] && shift
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root (CAP_NET_ADMIN for the namespace)" >&2; exit 1; }

cargo build --release -q -p imgrun -p imgbuild
target=${CARGO_TARGET_DIR:-$PWD/target}/release
if [ ! -f "$image/manifest.json" ]; then
    "$target/imgbuild" recipe recipes/busybox.toml
fi
# One run first: unpacks the PVH kernel into the cache (not timed).
"$target/imgrun" migrate-check "$image" --json >/dev/null
exec python3 bench/migrate.py "$target/imgrun" "$image" "$runs" "$@"
