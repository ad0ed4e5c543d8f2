#!/usr/bin/env bash
# Benchmark for issue 3: `imgbuild recipe recipes/busybox.toml` with its inputs
# already cached, next to doing the same by hand on the same trees:
# `mke2fs -t ext4 -d` of the root tree (1 GiB, like the recipe) + `cpio -H newc | gzip -9`
# of the initramfs tree. Medians from hyperfine; peak memory from GNU time.
#   bench/recipe.sh [RUNS]      (default 10 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH:/usr/sbin:/sbin"
runs=${1:-10}
command -v hyperfine >/dev/null || { echo "bench: needs hyperfine (bash scripts/setup)" >&2; exit 1; }
cargo build --release -q -p imgbuild
imgbuild=${CARGO_TARGET_DIR:-$PWD/target}/release/imgbuild
work=$(mktemp -d /var/tmp/imgbuild-bench-recipe.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Warm the package cache (downloads on the first run only).
"$imgbuild" recipe --out "$work/out" recipes/busybox.toml >/dev/null

# The same trees, taken back out of what imgbuild wrote (debugfs rdump skips
# device nodes; mknod them so mke2fs sees the same entries).
mkdir "$work/root" "$work/initrd"
debugfs -R "rdump / $work/root" "$work/out/busybox/rootfs.img" 2>/dev/null
rm -rf "$work/root/lost+found"
mknod -m 600 "$work/root/dev/console" c 5 1
mknod -m 666 "$work/root/dev/null" c 1 3
(cd "$work/initrd" && gzip -dc "$work/out/busybox/initrd.img" | cpio -idm --quiet)
entries=$(find "$work/root" | wc -l)

by_hand="mke2fs -q -F -t ext4 -L busybox-root -d $work/root $work/m.img 1G \
 && cd $work/initrd && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -9 > $work/m.initrd"

echo "recipe: recipes/busybox.toml ($entries entries in the root tree), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
hyperfine --warmup 1 --runs "$runs" --export-json "$work/h.json" \
    --prepare "rm -f $work/m.img $work/m.initrd" \
    -n "imgbuild recipe" "$imgbuild recipe --out $work/out recipes/busybox.toml" \
    -n "mke2fs -d + cpio + gzip" "sh -c '$by_hand'"

python3 - "$work/h.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"median {r['command']:<26} {r['median']:.3f} s wall (min {r['min']:.3f}, max {r['max']:.3f}); "
          f"mean CPU user {r['user']:.3f} s + sys {r['system']:.3f} s")
PY
echo "imgbuild's own step timings (one run):"
IMGBUILD_TIMINGS=1 "$imgbuild" recipe --out "$work/out" recipes/busybox.toml 2>&1 >/dev/null | sed 's/^imgbuild: /  /'
echo "peak RSS imgbuild recipe: $(/usr/bin/time -f '%M' "$imgbuild" recipe --out "$work/out" recipes/busybox.toml 2>&1 >/dev/null | tail -n1) KiB"
echo "allocated rootfs.img: imgbuild $(du -k "$work/out/busybox/rootfs.img" | cut -f1) KiB, mke2fs $(du -k "$work/m.img" | cut -f1) KiB"
echo "initrd: imgbuild $(stat -c %s "$work/out/busybox/initrd.img") bytes, by hand $(stat -c %s "$work/m.initrd") bytes"
