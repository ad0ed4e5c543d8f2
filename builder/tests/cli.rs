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
        "not a directory",
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
