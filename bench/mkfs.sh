#!/usr/bin/env bash
# Benchmark for issues 2 and 11: `imgbuild mkfs` next to every peer, all in one run, on the
# same tree and the same filesystem size (what `imgbuild mkfs --size auto` picked):
#   directory input: imgbuild mkfs, fstool (crates.io, the other Rust ext4 writer; its default
#                    1 KiB blocks and 4 KiB blocks), mke2fs -t ext4 -d (the system's), tar cf
#   tar input:       imgbuild mkfs TREE.tar / TREE.tar.zst, mke2fs -d TREE.tar / TREE.tar.zst
#                    (e2fsprogs >= 1.47.1 reads archives; bookworm-backports has 1.47.2)
# Each row: median wall (min-max) and mean user + sys CPU from hyperfine; peak RSS from GNU
# time and allocated size from du (one more run each); whether `e2fsck -fn` passes (the
# system's 1.47.0 and the backported 1.47.2). Prints Markdown tables for BENCHMARKS.md.
#   bench/mkfs.sh [TREE] [RUNS]      (default /usr/share, 5 runs)
# fstool and e2fsprogs 1.47.2 go to target/bench-tools/ (cargo install --root, and the
# backported .debs unpacked with dpkg-deb -x: nothing is installed on the system).
# Run it alone: helpers, builds or VMs on the two cores move every figure.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH:/usr/sbin:/sbin"
tree=${1:-/usr/share}
runs=${2:-5}
FSTOOL_VERSION=0.5.2
E2FS_VERSION=1.47.2-3~bpo12+1
tools=$PWD/target/bench-tools

need() { command -v "$1" >/dev/null || { echo "bench: needs $1 ($2)" >&2; exit 1; }; }
need hyperfine "bash scripts/setup"
need zstd "apt-get install zstd"
[ -x /usr/bin/time ] || { echo "bench: needs GNU time (apt-get install time)" >&2; exit 1; }

cargo build --release -q -p imgbuild
imgbuild=$PWD/target/release/imgbuild
work=$(mktemp -d /var/tmp/imgbuild-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

# fstool, pinned, into target/bench-tools/bin.
fstool=$tools/bin/fstool
if ! { [ -x "$fstool" ] && "$fstool" --version | grep -qx "fstool $FSTOOL_VERSION"; }; then
    echo "bench: cargo install fstool $FSTOOL_VERSION (once, about 2 minutes)" >&2
    cargo install -q --locked --root "$tools" --version "$FSTOOL_VERSION" fstool
fi

# e2fsprogs 1.47.2 from bookworm-backports, unpacked (needs that apt source: scripts/setup adds it).
e2new=$tools/e2fsprogs-$E2FS_VERSION
if [ ! -x "$e2new/run" ]; then
    rm -rf "$e2new.part" && mkdir -p "$e2new.part/debs"
    if (cd "$e2new.part/debs" &&
        apt-get download -q "e2fsprogs=$E2FS_VERSION" "libext2fs2=$E2FS_VERSION" libarchive13 >/dev/null 2>&1); then
        for d in "$e2new.part"/debs/*.deb; do dpkg-deb -x "$d" "$e2new.part/root"; done
        cat >"$e2new.part/run" <<EOF
#!/bin/sh
# Runs a tool of the unpacked e2fsprogs $E2FS_VERSION with its own libraries.
tool=\$1; shift
LD_LIBRARY_PATH=$e2new/root/lib/x86_64-linux-gnu:$e2new/root/usr/lib/x86_64-linux-gnu exec $e2new/root/sbin/\$tool "\$@"
EOF
        chmod +x "$e2new.part/run"
        rm -rf "$e2new" && mv "$e2new.part" "$e2new"
    else
        rm -rf "$e2new.part"
        echo "bench: no e2fsprogs $E2FS_VERSION (apt-get download failed: is bookworm-backports a source? bash scripts/setup); tar input of mke2fs skipped" >&2
    fi
fi
have_new=false
# (sed, not head or grep -q: with pipefail a writer cut off by SIGPIPE fails the script)
[ -x "$e2new/run" ] && "$e2new/run" mke2fs -V 2>&1 | sed -n 1p | grep "1.47.2" >/dev/null && have_new=true
sys_e2=$(mke2fs -V 2>&1 | sed -n 1p)

bytes=$(du -sb "$tree" | cut -f1)
entries=$(find "$tree" | wc -l)
"$imgbuild" mkfs "$tree" "$work/probe.img" --size auto >/dev/null
size=$(stat -c %s "$work/probe.img")
rm -f "$work/probe.img"
kib=$((size / 1024))
tar cf "$work/tree.tar" -C "$tree" .
zstd -q -T0 "$work/tree.tar" -o "$work/tree.tar.zst"

# name|command (writes $work/out.img or $work/out.tar)
dir_rows=(
    "imgbuild mkfs|$imgbuild mkfs $tree $work/out.img --size $size"
    "fstool create (4 KiB blocks)|$fstool create -t ext4 -O block_size=4096 --size $size -o $work/out.img $tree"
    "fstool create (default: 1 KiB blocks)|$fstool create -t ext4 --size $size -o $work/out.img $tree"
    "mke2fs -t ext4 -d ($(echo "$sys_e2" | cut -d' ' -f2))|mke2fs -q -F -t ext4 -d $tree $work/out.img ${kib}k"
    "tar cf (no filesystem)|tar cf $work/out.tar -C $tree ."
)
tar_rows=(
    "imgbuild mkfs TREE.tar|$imgbuild mkfs $work/tree.tar $work/out.img --size $size"
    "imgbuild mkfs TREE.tar.zst|$imgbuild mkfs $work/tree.tar.zst $work/out.img --size $size"
)
if $have_new; then
    tar_rows+=(
        "mke2fs 1.47.2 -d TREE.tar|$e2new/run mke2fs -q -F -t ext4 -d $work/tree.tar $work/out.img ${kib}k"
        "mke2fs 1.47.2 -d TREE.tar.zst|$e2new/run mke2fs -q -F -t ext4 -d $work/tree.tar.zst $work/out.img ${kib}k"
    )
fi

fsck_of() {
    local img=$1 r=""
    if e2fsck -fn "$img" >"$work/fsck.log" 2>&1; then r="pass (1.47.0)"; else r="**fails** (1.47.0: $(grep -m1 -iE 'differences|error|wrong|invalid|bad' "$work/fsck.log" | sed 's/|/\\|/g' | cut -c1-60))"; fi
    if $have_new; then
        if "$e2new/run" e2fsck -fn "$img" >"$work/fsck.log" 2>&1; then r="$r, pass (1.47.2)"; else r="$r, **fails** (1.47.2)"; fi
    fi
    echo "$r"
}

# Runs one table: hyperfine over every row, then one measured run each for RSS, size, fsck.
table() {
    local title=$1; shift
    local rows=("$@") args=() i=0
    for r in "${rows[@]}"; do args+=(-n "${r%%|*}" "${r#*|}"); done
    hyperfine --warmup 1 --runs "$runs" --export-json "$work/h.json" \
        --prepare "rm -f $work/out.img $work/out.tar; sync" "${args[@]}" >&2
    : >"$work/extra"
    for r in "${rows[@]}"; do
        rm -f "$work/out.img" "$work/out.tar"
        local rss
        rss=$(/usr/bin/time -f '%M' sh -c "${r#*|} >/dev/null 2>&1" 2>&1 | tail -n1)
        local alloc="–" fsck="–"
        if [ -f "$work/out.img" ]; then
            alloc="$(du -k "$work/out.img" | cut -f1) KiB"
            fsck=$(fsck_of "$work/out.img")
        elif [ -f "$work/out.tar" ]; then
            alloc="$(du -k "$work/out.tar" | cut -f1) KiB (the tar)"
        fi
        printf '%s\t%s\t%s\t%s\n' "$i" "$rss" "$alloc" "$fsck" >>"$work/extra"
        i=$((i + 1))
    done
    python3 - "$work/h.json" "$work/extra" "$title" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
extra = [l.rstrip("\n").split("\t") for l in open(sys.argv[2])]
print(f"\n{sys.argv[3]}\n")
print("| | median wall (min–max) | mean user + sys | peak RSS | allocated | `e2fsck -fn` |")
print("| --- | --- | --- | --- | --- | --- |")
for r, (_, rss, alloc, fsck) in zip(res, extra):
    ts = r["times"]
    print(f"| {r['command']} | {r['median']:.3f} s ({min(ts):.3f}–{max(ts):.3f}) "
          f"| {r['user']:.2f} + {r['system']:.2f} s | {int(rss) // 1024} MiB | {alloc} | {fsck} |")
PY
}

echo "tree: $tree ($bytes bytes, $entries entries); filesystem size $size bytes; $(nproc) cores;"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%Y-%m-%d %H:%M UTC');"
echo "imgbuild $(git rev-parse --short HEAD 2>/dev/null || echo '?'), fstool $FSTOOL_VERSION, $sys_e2$($have_new && echo ", mke2fs $E2FS_VERSION")"
table "Directory input ($tree):" "${dir_rows[@]}"
table "Tar input (tar cf of $tree: $(stat -c %s "$work/tree.tar") bytes; .zst $(stat -c %s "$work/tree.tar.zst") bytes):" "${tar_rows[@]}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
