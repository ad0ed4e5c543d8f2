//! `imgbuild recipe` and `mkfs` from the outside, with the real Debian
//! packages (as `busybox_recipe`): what Ctrl-C, SIGTERM and SIGKILL leave
//! behind (nothing, or nothing a next run does not remove), `-o`, `-q`,
//! `-v`, errors as JSON, and a closed stdout.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{imgbuild, imgbuild_cmd, imgbuild_into_closed_pipe, ok, one_error, recipe_path};

/// Size of the extra file that makes the image write last long enough for
/// a signal to land in the middle of it.
const BIG: usize = 200 << 20;

/// Writes `len` bytes of a non-zero pattern to `path`.
fn big_file(path: &Path, len: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8 | 1).collect();
    for _ in 0..len / chunk.len() {
        f.write_all(&chunk).unwrap();
    }
    f.flush().unwrap();
}

/// The shipped busybox recipe in `dir` with `extra` appended (its paths are
/// relative to `dir`).
fn recipe_with(dir: &Path, extra: &str) -> PathBuf {
    let mut text = std::fs::read_to_string(recipe_path()).unwrap();
    text.push_str(extra);
    let p = dir.join("busybox.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// The busybox recipe with a [`BIG`] file in its image.
fn slow_recipe(dir: &Path) -> PathBuf {
    big_file(&dir.join("big.bin"), BIG);
    recipe_with(
        dir,
        "\n[[rootfs.files]]\ndest = \"/big.bin\"\nsource = \"big.bin\"\n",
    )
}

/// `imgbuild args…` started with `TMPDIR=tmpdir`, stdout and stderr piped.
fn start(args: &[&str], tmpdir: &Path) -> Child {
    imgbuild_cmd()
        .args(args)
        .env("TMPDIR", tmpdir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, sig: &str) {
    let s = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -{sig} {}", child.id()))
        .status()
        .unwrap();
    assert!(s.success(), "kill -{sig}");
}

/// Waits (up to a minute) until `ready` holds, polling often.
fn wait_for(what: &str, child: &mut Child, mut ready: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(60);
    while !ready() {
        if let Some(s) = child.try_wait().unwrap() {
            let o = std::mem::replace(child, spawn_nothing()).wait_with_output();
            panic!("exited ({s}) before {what}: {o:?}");
        }
        assert!(Instant::now() < end, "no {what} after a minute");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn spawn_nothing() -> Child {
    Command::new("true").spawn().unwrap()
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// Bytes allocated on disk for the files under `dir`.
fn allocated(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.blocks() * 512)
                .sum()
        })
        .unwrap_or(0)
}

/// Stops `child` with SIGSTOP once `mid_way` holds, checks it still does,
/// then sends `sig` and lets it go on: the signal lands exactly there. The
/// exit status and output.
fn interrupt_when(
    mut child: Child,
    sig: &str,
    what: &str,
    mut mid_way: impl FnMut() -> bool,
) -> std::process::Output {
    wait_for(what, &mut child, &mut mid_way);
    signal(&child, "STOP");
    assert!(mid_way(), "{what}: over before it could be stopped");
    signal(&child, sig);
    signal(&child, "CONT");
    child.wait_with_output().unwrap()
}

/// The exit code of an interrupted run (130) and its one message.
fn assert_interrupted(o: &std::process::Output, sig: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{:?}: {err}", o.status);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("imgbuild: error: interrupted by ") && lines[0].contains(sig),
        "{err}"
    );
}

/// SIGTERM while the root image is being written: exit 130, no staging
/// directory, no image, no temp file; then SIGINT likewise.
#[test]
fn a_signal_during_a_build_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = slow_recipe(tmp.path());
    let tmpdir = tmp.path().join("tmp");
    std::fs::create_dir(&tmpdir).unwrap();
    let out = tmp.path().join("out");
    for sig in ["TERM", "INT"] {
        let child = start(
            &[
                "recipe",
                "--out",
                out.to_str().unwrap(),
                recipe.to_str().unwrap(),
            ],
            &tmpdir,
        );
        let staging = out.join(format!(".busybox.staging-{}", child.id()));
        // Mid-write: part of the big file is on disk.
        let o = interrupt_when(child, sig, "the image half written", || {
            allocated(&staging) > 20 << 20
        });
        assert_interrupted(&o, &format!("SIG{sig}"));
        assert!(names(&out).is_empty(), "{sig} left {:?}", names(&out));
        assert!(names(&tmpdir).is_empty(), "{sig} left {:?}", names(&tmpdir));
    }
}

/// A signal during a check: its directory in $TMPDIR goes; with `--json`,
/// stdout says why it failed.
#[test]
fn a_signal_during_a_check_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = slow_recipe(tmp.path());
    let tmpdir = tmp.path().join("tmp");
    std::fs::create_dir(&tmpdir).unwrap();
    let out = tmp.path().join("out");
    // A check is quick once its directory is made: if it finished before
    // it could be stopped, try again.
    for attempt in 0.. {
        let mut child = start(
            &[
                "recipe",
                "--check",
                "--json",
                "--out",
                out.to_str().unwrap(),
                recipe.to_str().unwrap(),
            ],
            &tmpdir,
        );
        let dir = tmpdir.join(format!(".imgbuild-check-busybox-{}", child.id()));
        wait_for("the check directory", &mut child, || dir.exists());
        signal(&child, "STOP");
        if !dir.exists() && attempt < 5 {
            signal(&child, "CONT");
            assert!(child.wait().unwrap().success());
            continue;
        }
        signal(&child, "INT");
        signal(&child, "CONT");
        let o = child.wait_with_output().unwrap();
        assert_interrupted(&o, "SIGINT");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["ok"], false, "{v}");
        assert!(v["error"].as_str().unwrap().contains("SIGINT"), "{v}");
        assert!(names(&tmpdir).is_empty(), "left {:?}", names(&tmpdir));
        assert!(!out.exists());
        break;
    }
}

/// SIGKILL leaves the staging directory; the next build removes it, and
/// the check directories of processes that are gone, but nothing else.
#[test]
fn the_next_build_removes_what_a_killed_one_left() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = slow_recipe(tmp.path());
    let tmpdir = tmp.path().join("tmp");
    std::fs::create_dir(&tmpdir).unwrap();
    let out = tmp.path().join("out");
    let args = [
        "recipe",
        "--out",
        out.to_str().unwrap(),
        recipe.to_str().unwrap(),
    ];
    let mut child = start(&args, &tmpdir);
    let pid = child.id();
    let staging = out.join(format!(".busybox.staging-{pid}"));
    wait_for("the image half written", &mut child, || {
        allocated(&staging) > 20 << 20
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(staging.is_dir(), "SIGKILL left nothing? {:?}", names(&out));

    // Left by dead processes (the killed one's pid is free now): removed.
    let stale_check = tmpdir.join(format!(".imgbuild-check-busy-box-{pid}"));
    std::fs::create_dir_all(stale_check.join("sub")).unwrap();
    let stale_other = out.join(format!(".other.staging-{pid}"));
    std::fs::create_dir(&stale_other).unwrap();
    // Not ours, or whose process is alive (pid 1): kept.
    let keep = [
        out.join(".busybox.staging-1"),
        out.join(format!(".busybox.staging-{pid}x")),
        out.join(format!("busybox.staging-{pid}")),
        tmpdir.join(".imgbuild-check-busybox-1"),
        tmpdir.join(format!(".imgbuild-check-{pid}")),
        tmpdir.join(format!("imgbuild-check-busybox-{pid}")),
    ];
    for k in &keep {
        std::fs::create_dir(k).unwrap();
    }
    // A file of that name is not a staging directory.
    let file = out.join(format!(".file.staging-{pid}"));
    std::fs::write(&file, "x").unwrap();

    let o = start(&args, &tmpdir).wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!staging.exists(), "stale staging kept");
    assert!(!stale_check.exists(), "stale check directory kept");
    assert!(!stale_other.exists(), "stale staging of another guest kept");
    for k in &keep {
        assert!(k.is_dir(), "{} removed", k.display());
    }
    assert!(file.is_file());
    assert!(out.join("busybox/rootfs.img").is_file());
}

/// mkfs: SIGTERM mid-write leaves no temp file and no image; SIGKILL's
/// leftover goes with the next mkfs of that image.
#[test]
fn mkfs_interrupted_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    big_file(&tree.join("big.bin"), BIG);
    let img = tmp.path().join("x.img");
    let args = ["mkfs", tree.to_str().unwrap(), img.to_str().unwrap()];
    let others = |d: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().unwrap() != "tree")
            .collect()
    };
    // Part of the big file written, wherever the temp file is.
    let mid_way = |d: &Path| {
        others(d).iter().any(|p| {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(p).unwrap();
            (if m.is_dir() {
                allocated(p)
            } else {
                m.blocks() * 512
            }) > 20 << 20
        })
    };
    let o = interrupt_when(start(&args, tmp.path()), "TERM", "mkfs half way", || {
        mid_way(tmp.path())
    });
    assert_interrupted(&o, "SIGTERM");
    assert_eq!(names(tmp.path()), ["tree"]);

    let mut child = start(&args, tmp.path());
    wait_for("mkfs half way", &mut child, || mid_way(tmp.path()));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!others(tmp.path()).is_empty(), "SIGKILL left nothing?");
    ok(imgbuild(&args));
    assert_eq!(names(tmp.path()), ["tree", "x.img"]);
}

/// `-o` is `--out`; `-q` prints only warnings; `-v` prints where the cache
/// is and each step's time.
#[test]
fn short_out_quiet_and_verbose() {
    let tmp = tempfile::tempdir().unwrap();
    // A file the init hides under tmpfs: a warning.
    let recipe = recipe_with(
        tmp.path(),
        "\n[[rootfs.files]]\ndest = \"/tmp/hidden\"\ntext = \"x\"\n",
    );
    let r = recipe.to_str().unwrap();
    let out = tmp.path().join("o");
    let o = imgbuild(&["recipe", "-q", "-o", out.to_str().unwrap(), r]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(!err.is_empty());
    assert!(
        err.lines()
            .all(|l| l.starts_with("imgbuild: warning: ") && l.contains("/tmp/hidden")),
        "{err}"
    );
    assert!(out.join("busybox/manifest.json").is_file());

    let cache = tmp.path().join("cache-link");
    let real = imgbuild::sources::cache::locate(None).unwrap().path;
    std::fs::create_dir_all(&real).unwrap();
    std::os::unix::fs::symlink(&real, &cache).unwrap();
    let o = imgbuild(&[
        "recipe",
        "-v",
        "--cache",
        cache.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        r,
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("built busybox "),
        "{err}"
    );
    assert!(
        err.lines().any(|l| l.starts_with("imgbuild: cache ")
            && l.contains(cache.to_str().unwrap())
            && l.contains("--cache")),
        "{err}"
    );
    for step in ["kernel", "busybox", "rootfs.img", "initrd.img", "commit"] {
        assert!(
            err.lines()
                .any(|l| l.starts_with(&format!("imgbuild: {step}: ")) && l.ends_with(" ms")),
            "no time of {step}: {err}"
        );
    }
    assert!(err.contains("imgbuild: warning: "), "{err}");
    let o = imgbuild(&["recipe", "-q", "-v", r]);
    assert!(!o.status.success());
}

/// `--json`: an error is also a JSON verdict on stdout, with the recipe
/// error's place when it is one.
#[test]
fn json_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[guest]\nname = \"x\"\nbogus = 1\n").unwrap();
    let too_small = recipe_with(tmp.path(), "");
    let text = std::fs::read_to_string(&too_small)
        .unwrap()
        .replace("size = \"1G\"", "size = \"4M\"");
    std::fs::write(&too_small, text).unwrap();
    let file = tmp.path().join("f");
    std::fs::write(&file, "").unwrap();
    let out = tmp.path().join("out");
    let recipe = recipe_path();
    let none = tmp.path().join("none.toml");
    let cases: [(Vec<&str>, &str, serde_json::Value); 4] = [
        (
            vec!["recipe", "--json", bad.to_str().unwrap()],
            "unknown key `bogus`",
            serde_json::json!({"file": bad, "line": 3, "column": 1, "key": "guest.bogus"}),
        ),
        (
            vec![
                "recipe",
                "--json",
                "--check",
                "-o",
                out.to_str().unwrap(),
                too_small.to_str().unwrap(),
            ],
            "is too small",
            serde_json::json!({"file": too_small, "line": 17, "column": 8, "key": "rootfs.size"}),
        ),
        (
            vec![
                "recipe",
                "--json",
                "-o",
                file.to_str().unwrap(),
                recipe.to_str().unwrap(),
            ],
            "is a file, not a directory",
            serde_json::json!({"file": null, "line": null, "column": null, "key": null}),
        ),
        (
            vec!["recipe", "--json", none.to_str().unwrap()],
            "cannot read recipe",
            serde_json::json!({"file": none, "line": null, "column": null, "key": null}),
        ),
    ];
    for (args, want, fields) in cases {
        let o = imgbuild(&args);
        let line = one_error(&o, want);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {:?}", String::from_utf8_lossy(&o.stdout)));
        assert_eq!(v["ok"], false, "{v}");
        assert_eq!(
            v["error"].as_str(),
            line.strip_prefix("imgbuild: error: "),
            "{v}"
        );
        for (k, want) in fields.as_object().unwrap() {
            assert_eq!(&v[k], want, "{args:?}: {k} in {v}");
        }
    }
    assert!(!out.exists());
}

/// `imgbuild recipe --json … | head -c0`: the build is done, the manifest
/// has nowhere to go; a quiet success.
#[test]
fn recipe_into_a_closed_pipe() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (o, r) = (out.to_str().unwrap(), recipe_path());
    let r = r.to_str().unwrap();
    for args in [
        vec!["recipe", "--json", "-o", o, r],
        vec!["recipe", "-o", o, r],
        vec!["recipe", "--check", "--json", "-o", o, r],
    ] {
        let (code, err) = imgbuild_into_closed_pipe(&args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert!(
            err.is_empty() || err.ends_with("nothing written\n"),
            "{args:?}: {err}"
        );
    }
    assert!(out.join("busybox/manifest.json").is_file());
    assert_eq!(names(&out), ["busybox"]);
}
