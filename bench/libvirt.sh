#!/usr/bin/env bash
# Benchmark for issue 13: the same guest, the same machine, the same run, migrated by
# imgrun's QMP backend and through libvirt's QEMU driver (two libvirtd on this machine,
# tests/libvirt/libvirtd.sh), interleaved: end-to-end wall time, the hypervisor's own
# downtime and total time (QMP query-migrate / virsh domjobinfo --completed), bytes sent,
# and the client-seen downtime (longest gap of a UDP probe every 10 ms). Both under TCG
# (no usable KVM here); libvirt's default downtime limit (300 ms) and bandwidth, imgrun's
# QMP defaults (20 ms, 1024 MiB/s) — each engine as it is used. Medians; needs root.
#   bench/libvirt.sh [RUNS]        (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH:/usr/sbin:/sbin"
runs=${1:-5}
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root (namespaces)" >&2; exit 1; }
cargo build --release -q -p imgrun -p imgbuild
td=${CARGO_TARGET_DIR:-$PWD/target}/release

. tests/libvirt/libvirtd.sh
trap lv_cleanup EXIT
trap 'exit 130' INT TERM
work=$LV_RUN/bench
mkdir -p "$work"
"$td/imgbuild" recipe recipes/busybox.toml --out "$LV_RUN/out" >/dev/null 2>&1
guest=$LV_RUN/out/busybox
lv_network_up
lv_start a 10.99.0.101 "$LV_RUN/out"
lv_start b 10.99.0.102 "$LV_RUN/out"
A=$(lv_uri a)
B=$(lv_uri b)

echo "busybox guest, $runs runs each, interleaved, $(nproc) cores, $(qemu-system-x86_64 --version | head -n1), $(libvirtd --version)"
for i in $(seq 1 "$runs"); do
    for engine in qmp libvirt; do
        start=$(date +%s%N)
        case $engine in
        qmp) "$td/imgrun" migrate-check --json --log-dir "$work/logs-$i" "$guest" >"$work/$engine-$i.json" 2>"$work/$engine-$i.log" ;;
        libvirt) ip netns exec "$LV_NS" "$td/imgrun" migrate-check --json --libvirt "$A" "$B" "$guest" >"$work/$engine-$i.json" 2>"$work/$engine-$i.log" ;;
        esac || { tail -n 30 "$work/$engine-$i.log" >&2; echo "bench: $engine run $i failed" >&2; exit 1; }
        end=$(date +%s%N)
        echo $(((end - start) / 1000000)) >"$work/$engine-$i.wall"
        if [ "$engine" = libvirt ]; then
            virsh -q -c "$B" destroy busybox >/dev/null
            virsh -q -c "$B" undefine busybox >/dev/null
        fi
        printf 'run %d %-7s %s ms\n' "$i" "$engine" "$(cat "$work/$engine-$i.wall")"
    done
done

python3 - "$work" "$runs" <<'PY'
import json, statistics, sys
work, runs = sys.argv[1], int(sys.argv[2])
keys = ["end-to-end wall time (ms)", "hypervisor downtime (ms)", "hypervisor total time (ms)",
        "MB transferred", "client-seen downtime: probe gap (ms)"]
vals = {e: {k: [] for k in keys} for e in ("qmp", "libvirt")}
for e in vals:
    for i in range(1, runs + 1):
        r = json.load(open(f"{work}/{e}-{i}.json"))
        m = r["migrations"][0]
        v = vals[e]
        v[keys[0]].append(int(open(f"{work}/{e}-{i}.wall").read()))
        v[keys[1]].append(m["stats"]["downtime_ms"])
        v[keys[2]].append(m["stats"]["total_time_ms"])
        v[keys[3]].append(m["stats"]["transferred_bytes"] / 1e6)
        v[keys[4]].append(m["probe"]["longest_gap_ms"])
print(f"\n| measure (median of {runs}) | imgrun QMP | libvirt QEMU driver |")
print("|---|---:|---:|")
for k in keys:
    print(f"| {k} | {statistics.median(vals['qmp'][k]):.1f} | {statistics.median(vals['libvirt'][k]):.1f} |")
PY
