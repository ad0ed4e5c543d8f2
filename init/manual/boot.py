#!/usr/bin/env python3
"""Boots the hand-made images under QEMU (TCG), drives the serial console,
checks the status service through a loopback hostfwd, then powers off."""
import os, socket, subprocess, sys, time, tempfile, json

C = os.environ.get("C", os.path.expanduser("~/.cache/imgbuild-init"))
K = "6.1.0-56-amd64"
append = sys.argv[1] if len(sys.argv) > 1 else "console=ttyS0 root=/dev/vda ro"
mode = sys.argv[2] if len(sys.argv) > 2 else "full"
tmp = tempfile.mkdtemp(prefix="initboot-")
sock = os.path.join(tmp, "serial.sock")
port = 15115 + os.getpid() % 1000
RESTRICT = os.environ.get("RESTRICT", "on")
log = open(os.path.join(C, f"console-{mode}.log"), "wb")
argv = ["qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-nographic", "-no-reboot",
        "-kernel", f"{C}/x/boot/vmlinuz-{K}", "-initrd", f"{C}/initrd.img", "-append", append,
        "-drive", f"file={C}/rootfs.img,format=raw,if=virtio,snapshot=on",
        "-chardev", f"socket,id=s0,path={sock},server=on,wait=on", "-serial", "chardev:s0",
        "-monitor", f"unix:{tmp}/mon.sock,server=on,wait=off" if os.environ.get("CAD") else "none"]
if mode != "nonic":
    argv += ["-netdev", f"user,id=n0,restrict={RESTRICT},hostfwd=tcp:127.0.0.1:{port}-:5115,hostfwd=udp:127.0.0.1:{port}-:5115",
             "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56"]
else:
    argv += ["-nic", "none"]
q = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
print("qemu pid", q.pid, flush=True)
buf = b""
try:
    for _ in range(100):
        if os.path.exists(sock): break
        time.sleep(0.1)
    s = socket.socket(socket.AF_UNIX); s.connect(sock); s.settimeout(0.2)

    def pump(t=0.2):
        global buf
        end = time.time() + t
        while time.time() < end:
            try:
                d = s.recv(65536)
                if not d: return
                buf += d; log.write(d); log.flush()
            except socket.timeout:
                pass

    def wait_for(pat, timeout=120):
        end = time.time() + timeout
        while time.time() < end:
            if pat.encode() in buf: return True
            if q.poll() is not None: return False
            pump(0.2)
        return False

    def send(cmd, settle=2.0):
        s.sendall(cmd.encode() + b"\r"); pump(settle)

    ok = wait_for({"rescue": "waiting forever", "rescue-sh": "rescue shell"}.get(mode, "boot complete"), 180)
    print("reached end of boot:", ok, flush=True)
    if mode == "rescue":
        pump(3); print("qemu still running:", q.poll() is None)
    elif mode == "rescue-sh":
        pump(3); send("echo RESCUE; ls /; sleep 9 & jobs", 4); print("qemu still running:", q.poll() is None)
    else:
        pump(3)
        send("echo JOBTEST; sleep 100 & jobs; echo ENDJOBS", 4)
        send("hostname; ip -4 addr show eth0; ip route", 3)
        send("echo TTY=$(tty); ps | grep '[s]leep 30'; echo hi | nc -u -w1 127.0.0.1 5115; echo", 4)
        for c in os.environ.get("EXTRA", "").split(";;"):
            if c: send(c, 4)
        if mode == "full":
            t = socket.create_connection(("127.0.0.1", port), timeout=10)
            f = t.makefile("rwb")
            for r in ["status", "status"]:
                f.write(r.encode() + b"\n"); f.flush(); print("tcp:", f.readline().decode().strip())
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5)
            for i in range(3):
                u.sendto(b"udp hello", ("127.0.0.1", port))
                try:
                    print("udp:", u.recv(2000).decode()); break
                except socket.timeout:
                    print("udp: timeout")
            f.write(b"dirty 4000\n"); f.flush(); print("tcp:", f.readline().decode().strip())
            f.write(b"dirty 8\n"); f.flush(); print("tcp:", f.readline().decode().strip())
            time.sleep(1)
            f.write(b"dirty-check\n"); f.flush(); print("tcp:", f.readline().decode().strip())
            f.write(b"status\n"); f.flush(); print("tcp:", f.readline().decode().strip())
        if os.environ.get("CAD"):
            # Ctrl-Alt-Del on the (PS/2) keyboard: the kernel sends SIGINT to PID 1.
            m = socket.socket(socket.AF_UNIX); m.connect(f"{tmp}/mon.sock")
            m.sendall(b"sendkey ctrl-alt-delete\n"); time.sleep(0.5); m.close()
        else:
            send(os.environ.get("FINAL", "poweroff"), 1)
        t0 = time.time()
        while q.poll() is None and time.time() - t0 < 60: pump(0.5)
        print("qemu exit code:", q.poll(), "after %.1fs" % (time.time() - t0))
finally:
    if q.poll() is None:
        q.kill(); q.wait()
    log.close()
