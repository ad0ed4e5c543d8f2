#!/usr/bin/env bash
# Benchmark for issue 5: end-to-end `imgrun migrate-check` (namespace, two boots,
# migration, checks, late re-check, teardown) and the downtime of an idle guest
# as a client sees it (longest gap of a UDP probe every 10 ms), with QEMU's own
# downtime and total-time beside them. Medians over RUNS runs; needs root.
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

cargo build --release -q -p imgrun
imgrun=${CARGO_TARGET_DIR:-$PWD/target}/release/imgrun
if [ ! -f "$image/manifest.json" ]; then
    cargo run --release -q -p imgbuild -- recipe recipes/busybox.toml
fi
work=$(mktemp -d /var/tmp/imgrun-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "imgrun migrate-check $image, $runs runs, $(nproc) cores, $(qemu-system-x86_64 --version | head -n1)"
for i in $(seq 1 "$runs"); do
    start=$(date +%s%N)
    if ! "$imgrun" migrate-check "$image" --json --log-dir "$work/logs-$i" "$@" >"$work/r$i.json" 2>"$work/e$i.log"; then
        echo "run $i FAILED:" >&2
        tail -n 30 "$work/e$i.log" >&2
        cat "$work/r$i.json" >&2 || true
        exit 1
    fi
    end=$(date +%s%N)
    echo $(( (end - start) / 1000000 )) >"$work/wall$i"
    printf 'run %d: %s ms\n' "$i" "$(cat "$work/wall$i")"
done

python3 - "$work" "$runs" <<'PY'
import json, statistics, sys
work, runs = sys.argv[1], int(sys.argv[2])
rows = {"end-to-end wall time (ms)": [], "imgrun total_ms": [], "setup (ns + boot) ms": [],
        "client-seen downtime: probe gap (ms)": [], "QEMU downtime (ms)": [],
        "QEMU total-time (ms)": [], "MB transferred": []}
for i in range(1, runs + 1):
    r = json.load(open(f"{work}/r{i}.json"))
    m = r["migrations"][0]
    rows["end-to-end wall time (ms)"].append(int(open(f"{work}/wall{i}").read()))
    rows["imgrun total_ms"].append(r["total_ms"])
    rows["setup (ns + boot) ms"].append(r["setup_ms"])
    rows["client-seen downtime: probe gap (ms)"].append(m["probe"]["longest_gap_ms"])
    rows["QEMU downtime (ms)"].append(m["stats"]["downtime_ms"])
    rows["QEMU total-time (ms)"].append(m["stats"]["total_time_ms"])
    rows["MB transferred"].append(m["stats"]["transferred_bytes"] / 1e6)
print(f"\n| measure ({runs} runs) | median | min | max |")
print("|---|---:|---:|---:|")
for k, v in rows.items():
    print(f"| {k} | {statistics.median(v):.1f} | {min(v):.1f} | {max(v):.1f} |")
print("\nreference: Xen NSDI 2005 paper, 60-210 ms downtime")
PY
