//! `imgbuild mkfs`, `inspect`, `man` and `completions` from the outside,
//! with e2fsck/dumpe2fs/debugfs as oracles.

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::{
    imgbuild, imgbuild_cmd, imgbuild_into_closed_pipe, ok, one_error, recipe_path, sha256 as sha,
    tool,
};

fn sample_tree(root: &Path) {
    std::fs::create_dir_all(root.join("etc/sub")).unwrap();
    std::fs::write(root.join("etc/motd"), "hello\n").unwrap();
    std::fs::write(root.join("etc/sub/big"), vec![7u8; 100_000]).unwrap();
    symlink("etc/motd", root.join("motd-link")).unwrap();
}

/// A scratch directory with [`sample_tree`] in `tree/`, and the path of an
/// image `img_name` (not yet written) beside it.
fn scratch_with_tree(img_name: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    sample_tree(&tree);
    let img = tmp.path().join(img_name);
    (tmp, tree, img)
}

#[test]
fn mkfs_writes_a_clean_reproducible_image() {
    let (tmp, tree, img) = scratch_with_tree("a.img");
    let (t, i) = (tree.to_str().unwrap(), img.to_str().unwrap());
    let mkfs = |out: &str| {
        ok(imgbuild(&[
            "mkfs",
            t,
            out,
            "--size",
            "16M",
            "--label",
            "sample",
            "--seed",
            "5",
            "--timestamp",
            "1000000",
        ]))
    };
    mkfs(i);
    tool("e2fsck", &["-fn", i]);
    let h = tool("dumpe2fs", &["-h", i]);
    assert!(h.contains("Filesystem volume name:   sample"), "{h}");
    assert!(h.contains("has_journal"), "{h}");
    assert!(h.contains("Block count:              4096"), "{h}");
    let ls = ok(imgbuild(&["inspect", "-r", i]));
    assert!(
        ls.contains("100644 -rw-r--r--     0     0          6 1970-01-12 13:46 /etc/motd\n"),
        "{ls}"
    );
    assert!(
        ls.contains("     100000 1970-01-12 13:46 /etc/sub/big\n"),
        "{ls}"
    );
    assert!(ls.contains(" /motd-link -> etc/motd\n"), "{ls}");
    assert_eq!(tool("debugfs", &["-R", "cat /etc/motd", i]), "hello\n");

    // Same inputs and seed: same bytes.
    let img2 = tmp.path().join("b.img");
    mkfs(img2.to_str().unwrap());
    assert_eq!(sha(&img), sha(&img2));
}

#[test]
fn mkfs_options() {
    let (_tmp, tree, img) = scratch_with_tree("o.img");
    std::os::unix::fs::chown(tree.join("etc/motd"), Some(1234), Some(99)).unwrap();
    let (t, i) = (tree.to_str().unwrap(), img.to_str().unwrap());
    ok(imgbuild(&[
        "mkfs",
        t,
        i,
        "--no-journal",
        "--block-size",
        "1024",
        "--owner",
        "keep",
        "--uuid",
        "01234567-89ab-cdef-0123-456789abcdef",
    ]));
    tool("e2fsck", &["-fn", i]);
    let h = tool("dumpe2fs", &["-h", i]);
    assert!(!h.contains("has_journal"), "{h}");
    assert!(h.contains("Block size:               1024"), "{h}");
    assert!(
        h.contains("Filesystem UUID:          01234567-89ab-cdef-0123-456789abcdef"),
        "{h}"
    );
    let motd = ok(imgbuild(&["inspect", i, "/etc/motd"]));
    assert!(motd.contains(" 1234    99 "), "{motd}");
}

#[test]
fn mkfs_errors_name_the_problem_and_leave_nothing() {
    let (tmp, tree, img) = scratch_with_tree("x.img");
    std::fs::write(tree.join("huge"), vec![1u8; 3 << 20]).unwrap();
    let (t, i) = (tree.to_str().unwrap(), img.to_str().unwrap());
    for (args, want) in [
        (vec!["--size", "2M"], "needed"),
        (vec!["--block-size", "3000"], "--block-size 3000"),
        (vec!["--size", "lots"], "--size lots"),
        (vec!["--uuid", "nope"], "not a UUID"),
        (vec!["--label", "a-label-longer-than-16"], "at most 16"),
    ] {
        let mut all = vec!["mkfs", t, i];
        all.extend(args.iter());
        let o = imgbuild(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{args:?}: {err}");
        assert!(!img.exists(), "{args:?} left an image");
    }
    let o = imgbuild(&["mkfs", tmp.path().join("missing").to_str().unwrap(), i]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("missing"));
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers, [std::ffi::OsString::from("tree")]);
}

#[test]
fn inspect_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.img");
    std::fs::write(&junk, vec![0u8; 8192]).unwrap();
    let o = imgbuild(&["inspect", junk.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("junk.img"));
}

#[test]
fn man_pages_and_completions() {
    let tmp = tempfile::tempdir().unwrap();
    ok(imgbuild(&["man", tmp.path().to_str().unwrap()]));
    for page in [
        "imgbuild.1",
        "imgbuild-recipe.1",
        "imgbuild-mkfs.1",
        "imgbuild-inspect.1",
    ] {
        let t = std::fs::read_to_string(tmp.path().join(page)).unwrap();
        assert!(t.contains(".TH"), "{page}");
    }
    let mkfs = std::fs::read_to_string(tmp.path().join("imgbuild-mkfs.1")).unwrap();
    assert!(mkfs.contains("no\\-journal"), "{mkfs}");
    for shell in ["bash", "zsh", "fish"] {
        let s = ok(imgbuild(&["completions", shell]));
        assert!(
            s.contains("imgbuild") && s.contains("mkfs") && s.contains("recipe"),
            "{shell}"
        );
    }
}

/// Each error is one line, each cause in it once.
#[test]
fn errors_are_printed_once() {
    let tmp = tempfile::tempdir().unwrap();
    let t = |p: &str| tmp.path().join(p).to_str().unwrap().to_owned();
    std::fs::write(t("bad.toml"), "[guest]\nname = \"x\"\nbogus = 1\n").unwrap();
    std::fs::write(t("a-file"), "").unwrap();
    std::fs::create_dir(t("tree")).unwrap();
    let recipe = recipe_path();
    let recipe = recipe.to_str().unwrap();

    let missing = t("missing.toml");
    let o = imgbuild(&["recipe", &missing]);
    one_error(&o, "No such file or directory");
    one_error(&o, &missing);
    one_error(
        &imgbuild(&["recipe", &t("bad.toml")]),
        "unknown key `bogus`",
    );
    one_error(&imgbuild(&["inspect", &t("none.img")]), "No such file");
    let o = imgbuild_cmd()
        .env("SOURCE_DATE_EPOCH", "soon")
        .args(["recipe", "--out", &t("out"), recipe])
        .output()
        .unwrap();
    one_error(&o, "SOURCE_DATE_EPOCH=\"soon\" is not a number");
    one_error(
        &imgbuild(&["mkfs", &t("no-dir"), &t("x.img")]),
        "no-dir: no such directory or file",
    );
    one_error(
        &imgbuild(&["mkfs", &t("tree"), &t("no-dir/x.img")]),
        "does not exist",
    );
    let o = imgbuild(&["recipe", "--out", &t("a-file"), recipe]);
    one_error(
        &o,
        &format!("--out {}: is a file, not a directory", t("a-file")),
    );
    // Nothing was left behind by any of them.
    let mut left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["a-file", "bad.toml", "tree"]);
}

/// `--out` at a file (or under one) is refused before anything is fetched
/// or written, for a build and a check alike.
#[test]
fn out_at_a_file_is_refused_first() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f");
    std::fs::write(&file, "keep").unwrap();
    let f = file.to_str().unwrap();
    // An empty cache: had it fetched anything, it would be there.
    let cache = tmp.path().join("cache");
    let c = cache.to_str().unwrap();
    let recipe = recipe_path();
    let r = recipe.to_str().unwrap();
    for check in [false, true] {
        let mut args = vec!["recipe", "--cache", c, "--out", f, r];
        if check {
            args.insert(1, "--check");
        }
        one_error(
            &imgbuild(&args),
            &format!("--out {f}: is a file, not a directory"),
        );
        let under = format!("{f}/sub");
        args[if check { 5 } else { 4 }] = &under;
        one_error(
            &imgbuild(&args),
            &format!("--out {under}: {f} is a file, not a directory"),
        );
    }
    assert!(!cache.exists(), "fetched before refusing --out");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");
}

/// A reader that goes away (`imgbuild … | head`) ends the command quietly,
/// with status 0: no panic, no error.
#[test]
fn closed_stdout_is_a_quiet_success() {
    let (_tmp, tree, img) = scratch_with_tree("p.img");
    ok(imgbuild(&[
        "mkfs",
        tree.to_str().unwrap(),
        img.to_str().unwrap(),
    ]));
    let man = tempfile::tempdir().unwrap();
    for args in [
        vec!["completions", "fish"],
        vec!["completions", "bash"],
        vec!["--help"],
        vec!["recipe", "--help"],
        vec!["--version"],
        vec!["inspect", "-r", img.to_str().unwrap()],
        vec!["man", man.path().to_str().unwrap()],
        vec!["cache", "list", "--cache", man.path().to_str().unwrap()],
    ] {
        let (code, err) = imgbuild_into_closed_pipe(&args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

/// The raw `mtime:`/`ctime:`/`atime:` of an image path by debugfs, as (seconds, nsec).
fn debugfs_times(img: &Path, path: &str) -> [(i64, u32); 3] {
    let st = tool(
        "debugfs",
        &["-R", &format!("stat {path}"), img.to_str().unwrap()],
    );
    let get = |key: &str| {
        let raw = st
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(key))
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {key} in {st}"));
        let (lo, extra) = raw.split_once(':').unwrap();
        let lo = u32::from_str_radix(lo.trim_start_matches("0x"), 16).unwrap();
        let extra = u32::from_str_radix(extra, 16).unwrap();
        (
            i64::from(i32::from_ne_bytes(lo.to_ne_bytes())) + (i64::from(extra & 3) << 32),
            extra >> 2,
        )
    };
    [get("atime:"), get("mtime:"), get("ctime:")]
}

/// Sets a host file's atime and mtime.
fn set_times(p: &Path, atime: (i64, i64), mtime: (i64, i64)) {
    use rustix::fs::{Timespec, Timestamps};
    let t = Timestamps {
        last_access: Timespec {
            tv_sec: atime.0,
            tv_nsec: atime.1,
        },
        last_modification: Timespec {
            tv_sec: mtime.0,
            tv_nsec: mtime.1,
        },
    };
    rustix::fs::utimensat(rustix::fs::CWD, p, &t, rustix::fs::AtFlags::empty()).unwrap();
}

/// Without --timestamp and SOURCE_DATE_EPOCH, each entry keeps its times (ns
/// included), as mke2fs -d; with SOURCE_DATE_EPOCH, later ones become it;
/// --timestamp forces every one.
#[test]
fn mkfs_keeps_clamps_or_forces_times() {
    let (tmp, tree, _) = scratch_with_tree("t.img");
    let motd = tree.join("etc/motd");
    set_times(&motd, (1_100_000_000, 111), (1_000_000_000, 123_456_789));
    let t = tree.to_str().unwrap();
    let img = |n: &str| tmp.path().join(n);
    // Keep: the source's atime and mtime; ctime is the host's (now).
    ok(imgbuild(&["mkfs", t, img("keep.img").to_str().unwrap()]));
    let [a, m, c] = debugfs_times(&img("keep.img"), "/etc/motd");
    assert_eq!((a, m), ((1_100_000_000, 111), (1_000_000_000, 123_456_789)));
    assert!(c.0 > 1_700_000_000, "ctime {c:?}");
    // Clamp: SOURCE_DATE_EPOCH between them.
    let o = imgbuild_cmd()
        .args(["mkfs", t, img("clamp.img").to_str().unwrap()])
        .env("SOURCE_DATE_EPOCH", "1050000000")
        .output()
        .unwrap();
    ok(o);
    let [a, m, c] = debugfs_times(&img("clamp.img"), "/etc/motd");
    assert_eq!(
        (a, m, c),
        (
            (1_050_000_000, 0),
            (1_000_000_000, 123_456_789),
            (1_050_000_000, 0)
        )
    );
    // Force: --timestamp wins over SOURCE_DATE_EPOCH.
    let o = imgbuild_cmd()
        .args([
            "mkfs",
            t,
            img("force.img").to_str().unwrap(),
            "--timestamp",
            "77",
        ])
        .env("SOURCE_DATE_EPOCH", "1050000000")
        .output()
        .unwrap();
    ok(o);
    for p in ["/", "/etc/motd", "/lost+found", "/motd-link"] {
        assert_eq!(debugfs_times(&img("force.img"), p), [(77, 0); 3], "{p}");
    }
    let help = ok(imgbuild(&["mkfs", "--help"]));
    for want in [
        "SOURCE_DATE_EPOCH",
        "crtime = mtime",
        "tar archive",
        "standard input",
    ] {
        assert!(help.contains(want), "--help lacks {want:?}:\n{help}");
    }
}

/// `imgbuild mkfs ARCHIVE IMAGE`: plain, gzip, xz and zstd archives told by
/// their bytes (the names here say nothing), and `-` for standard input.
#[test]
fn mkfs_reads_tar_archives() {
    let (tmp, tree, _) = scratch_with_tree("unused.img");
    let root = rustix::process::geteuid().is_root();
    if root {
        std::os::unix::fs::chown(tree.join("etc/motd"), Some(1234), Some(99)).unwrap();
    }
    set_times(
        &tree.join("etc/motd"),
        (1_100_000_000, 5),
        (1_000_000_000, 123_456_789),
    );
    let tar = tmp.path().join("rootfs.data");
    tool(
        "tar",
        &[
            "--format=posix",
            "--numeric-owner",
            "-C",
            tree.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ],
    );
    let mut inputs = vec![("plain", tar.clone())];
    for (kind, cmd) in [("gzip", "gzip"), ("xz", "xz"), ("zstd", "zstd")] {
        let out = tmp.path().join(format!("archive-{kind}"));
        let o = std::process::Command::new(cmd)
            .args(["-c"])
            .arg(&tar)
            .output()
            .unwrap();
        assert!(o.status.success(), "{cmd}");
        std::fs::write(&out, o.stdout).unwrap();
        inputs.push((kind, out));
    }
    for (kind, input) in &inputs {
        let img = tmp.path().join(format!("{kind}.img"));
        ok(imgbuild(&[
            "mkfs",
            input.to_str().unwrap(),
            img.to_str().unwrap(),
        ]));
        let i = img.to_str().unwrap();
        tool("e2fsck", &["-fn", i]);
        assert_eq!(
            tool("debugfs", &["-R", "cat /etc/motd", i]),
            "hello\n",
            "{kind}"
        );
        assert_eq!(
            tool("debugfs", &["-R", "dump /etc/sub/big /dev/stdout", i]).len(),
            100_000
        );
        let motd = ok(imgbuild(&["inspect", i, "/etc/motd"]));
        if root {
            assert!(motd.contains(" 1234    99 "), "{kind}: {motd}");
        }
        assert_eq!(
            debugfs_times(&img, "/etc/motd")[1],
            (1_000_000_000, 123_456_789)
        );
        let ls = ok(imgbuild(&["inspect", "-r", i]));
        assert!(ls.contains(" /motd-link -> etc/motd\n"), "{kind}: {ls}");
    }
    // Standard input.
    let img = tmp.path().join("stdin.img");
    let o = imgbuild_cmd()
        .args(["mkfs", "-", img.to_str().unwrap()])
        .stdin(std::fs::File::open(&inputs[3].1).unwrap())
        .output()
        .unwrap();
    ok(o);
    assert_eq!(
        tool("debugfs", &["-R", "cat /etc/motd", img.to_str().unwrap()]),
        "hello\n"
    );
    // Not an archive, and a damaged one: one error line naming the problem.
    let junk = tmp.path().join("junk.tar");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    let bad_img = tmp.path().join("bad.img");
    one_error(
        &imgbuild(&["mkfs", junk.to_str().unwrap(), bad_img.to_str().unwrap()]),
        "junk.tar is not a tar archive (nor gzip, xz or zstd data)",
    );
    let mut cut = std::fs::read(&tar).unwrap();
    let big = (0..cut.len() / 512)
        .map(|i| i * 512)
        .find(|&o| cut[o..].starts_with(b"./etc/sub/big\0"))
        .unwrap();
    cut.truncate(big + 512 + 4000);
    let cut_tar = tmp.path().join("cut.tar");
    std::fs::write(&cut_tar, cut).unwrap();
    let line = one_error(
        &imgbuild(&["mkfs", cut_tar.to_str().unwrap(), bad_img.to_str().unwrap()]),
        "member \"./etc/sub/big\"",
    );
    assert!(line.contains("ends inside this member's data"), "{line}");
    assert!(!bad_img.exists());
}

/// `Inode count` as `dumpe2fs -h` shows it.
fn inode_count(img: &str) -> String {
    let h = tool("dumpe2fs", &["-h", img]);
    h.lines()
        .find(|l| l.starts_with("Inode count:"))
        .unwrap_or_else(|| panic!("{h}"))
        .to_owned()
}

#[test]
fn mkfs_inode_options_give_what_mke2fs_gives() {
    let (tmp, tree, img) = scratch_with_tree("i.img");
    let (t, i) = (tree.to_str().unwrap(), img.to_str().unwrap());
    let theirs = tmp.path().join("mke2fs.img");
    let th = theirs.to_str().unwrap();
    for flags in [
        vec![],
        vec!["-i", "65536"],
        vec!["-i", "1024"],
        vec!["-N", "1000"],
        vec!["-N", "100000"],
    ] {
        let mut args = vec!["mkfs", t, i, "--size", "64M"];
        args.extend(&flags);
        ok(imgbuild(&args));
        tool("e2fsck", &["-fn", i]);
        std::fs::File::create(&theirs)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        let mut m = vec!["-q", "-F", "-t", "ext4", "-b", "4096"];
        m.extend(&flags);
        m.push(th);
        tool("/usr/sbin/mke2fs", &m);
        assert_eq!(inode_count(i), inode_count(th), "{flags:?}");
    }
    for (flags, want) in [
        (vec!["-i", "512"], "1024"),
        (vec!["-N", "0"], "inode count 0"),
        (vec!["-N", "100000000"], "too many inodes"),
        (vec!["-i", "4096", "-N", "10"], "cannot be used with"),
    ] {
        let mut args = vec!["mkfs", t, i, "--size", "64M"];
        args.extend(&flags);
        let o = imgbuild(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(want),
            "{flags:?}: {err}"
        );
    }
}

#[test]
fn mkfs_says_a_small_image_has_no_journal() {
    let (_tmp, tree, img) = scratch_with_tree("j.img");
    let (t, i) = (tree.to_str().unwrap(), img.to_str().unwrap());
    let o = imgbuild(&["mkfs", t, i, "--size", "4M"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("no journal"), "{err}");
    assert!(!tool("dumpe2fs", &["-h", i]).contains("has_journal"));
    let o = imgbuild(&["mkfs", t, i, "--size", "8M"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !err.contains("no journal"), "{err}");
}

/// `dumpe2fs -h`'s line for `key`, if there is one.
fn dumpe2fs_line(img: &str, key: &str) -> Option<String> {
    let h = tool("dumpe2fs", &["-h", img]);
    h.lines()
        .find(|l| l.starts_with(key))
        .map(|l| l[key.len()..].trim().to_owned())
}

#[test]
fn mkfs_reserves_gdt_blocks_for_growing_unless_told_not_to() {
    let (_tmp, tree, img) = scratch_with_tree("r.img");
    let (t, i) = (tree.to_str().unwrap(), img.to_str().unwrap());
    // As mke2fs -t ext4 -b 1024 on 64 MiB: 256 reserved GDT blocks.
    ok(imgbuild(&["mkfs", t, i, "--size", "64M", "-b", "1024"]));
    tool("e2fsck", &["-fn", i]);
    let feats = dumpe2fs_line(i, "Filesystem features:").unwrap();
    assert!(feats.contains("resize_inode"), "{feats}");
    assert_eq!(
        dumpe2fs_line(i, "Reserved GDT blocks:").as_deref(),
        Some("256")
    );
    ok(imgbuild(&[
        "mkfs",
        t,
        i,
        "--size",
        "64M",
        "-b",
        "1024",
        "--no-resize-inode",
    ]));
    tool("e2fsck", &["-fn", i]);
    let feats = dumpe2fs_line(i, "Filesystem features:").unwrap();
    assert!(!feats.contains("resize_inode"), "{feats}");
    assert_eq!(dumpe2fs_line(i, "Reserved GDT blocks:"), None);
    let help = ok(imgbuild(&["mkfs", "--help"]));
    assert!(help.contains("--no-resize-inode"), "{help}");
}

#[test]
fn inspect_says_why_it_cannot_read_a_meta_bg_image() {
    // 1 TiB with 1 KiB blocks: meta_bg, as mke2fs makes it (sparse: a few MiB).
    let (_tmp, tree, img) = scratch_with_tree("m.img");
    let (t, i) = (tree.to_str().unwrap(), img.to_str().unwrap());
    ok(imgbuild(&["mkfs", t, i, "--size", "1T", "-b", "1024"]));
    let feats = dumpe2fs_line(i, "Filesystem features:").unwrap();
    assert!(feats.contains("meta_bg"), "{feats}");
    let line = one_error(&imgbuild(&["inspect", i]), "meta_bg");
    assert!(line.contains("debugfs"), "{line}");
    // debugfs reads it.
    let ls = tool("debugfs", &["-R", "ls -l /etc", i]);
    assert!(ls.contains("motd"), "{ls}");
}
