//! `imgbuild recipe recipes/busybox.toml` with the real Debian kernel and
//! busybox-static packages (fetched into $IMGBUILD_CACHE or
//! ~/.cache/imgbuild), checked with e2fsck, debugfs, cpio and our own
//! `imgbuild inspect`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{cpio_listing, imgbuild, imgbuild_cmd, ok, recipe_path, sha256, tool};
use guest_contract::init_config::InitConfig;
use imgbuild::init_binary::check_static;

fn build(out: &Path, recipe: &Path) -> serde_json::Value {
    let json = ok(imgbuild(&[
        "recipe",
        "--json",
        "--out",
        out.to_str().unwrap(),
        recipe.to_str().unwrap(),
    ]));
    serde_json::from_str(&json).unwrap()
}

fn debugfs(img: &Path, req: &str) -> String {
    let o = Command::new("debugfs")
        .args(["-R", req])
        .arg(img)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn sha_of_outputs(dir: &Path) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for f in [
        "rootfs.img",
        "initrd.img",
        "vmlinuz",
        "busybox.cfg",
        "busybox.xen.xml",
        "busybox.qemu.xml",
        "manifest.json",
    ] {
        v.push((f.to_owned(), sha256(&dir.join(f))));
    }
    v
}

/// The whole build, checked from the outside; then a second build must be
/// byte-identical.
#[test]
fn busybox_recipe_builds_a_bootable_reproducible_guest() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let m = build(&out, &recipe_path());
    let dir = out.join("busybox");
    let kver = m["kernel_version"].as_str().unwrap().to_owned();
    assert!(kver.ends_with("-amd64"), "{kver}");
    // The kernel image is that version (read from its bzImage header).
    let vmlinuz = std::fs::read(dir.join("vmlinuz")).unwrap();
    assert_eq!(
        imgbuild::kernel::bzimage_version(&vmlinuz).as_deref(),
        Some(kver.as_str())
    );

    // Manifest: every output with its real size and sha256.
    let files: Vec<&str> = m["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "rootfs.img",
            "initrd.img",
            "vmlinuz",
            "busybox.cfg",
            "busybox.xen.xml",
            "busybox.qemu.xml"
        ]
    );
    for o in m["outputs"].as_array().unwrap() {
        let f = o["file"].as_str().unwrap();
        let real = imgbuild::manifest::digest(&dir.join(f)).unwrap();
        assert_eq!(o["size"], real.size, "{f}");
        assert_eq!(o["sha256"], real.sha256.as_str(), "{f}");
    }
    assert_eq!(m["guest"]["memory_mib"], 512);
    assert_eq!(m["guest"]["address"], "10.99.0.2");
    assert_eq!(m["guest"]["status_port"], 5115);
    assert_eq!(m["guest"]["root_label"], "busybox-root");
    let on_disk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(on_disk, m);

    // rootfs.img: 1 GiB, sparse, clean for e2fsck.
    let img = dir.join("rootfs.img");
    let meta = std::fs::metadata(&img).unwrap();
    assert_eq!(meta.len(), 1 << 30);
    use std::os::unix::fs::MetadataExt;
    assert!(
        meta.blocks() * 512 < 64 << 20,
        "image not sparse: {} bytes allocated",
        meta.blocks() * 512
    );
    tool("e2fsck", &["-fn", img.to_str().unwrap()]);

    // imgbuild inspect (ext4-view, in-process reader).
    let bin = ok(imgbuild(&["inspect", img.to_str().unwrap(), "/bin"]));
    assert!(
        bin.lines()
            .any(|l| l.starts_with("100755 ") && l.ends_with(" busybox")),
        "{bin}"
    );
    assert!(
        bin.lines()
            .any(|l| l.starts_with("120777 ") && l.ends_with(" sh -> /bin/busybox")),
        "{bin}"
    );
    let sbin = ok(imgbuild(&["inspect", img.to_str().unwrap(), "/sbin/init"]));
    assert!(sbin.starts_with("100755 -rwxr-xr-x     0     0 "), "{sbin}");
    let all = ok(imgbuild(&["inspect", "-r", img.to_str().unwrap(), "/"]));
    let applet_links = all
        .lines()
        .filter(|l| l.contains(" -> /bin/busybox"))
        .count();
    assert!(applet_links > 200, "only {applet_links} applet links");
    for d in [
        "/dev",
        "/proc",
        "/sys",
        "/etc",
        "/run",
        "/root",
        "/mnt",
        "/media",
        "/opt",
        "/lib/modules",
    ] {
        assert!(
            all.lines()
                .any(|l| l.starts_with("040") && l.ends_with(&format!(" {d}"))),
            "{d} missing"
        );
    }
    assert!(
        all.lines()
            .any(|l| l.starts_with("041777 ") && l.ends_with(" /tmp")),
        "tmp not 1777"
    );
    assert!(
        all.lines()
            .any(|l| l.starts_with("020600 ") && l.ends_with(" /dev/console"))
    );
    assert!(
        all.lines()
            .any(|l| l.starts_with("020666 ") && l.ends_with(" /dev/null"))
    );
    assert!(
        all.lines().all(|l| l.split_whitespace().nth(2) == Some("0")
            && l.split_whitespace().nth(3) == Some("0")),
        "not all root:root"
    );

    // debugfs agrees.
    let ls = debugfs(&img, "ls -l /bin");
    assert!(ls.contains(" busybox\n") || ls.contains(" busybox"), "{ls}");
    let console = debugfs(&img, "stat /dev/console");
    assert!(
        console.contains("Device major/minor number: 05:01"),
        "{console}"
    );
    let passwd = debugfs(&img, "cat /etc/passwd");
    assert!(passwd.starts_with("root:x:0:0:"), "{passwd}");
    assert_eq!(debugfs(&img, "cat /etc/hostname"), "busybox\n");

    // Modules with their dependencies, and a modules.dep for them.
    let kdir = format!("/lib/modules/{kver}");
    let dep = debugfs(&img, &format!("cat {kdir}/modules.dep"));
    let line = |m: &str| {
        dep.lines()
            .find(|l| l.split(':').next().unwrap_or("").ends_with(m))
            .map(str::to_owned)
    };
    for m in [
        "/xen-netfront.ko",
        "/virtio_net.ko",
        "/xen-blkfront.ko",
        "/virtio_blk.ko",
    ] {
        let l = line(m).unwrap_or_else(|| panic!("{m} not in modules.dep:\n{dep}"));
        let path = l.split(':').next().unwrap();
        let st = debugfs(&img, &format!("stat {kdir}/{path}"));
        assert!(st.contains("Type: regular"), "{path}: {st}");
    }
    // virtio_net needs net_failover, which needs failover.
    let vn = line("/virtio_net.ko").unwrap();
    assert!(
        vn.contains("net_failover.ko") && vn.contains("failover.ko"),
        "{vn}"
    );
    for dep_path in vn.split(':').nth(1).unwrap().split_whitespace() {
        assert!(
            line(&format!("/{}", dep_path.rsplit('/').next().unwrap())).is_some(),
            "{dep_path} not installed"
        );
    }

    // The init: static, at /sbin/init, and its config lists the modules.
    let dumped = tmp.path().join("init");
    debugfs(&img, &format!("dump /sbin/init {}", dumped.display()));
    check_static(&std::fs::read(&dumped).unwrap(), "/sbin/init").unwrap();
    let conf = InitConfig::parse(&debugfs(&img, "cat /etc/imgbuild/init.conf")).unwrap();
    assert_eq!(conf.kernel_version, kver);
    assert!(
        conf.stage2_modules
            .iter()
            .any(|m| m.ends_with("virtio_net.ko")),
        "{:?}",
        conf.stage2_modules
    );
    assert!(
        conf.stage2_modules
            .iter()
            .position(|m| m.ends_with("/failover.ko"))
            < conf
                .stage2_modules
                .iter()
                .position(|m| m.ends_with("virtio_net.ko"))
    );
    assert_eq!(
        conf.net.as_ref().unwrap().address.addr().to_string(),
        "10.99.0.2"
    );
    assert!(conf.status.enabled);

    // initrd.img: under 2 MiB, lists right with cpio.
    let initrd = dir.join("initrd.img");
    assert!(std::fs::metadata(&initrd).unwrap().len() < 2 << 20);
    let listing = cpio_listing(&initrd, true);
    let names: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    for want in ["init", "etc/imgbuild/init.conf", "dev/console"] {
        assert!(names.contains(&want), "{want} not in initrd:\n{listing}");
    }
    assert!(
        names.iter().any(|n| n.ends_with("/xen-blkfront.ko")),
        "{listing}"
    );
    assert!(
        names.iter().any(|n| n.ends_with("/virtio_blk.ko")),
        "{listing}"
    );
    // Debian's ext4 is a module: the initramfs needs it (and its deps) to mount the root.
    for m in [
        "/ext4.ko",
        "/jbd2.ko",
        "/mbcache.ko",
        "/crc32c_generic.ko",
        "/virtio_pci.ko",
    ] {
        assert!(
            names.iter().any(|n| n.ends_with(m)),
            "{m} not in initrd:\n{listing}"
        );
    }
    assert!(
        !names.iter().any(|n| n.ends_with("/xen-netfront.ko")),
        "network driver in initrd:\n{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with(" init")),
        "{listing}"
    );

    // xl.cfg snapshot (the output directory varies per run).
    let cfg = std::fs::read_to_string(dir.join("busybox.cfg"))
        .unwrap()
        .replace(dir.to_str().unwrap(), "<OUT>");
    let mac = m["guest"]["mac"].as_str().unwrap().to_owned();
    assert_eq!(mac, imgbuild::recipe::default_mac("busybox").to_string());
    let want = format!(
        r#"# Xen PV guest "busybox", written by imgbuild. Start it with: xl create busybox.cfg
type = "pv"
name = "busybox"
kernel = "<OUT>/vmlinuz"
ramdisk = "<OUT>/initrd.img"
cmdline = "root=/dev/xvda ro console=hvc0 ip=10.99.0.2::10.99.0.1:255.255.255.0:busybox:eth0:off"
memory = 512
vcpus = 1
disk = [ 'format=raw, vdev=xvda, access=rw, target=<OUT>/rootfs.img' ]
vif = [ 'mac={mac}, bridge=xenbr0' ]
on_poweroff = "destroy"
on_reboot = "restart"
on_crash = "destroy"
"#
    );
    assert_eq!(cfg, want);

    // Build again: byte-identical outputs.
    let first = sha_of_outputs(&dir);
    let m2 = build(&out, &recipe_path());
    assert_eq!(m2, m);
    assert_eq!(sha_of_outputs(&dir), first);
}

/// Build-time recipe errors: named with file:line:col and key, previous
/// outputs untouched, nothing half-written left behind.
#[test]
fn failed_builds_leave_previous_outputs_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let base = std::fs::read_to_string(recipe_path()).unwrap();
    let good = tmp.path().join("busybox.toml");
    std::fs::write(&good, &base).unwrap();
    build(&out, &good);
    let dir = out.join("busybox");
    let before = sha_of_outputs(&dir);

    let cases: [(&str, String, &str, &str); 3] = [
        (
            "unknown module",
            base.replace(
                "load = [\"xen-netfront\", \"virtio_net\"]",
                "load = [\"xen-netfront\", \"virtio_nett\"]",
            ),
            "key `modules.load`",
            "module `virtio_nett` does not exist in kernel",
        ),
        (
            "closest names",
            base.replace("\"virtio_blk\",", "\"xen-blkfrnt\","),
            "key `modules.initramfs`",
            "closest: xen_blkfront",
        ),
        (
            "size too small",
            base.replace("size = \"1G\"", "size = \"4M\""),
            "key `rootfs.size`",
            "is needed",
        ),
    ];
    for (name, text, key, msg) in cases {
        let f = tmp.path().join("bad.toml");
        std::fs::write(&f, &text).unwrap();
        let line = text
            .lines()
            .position(|l| {
                l.contains("virtio_nett") || l.contains("xen-blkfrnt") || l.contains("\"4M\"")
            })
            .unwrap()
            + 1;
        // A build, and `--check`, find the same problem.
        for check in [false, true] {
            let mut args = vec![
                "recipe",
                "--out",
                out.to_str().unwrap(),
                f.to_str().unwrap(),
            ];
            if check {
                args.insert(1, "--check");
            }
            let o = imgbuild(&args);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(!o.status.success(), "{name} (check={check}): succeeded");
            assert!(
                err.contains(&format!("{}:{line}:", f.display())),
                "{name} (check={check}): no file:line in {err}"
            );
            assert!(
                err.contains(key) && err.contains(msg),
                "{name} (check={check}): {err}"
            );
            assert_eq!(sha_of_outputs(&dir), before, "{name}: outputs changed");
            let leftovers: Vec<_> = std::fs::read_dir(&out)
                .unwrap()
                .flatten()
                .map(|e| e.file_name())
                .collect();
            assert_eq!(
                leftovers,
                [std::ffi::OsString::from("busybox")],
                "{name}: staging left behind"
            );
        }
    }

    // `--check` of a good recipe writes nothing to --out.
    let fresh = tmp.path().join("fresh-out");
    let o = imgbuild(&[
        "recipe",
        "--check",
        "--out",
        fresh.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!fresh.exists(), "--check wrote to --out");

    // A dynamically linked init (IMGBUILD_INIT) is refused before anything is written.
    let o = imgbuild_cmd()
        .args([
            "recipe",
            "--out",
            out.to_str().unwrap(),
            good.to_str().unwrap(),
        ])
        .env("IMGBUILD_INIT", "/bin/true")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "dynamic init accepted");
    assert!(
        err.contains("/bin/true") && err.contains("not static") && err.contains("PT_INTERP"),
        "{err}"
    );
    assert_eq!(
        sha_of_outputs(&dir),
        before,
        "dynamic init: outputs changed"
    );
}

/// Local inputs (an unpacked kernel directory, a busybox binary) and every
/// kind of extra file, with modes and owners, paths relative to the recipe.
#[test]
fn local_inputs_and_extra_files() {
    // The packages the shipped recipe uses, unpacked in the cache.
    let tmp = tempfile::tempdir().unwrap();
    build(&tmp.path().join("warm"), &recipe_path());
    let unpacked = imgbuild::pipeline::cache_dir().unwrap().join("unpacked");
    let find = |prefix: &str| {
        std::fs::read_dir(&unpacked)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}* in {}", unpacked.display()))
    };
    let kernel_dir = find("linux-image-");
    let busybox_bin = find("busybox-static").join("bin/busybox");

    let rdir = tmp.path().join("recipe");
    std::fs::create_dir_all(rdir.join("files/tree/sub")).unwrap();
    std::fs::write(rdir.join("files/motd"), "local motd\n").unwrap();
    std::fs::write(rdir.join("files/tree/sub/data.txt"), "data\n").unwrap();
    let recipe = rdir.join("extras.toml");
    std::fs::write(
        &recipe,
        format!(
            r#"[guest]
name = "extras"
memory = "256M"
vcpus = 2
[inputs]
kernel = {{ path = "{}" }}
busybox = {{ path = "{}" }}
[rootfs]
size = "auto"
[[rootfs.files]]
dest = "/etc//motd"
source = "files/motd"
mode = "0600"
owner = "1000:100"
[[rootfs.files]]
dest = "/srv/data"
source = "files/tree"
[[rootfs.files]]
dest = "/var/lib/x/../y"
directory = true
mode = "0750"
[[rootfs.files]]
dest = "/usr/bin/vi"
symlink = "/bin/true"
[[rootfs.files]]
dest = "/dev/xvdb"
block_device = {{ major = 202, minor = 16 }}
[[rootfs.files]]
dest = "/dev/ttyS0"
char_device = {{ major = 4, minor = 64 }}
mode = "0620"
[[rootfs.files]]
dest = "/run/fifo"
fifo = true
[modules]
load = ["virtio_net"]
[xen]
bridge = "br0"
disk_target = "/srv/xen/extras/rootfs.img"
on_reboot = "destroy"
"#,
            kernel_dir.display(),
            busybox_bin.display()
        ),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let m = build(&out, &recipe);
    let dir = out.join("extras");
    let img = dir.join("rootfs.img");
    tool("e2fsck", &["-fn", img.to_str().unwrap()]);
    assert_eq!(debugfs(&img, "cat /etc/motd"), "local motd\n");
    let st = debugfs(&img, "stat /etc/motd");
    assert!(
        st.contains("User:  1000   Group:   100") && st.contains("Mode:  0600"),
        "{st}"
    );
    assert_eq!(debugfs(&img, "cat /srv/data/sub/data.txt"), "data\n");
    let y = debugfs(&img, "stat /var/lib/y");
    assert!(
        y.contains("Type: directory") && y.contains("Mode:  0750"),
        "{y}"
    );
    assert!(!debugfs(&img, "stat /var/lib/x").contains("Type:"));
    let vi = ok(imgbuild(&["inspect", img.to_str().unwrap(), "/usr/bin/vi"]));
    assert!(vi.ends_with(" vi -> /bin/true\n"), "{vi}");
    let xvdb = debugfs(&img, "stat /dev/xvdb");
    assert!(
        xvdb.contains("Type: block") && xvdb.contains("Device major/minor number: 202:16"),
        "{xvdb}"
    );
    let tty = debugfs(&img, "stat /dev/ttyS0");
    assert!(
        tty.contains("Type: character")
            && tty.contains("Mode:  0620")
            && tty.contains("Device major/minor number: 04:64"),
        "{tty}"
    );
    assert!(debugfs(&img, "stat /run/fifo").contains("Type: FIFO"));
    // No network: no ip= and a vif without a MAC.
    let cfg = std::fs::read_to_string(dir.join("extras.cfg")).unwrap();
    assert!(
        cfg.contains("cmdline = \"root=/dev/xvda ro console=hvc0\"\n"),
        "{cfg}"
    );
    assert!(cfg.contains("vif = [ 'bridge=br0' ]\n"), "{cfg}");
    assert!(
        cfg.contains(
            "disk = [ 'format=raw, vdev=xvda, access=rw, target=/srv/xen/extras/rootfs.img' ]\n"
        ),
        "{cfg}"
    );
    assert!(cfg.contains("on_reboot = \"destroy\"\n"), "{cfg}");
    assert!(
        cfg.contains("vcpus = 2\n") && cfg.contains("memory = 256\n"),
        "{cfg}"
    );
    assert!(m["guest"]["mac"].is_null());
}
