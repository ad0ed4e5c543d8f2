#!/usr/bin/env python3
"""Benchmark of `imgrun migrate-check` under QEMU (issues 5 and 14); run by
bench/migrate.sh, which builds what it needs.

For each variant (the fast boot, which is the default, and `--legacy-boot`,
the previous defaults), RUNS complete runs, interleaved so that both see the
same machine: end to end, boot (QEMU spawn to the status service's first
answer), the boot's stages, the client-seen downtime (longest gap of the UDP
probe, which the init answers, and of an ICMP echo, which the kernel
answers), QEMU's own downtime. Then the same with `--dirty 64`.

Stages come from the runner's events and the console log, watched as QEMU
writes it: the wall-clock time of kernel t=0 is the arrival of a line printed
live minus its printk timestamp; QEMU's own start (to its QMP greeting, the
kernel file loaded) is measured apart with `-S`.
"""

import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

IMGRUN, IMAGE, RUNS = sys.argv[1], sys.argv[2], int(sys.argv[3])
EXTRA = sys.argv[4:]
VARIANTS = [("fast boot (default)", []), ("--legacy-boot (previous defaults)", ["--legacy-boot"])]

KTS = re.compile(rb"^\[\s*(\d+\.\d+)\] (.*)$")
MARKS = {
    "run_init": b"Run /init as init process",
    "switched": b"switched root; exec",
    "stage2": b"stage 2 (root)",
    "status": b"status service on port",
}


def watch(path, stop, lines):
    """Appends (wall time, line) for each line of `path` as it grows."""
    buf, pos = b"", 0
    while not stop.is_set():
        try:
            with open(path, "rb") as f:
                f.seek(pos)
                data = f.read()
        except FileNotFoundError:
            data = b""
        now = time.monotonic()
        if data:
            pos += len(data)
            buf += data
            *done, buf = buf.split(b"\n")
            lines.extend((now, l.rstrip(b"\r")) for l in done)
        time.sleep(0.002)


def one(flags):
    logs = tempfile.mkdtemp(prefix="imgrun-bench-", dir="/var/tmp")
    stop, lines = threading.Event(), []
    console = os.path.join(logs, "qemu-a-1.console.log")
    w = threading.Thread(target=watch, args=(console, stop, lines), daemon=True)
    w.start()
    t0 = time.monotonic()
    p = subprocess.Popen([IMGRUN, "migrate-check", IMAGE, "--json", "--log-dir", logs, *flags, *EXTRA],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    events = []
    for l in p.stderr:
        events.append((time.monotonic(), l.decode(errors="replace").strip()))
    out = p.stdout.read()
    p.wait()
    wall = time.monotonic() - t0
    time.sleep(0.01)
    stop.set()
    w.join()
    subprocess.run(["rm", "-rf", logs])
    if p.returncode != 0:
        sys.stderr.write("\n".join(e for _, e in events[-30:]) + "\n" + out.decode(errors="replace"))
        sys.exit(f"bench: a run of imgrun {' '.join(flags)} failed")
    r = json.loads(out)
    m = r["migrations"][0]
    answered = next(t for t, e in events if "answered after" in e)
    spawn = answered - r["boot_ms"] / 1000.0
    k = {}
    for t, l in lines:
        mt = KTS.match(l)
        if not mt:
            continue
        for name, pat in MARKS.items():
            if name not in k and pat in mt.group(2):
                k[name] = (float(mt.group(1)), t)
    # Kernel t=0 on the wall clock, from a line printed live.
    kzero = k["run_init"][1] - k["run_init"][0]
    row = {
        "end to end (s)": wall,
        "boot: QEMU spawn to first answer (s)": r["boot_ms"] / 1000.0,
        "  QEMU, firmware, kernel load/decompression (s)": kzero - spawn,
        "  kernel init to /init (s)": k["run_init"][0],
        "  stage 1: initramfs, modules, root mount (s)": k["switched"][0] - k["run_init"][0],
        "  switch root to stage 2 (s)": k["stage2"][0] - k["switched"][0],
        "  stage 2: mounts, modules, eth0, service (s)": k["status"][0] - k["stage2"][0],
        "  service up to the runner's first answer (s)": answered - k["status"][1],
        "probe gap, UDP / init (ms)": m["probe"]["longest_gap_ms"],
        "QEMU downtime (ms)": m["stats"]["downtime_ms"],
        "MB transferred": m["stats"]["transferred_bytes"] / 1e6,
    }
    if m["probe"].get("icmp"):
        row["echo gap, ICMP / kernel (ms)"] = m["probe"]["icmp"]["longest_gap_ms"]
    return row


def qemu_start(kernel, bios):
    """QEMU spawn to its QMP greeting, paused (-S), loading `kernel`."""
    d = tempfile.mkdtemp(prefix="imgrun-bench-qmp-", dir="/var/tmp")
    sock = os.path.join(d, "qmp")
    argv = ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-cpu", "max", "-m", "512M",
            "-nodefaults", "-no-user-config", "-display", "none", "-S",
            "-kernel", kernel, "-initrd", os.path.join(IMAGE, "initrd.img"),
            "-qmp", f"unix:{sock},server=on,wait=off"] + (["-bios", bios] if bios else [])
    t0 = time.monotonic()
    q = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while True:
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(sock)
                s.recv(4096)
                return time.monotonic() - t0
            except OSError:
                if q.poll() is not None:
                    sys.exit("bench: QEMU exited: " + q.stderr.read().decode(errors="replace"))
                time.sleep(0.002)
    finally:
        q.kill()
        q.wait()
        subprocess.run(["rm", "-rf", d])


def p90(v):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(0.9 * (len(v) - 1))))]


def table(title, results):
    names = [n for n, _ in VARIANTS]
    keys = list(results[names[0]][0].keys())
    print(f"\n{title} ({RUNS} runs each, interleaved; median / p90)\n")
    print("| measure | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for key in keys:
        cells = []
        for n in names:
            v = [r[key] for r in results[n] if key in r]
            cells.append(f"{statistics.median(v):.3f} / {p90(v):.3f}" if "(s)" in key
                         else f"{statistics.median(v):.1f} / {p90(v):.1f}")
        print(f"| {key} | " + " | ".join(cells) + " |")


def main():
    qver = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    print(f"imgrun migrate-check {IMAGE}; {os.cpu_count()} cores; {qver}; extra options: {' '.join(EXTRA) or 'none'}")
    for title, extra in [("idle guest", []), ("--dirty 64", ["--dirty", "64"])]:
        results = {n: [] for n, _ in VARIANTS}
        for i in range(RUNS):
            for n, flags in VARIANTS:
                r = one(flags + extra)
                results[n].append(r)
                print(f"  {title}, run {i + 1}, {n}: {r['end to end (s)']:.2f} s, boot "
                      f"{r['boot: QEMU spawn to first answer (s)']:.2f} s, gap {r['probe gap, UDP / init (ms)']:.0f} ms",
                      file=sys.stderr)
        table(f"`imgrun migrate-check`, {title}", results)
    # QEMU's own start, loading each kernel file.
    cache = os.environ.get("IMGRUN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "imgrun")
    import hashlib
    sha = hashlib.sha256(open(os.path.join(IMAGE, "vmlinuz"), "rb").read()).hexdigest()
    pvh = os.path.join(cache, "pvh", f"{sha}.vmlinux")
    starts = {"fast: PVH vmlinux, qboot": [], "legacy: bzImage, SeaBIOS": []}
    for _ in range(RUNS):
        starts["fast: PVH vmlinux, qboot"].append(qemu_start(pvh, "/usr/share/qemu/qboot.rom"))
        starts["legacy: bzImage, SeaBIOS"].append(qemu_start(os.path.join(IMAGE, "vmlinuz"), None))
    print(f"\nQEMU spawn to QMP greeting, paused, kernel loaded ({RUNS} runs; median / p90)\n")
    print("| QEMU start | s |\n|---|---:|")
    for n, v in starts.items():
        print(f"| {n} | {statistics.median(v):.3f} / {p90(v):.3f} |")


main()
