//! What only a build can find wrong — conflicts between files, programs the
//! init would start that are not in the image, missing block drivers, an
//! initramfs over budget, a size the host cannot hold — with real Debian
//! inputs, through `imgbuild recipe --check` (which writes nothing) and a
//! real build where the image itself is the evidence.

mod common;

use std::path::Path;

use common::{imgbuild, ok, tool};

/// A recipe that is wrong only at build time, and the error it must give.
struct Case {
    name: &'static str,
    /// The recipe after `[guest] name = "t"` (which is lines 1-2).
    body: &'static str,
    line_col: &'static str,
    key: &'static str,
    message: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "a file over /etc",
        body: "[[rootfs.files]]\ndest = \"/etc\"\ntext = \"oops\"\n",
        line_col: "3:1",
        key: "rootfs.files[0].dest",
        message: "`/etc` is a directory of the image holding /etc/group, /etc/hostname, /etc/hosts, … (from the builder's standard contents, which the guest needs); a file, link or device there would replace all of it",
    },
    Case {
        name: "a file over a directory an earlier entry made",
        body: "[[rootfs.files]]\ndest = \"/etc/motd/x\"\ntext = \"x\"\n[[rootfs.files]]\ndest = \"/etc/motd\"\ntext = \"y\"\n",
        line_col: "6:1",
        key: "rootfs.files[1].dest",
        message: "`/etc/motd` is a directory of the image holding /etc/motd/x (from rootfs.files[0] at ",
    },
    Case {
        name: "the same dest twice",
        body: "[[rootfs.files]]\ndest = \"/srv/a\"\ntext = \"x\"\n[[rootfs.files]]\ndest = \"/srv//a\"\ntext = \"y\"\n",
        line_col: "6:1",
        key: "rootfs.files[1].dest",
        message: "`/srv/a` is also the destination of rootfs.files[0] at ",
    },
    Case {
        name: "a file inside a standard file",
        body: "[[rootfs.files]]\ndest = \"/etc/passwd/x\"\ntext = \"x\"\n",
        line_col: "3:1",
        key: "rootfs.files[0].dest",
        message: "`/etc/passwd/x` would be inside `/etc/passwd`, which is a file, link or device",
    },
    Case {
        name: "a file where the init mounts /proc",
        body: "[[rootfs.files]]\ndest = \"/proc\"\ntext = \"x\"\n",
        line_col: "3:1",
        key: "rootfs.files[0].dest",
        message: "`/proc` is a directory of the image",
    },
    Case {
        name: "a service whose program busybox puts elsewhere",
        body: "[[init.services]]\ncommand = [\"/bin/httpd\", \"-f\", \"-p\", \"80\"]\n",
        line_col: "4:11",
        key: "init.services[0].command",
        message: "`/bin/httpd` is not in the image; `httpd` is at /usr/sbin/httpd",
    },
    Case {
        name: "a console shell that is not there",
        body: "[init]\nshell = \"/bin/bash -l\"\n",
        line_col: "4:9",
        key: "init.shell",
        message: "`/bin/bash` is not in the image",
    },
    Case {
        name: "a service that is not executable",
        body: "[[rootfs.files]]\ndest = \"/usr/local/bin/job\"\ntext = \"#!/bin/sh\\necho hi\\n\"\n[[init.services]]\ncommand = [\"/usr/local/bin/job\"]\nrestart = \"once\"\n",
        line_col: "7:11",
        key: "init.services[0].command",
        message: "`/usr/local/bin/job` is not executable in the image",
    },
    Case {
        name: "no block driver in the initramfs",
        body: "[modules]\ninitramfs = []\n",
        line_col: "4:13",
        key: "modules.initramfs",
        message: "the guest could not find its root disk under Xen: xen-blkfront is neither built into kernel ",
    },
    Case {
        name: "no QEMU block driver in the initramfs",
        body: "[modules]\ninitramfs = [\"xen-blkfront\"]\n",
        line_col: "4:13",
        key: "modules.initramfs",
        message: "the guest could not find its root disk under QEMU: virtio_blk and virtio_pci is neither built into kernel ",
    },
    Case {
        name: "an initramfs over its budget",
        body: "[modules]\ninitramfs = [\"xen-blkfront\", \"virtio_blk\", \"virtio_pci\", \"amdgpu\"]\n",
        line_col: "4:13",
        key: "modules.initramfs",
        message: "over the 2 MiB limit; its largest modules (uncompressed, with their dependencies): amdgpu.ko (",
    },
    Case {
        name: "a size the host cannot hold in one file",
        body: "[rootfs]\nsize = \"100T\"\n",
        line_col: "4:8",
        key: "rootfs.size",
        message: "100 TiB is more than the filesystem of ",
    },
    Case {
        name: "a size the contents do not fit",
        body: "[rootfs]\nsize = \"1M\"\n",
        line_col: "4:8",
        key: "rootfs.size",
        message: "1 MiB is too small for the contents: at least ",
    },
];

fn check(dir: &Path, file: &str, text: &str) -> std::process::Output {
    let recipe = dir.join(file);
    std::fs::write(&recipe, text).unwrap();
    let out = dir.join("out");
    imgbuild(&[
        "recipe",
        "--check",
        recipe.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn build_time_mistakes_name_file_line_key_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (n, case) in CASES.iter().enumerate() {
        let file = format!("case{n}.toml");
        let o = check(
            tmp.path(),
            &file,
            &format!("[guest]\nname = \"t\"\n{}", case.body),
        );
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        let recipe = tmp.path().join(&file);
        let head = format!(
            "{}:{}: key `{}`: ",
            recipe.display(),
            case.line_col,
            case.key
        );
        if o.status.success() || !stderr.contains(&head) || !stderr.contains(case.message) {
            failures.push(format!(
                "{}: exit {}, want {head}…{}…, got:\n{stderr}",
                case.name, o.status, case.message
            ));
        }
        if stderr.matches("error:").count() != 1 {
            failures.push(format!(
                "{}: the error is not said once:\n{stderr}",
                case.name
            ));
        }
    }
    // --check wrote nothing: no output directory, no staging, no scratch.
    assert!(
        !tmp.path().join("out").exists(),
        "--check made the output directory"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn files_the_init_hides_are_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let o = check(
        tmp.path(),
        "dev.toml",
        "[guest]\nname = \"t\"\n[[rootfs.files]]\ndest = \"/dev/xvdb\"\nblock_device = { major = 202, minor = 16 }\n[[rootfs.files]]\ndest = \"/tmp/x\"\ntext = \"x\"\n",
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    for (line, what) in [("4:8", "devtmpfs on /dev"), ("7:8", "tmpfs on /tmp")] {
        assert!(
            stderr.contains(&format!(
                "warning: {}:{line}: key `rootfs.files[",
                tmp.path().join("dev.toml").display()
            )) && stderr.contains(&format!(
                "hidden while the guest runs: the init mounts {what}"
            )),
            "{line} {what}: {stderr}"
        );
    }
}

/// A copied directory keeps its own modes (it used to land 0644); `mode` and
/// `dir_mode` set its files' and directories' for the whole tree.
#[test]
fn copied_trees_keep_their_modes_unless_told() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let www = tmp.path().join("files/www");
    std::fs::create_dir_all(www.join("cgi")).unwrap();
    std::fs::write(www.join("index.html"), "hi\n").unwrap();
    std::fs::write(www.join("cgi/run"), "#!/bin/sh\n").unwrap();
    std::fs::write(tmp.path().join("files/tool"), "#!/bin/sh\n").unwrap();
    for (p, m) in [
        ("files/www", 0o755),
        ("files/www/cgi", 0o750),
        ("files/www/index.html", 0o644),
        ("files/www/cgi/run", 0o700),
        ("files/tool", 0o755),
    ] {
        std::fs::set_permissions(tmp.path().join(p), std::fs::Permissions::from_mode(m)).unwrap();
    }
    let recipe = tmp.path().join("www.toml");
    std::fs::write(
        &recipe,
        "[guest]\nname = \"www\"\n[rootfs]\nsize = \"auto\"\n\
         [[rootfs.files]]\ndest = \"/srv/www\"\nsource = \"files/www\"\n\
         [[rootfs.files]]\ndest = \"/srv/flat\"\nsource = \"files/www\"\nmode = \"0600\"\ndir_mode = \"0711\"\n\
         [[rootfs.files]]\ndest = \"/usr/local/bin/tool\"\nsource = \"files/tool\"\n\
         [[init.services]]\ncommand = [\"/usr/local/bin/tool\"]\nrestart = \"once\"\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    ok(imgbuild(&[
        "recipe",
        recipe.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    let img = out.join("www/rootfs.img");
    tool("e2fsck", &["-fn", img.to_str().unwrap()]);
    let mode = |p: &str| {
        let st = tool(
            "debugfs",
            &["-R", &format!("stat {p}"), img.to_str().unwrap()],
        );
        st.split("Mode:")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no mode for {p}: {st}"))
            .to_owned()
    };
    for (p, want) in [
        ("/srv/www", "0755"),
        ("/srv/www/cgi", "0750"),
        ("/srv/www/index.html", "0644"),
        ("/srv/www/cgi/run", "0700"),
        ("/srv/flat", "0711"),
        ("/srv/flat/cgi", "0711"),
        ("/srv/flat/index.html", "0600"),
        ("/srv/flat/cgi/run", "0600"),
        ("/usr/local/bin/tool", "0755"),
    ] {
        assert_eq!(mode(p), want, "{p}");
    }
}

/// `[rootfs] base`: a tarball laid down first. Its files are in the image,
/// busybox and the init on top, the recipe's files win where they meet; every
/// time is the build's epoch. A base that breaks off is an error at its key,
/// naming the member and the byte.
#[test]
fn a_base_tarball_lies_under_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("base");
    std::fs::create_dir_all(tree.join("srv")).unwrap();
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(tree.join("srv/hello"), "hello from the base\n").unwrap();
    std::fs::write(tree.join("etc/motd"), "the base's motd\n").unwrap();
    std::fs::write(tree.join("srv/big"), vec![3u8; 200_000]).unwrap();
    // A service that only the base has: the program check finds it there.
    std::fs::write(tree.join("srv/app"), "#!/bin/sh\nexec sleep 1000\n").unwrap();
    std::fs::set_permissions(
        tree.join("srv/app"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let tar = tmp.path().join("base.tar");
    tool(
        "tar",
        &[
            "--format=posix",
            "-C",
            tree.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ],
    );
    tool("zstd", &["-q", tar.to_str().unwrap()]);
    let recipe = tmp.path().join("based.toml");
    std::fs::write(
        &recipe,
        "[guest]\nname = \"based\"\n[rootfs]\nbase = \"base.tar.zst\"\n\
         [[rootfs.files]]\ndest = \"/etc/motd\"\ntext = \"the recipe's motd\\n\"\n\
         [[init.services]]\ncommand = [\"/srv/app\"]\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    ok(imgbuild(&[
        "recipe",
        recipe.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    let img = out.join("based/rootfs.img");
    let i = img.to_str().unwrap();
    tool("e2fsck", &["-fn", i]);
    let cat = |p: &str| tool("debugfs", &["-R", &format!("cat {p}"), i]);
    assert_eq!(cat("/srv/hello"), "hello from the base\n");
    assert_eq!(cat("/etc/motd"), "the recipe's motd\n");
    assert_eq!(cat("/srv/big").len(), 200_000);
    let st = tool("debugfs", &["-R", "stat /srv/hello", i]);
    assert!(st.contains("mtime: 0x00000000:00000000"), "{st}");
    for p in ["/bin/busybox", "/sbin/init", "/etc/passwd"] {
        let st = tool("debugfs", &["-R", &format!("stat {p}"), i]);
        assert!(st.contains("Type: regular"), "{p}: {st}");
    }
    // The manifest names the base and its checksum.
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("based/manifest.json")).unwrap()).unwrap();
    let zst = tmp.path().join("base.tar.zst");
    let base = &m["inputs"][2];
    assert_eq!(base["input"], "rootfs.base", "{m}");
    assert_eq!(base["path"], zst.to_str().unwrap(), "{m}");
    let sum = tool("sha256sum", &[zst.to_str().unwrap()]);
    assert_eq!(
        base["sha256"],
        sum.split_whitespace().next().unwrap(),
        "{m}"
    );

    // A service neither the base nor the recipe has is still refused.
    let o = check(
        tmp.path(),
        "nosvc.toml",
        "[guest]\nname = \"nosvc\"\n[rootfs]\nbase = \"base.tar.zst\"\n\
         [[init.services]]\ncommand = [\"/srv/nope\"]\n",
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && stderr.contains("`/srv/nope` is not in the image"),
        "{stderr}"
    );

    // A base cut short: the error is at `base`, with the member and byte.
    let mut cut = std::fs::read(&tar).unwrap();
    let at = (0..cut.len() / 512)
        .map(|k| k * 512)
        .find(|&o| cut[o..].starts_with(b"./srv/big\0"))
        .unwrap();
    cut.truncate(at + 512 + 1000);
    std::fs::write(tmp.path().join("cut.tar"), cut).unwrap();
    let o = check(
        tmp.path(),
        "cut.toml",
        "[guest]\nname = \"cut\"\n[rootfs]\nbase = \"cut.tar\"\n",
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    let head = format!(
        "{}:4:8: key `rootfs.base`: ",
        tmp.path().join("cut.toml").display()
    );
    assert!(!o.status.success() && stderr.contains(&head), "{stderr}");
    assert!(
        stderr.contains("member \"./srv/big\"")
            && stderr.contains(&format!("at byte {}", at + 512 + 1000)),
        "{stderr}"
    );
}
