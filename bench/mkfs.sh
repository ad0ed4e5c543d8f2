#!/usr/bin/env bash
# Benchmark for issue 2: `imgbuild mkfs` vs `mke2fs -t ext4 -d` vs `tar cf` on the same tree,
# side by side in one run, medians from hyperfine, peak memory from GNU time, allocated sizes.
#   bench/mkfs.sh [TREE] [RUNS]      (default /usr/share, 5 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH:/usr/sbin:/sbin"
tree=${1:-/usr/share}
runs=${2:-5}
command -v hyperfine >/dev/null || { echo "bench: needs hyperfine (bash scripts/setup)" >&2; exit 1; }
cargo build --release -q -p imgbuild
imgbuild=$PWD/target/release/imgbuild
work=$(mktemp -d /var/tmp/imgbuild-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

bytes=$(du -sb "$tree" | cut -f1)
entries=$(find "$tree" | wc -l)
# mke2fs needs a size: what our auto sizing picked, so both write the same filesystem size.
"$imgbuild" mkfs "$tree" "$work/probe.img" --size auto >/dev/null
size=$(stat -c %s "$work/probe.img")
rm -f "$work/probe.img"

echo "tree: $tree ($bytes bytes, $entries entries), fs size $size bytes, $(nproc) cores"
hyperfine --warmup 1 --runs "$runs" --export-json "$work/h.json" \
    --prepare "rm -f $work/a.img $work/m.img $work/t.tar; sync" \
    -n "imgbuild mkfs" "$imgbuild mkfs $tree $work/a.img --size $size" \
    -n "mke2fs -t ext4 -d" "mke2fs -q -F -t ext4 -d $tree $work/m.img $((size / 1024))k" \
    -n "tar cf" "tar cf $work/t.tar -C $tree ."

python3 - "$work/h.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"median {r['command']:<20} {r['median']:.3f} s  (min {r['min']:.3f}, max {r['max']:.3f})")
PY

peak() { /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -n1; }
rm -f "$work/a.img" "$work/m.img"
echo "peak RSS imgbuild mkfs: $(peak "$imgbuild" mkfs "$tree" "$work/a.img" --size "$size") KiB"
echo "peak RSS mke2fs -d:     $(peak mke2fs -q -F -t ext4 -d "$tree" "$work/m.img" "$((size / 1024))k") KiB"
echo "allocated imgbuild: $(du -k "$work/a.img" | cut -f1) KiB; mke2fs: $(du -k "$work/m.img" | cut -f1) KiB"
e2fsck -fn "$work/a.img" >/dev/null && echo "e2fsck -fn: clean"
