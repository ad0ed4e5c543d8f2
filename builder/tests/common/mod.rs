//! Set-up shared by the builder's integration tests: running the `imgbuild`
//! binary and other tools, the shipped recipe, digests and `cpio` listings.
//!
//! Each test binary compiles its own copy (`mod common;`) and uses only some
//! of it, hence the module-wide `dead_code` allowance.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The shipped `recipes/busybox.toml`.
pub fn recipe_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes/busybox.toml")
}

/// The `imgbuild` binary under test, without the environment variables that
/// change what it builds (`SOURCE_DATE_EPOCH`, `IMGBUILD_INIT`).
pub fn imgbuild_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_imgbuild"));
    c.env_remove("SOURCE_DATE_EPOCH")
        .env_remove("IMGBUILD_INIT");
    c
}

/// Runs `imgbuild args…` (see [`imgbuild_cmd`]); success or not.
pub fn imgbuild(args: &[&str]) -> Output {
    imgbuild_cmd().args(args).output().unwrap()
}

/// The stdout of `o`, which must have succeeded (else its stderr is shown).
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `cmd`, which must start and succeed (else its status, stdout and
/// stderr are shown); its output.
pub fn run_ok(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?}: {}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Runs the tool `cmd args…`, which must succeed (see [`run_ok`]); its stdout.
pub fn tool(cmd: &str, args: &[&str]) -> String {
    let o = run_ok(Command::new(cmd).args(args));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// True if `tool --version` can be run (the tool is installed).
pub fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// The sha256 of the file at `p`, as `imgbuild`'s manifest writes it.
pub fn sha256(p: &Path) -> String {
    imgbuild::manifest::digest(p).unwrap().sha256
}

/// GNU `cpio -itv` of the archive at `path`, which must list; with `gzip`,
/// the archive is decompressed by `gzip -dc` first.
pub fn cpio_listing(path: &Path, gzip: bool) -> String {
    if gzip {
        tool(
            "sh",
            &[
                "-c",
                &format!("gzip -dc {} | cpio -itv 2>/dev/null", path.display()),
            ],
        )
    } else {
        let o = run_ok(Command::new("cpio").args(["-itv", "-F"]).arg(path));
        String::from_utf8(o.stdout).unwrap()
    }
}

/// Runs `imgbuild args…` with its stdout a pipe whose reading end is already
/// closed (as `imgbuild … | head` after head has exited): its exit code (None:
/// killed by a signal) and stderr.
pub fn imgbuild_into_closed_pipe(args: &[&str]) -> (Option<i32>, String) {
    // `true` exits at once; imgbuild starts after, so every write to its
    // stdout fails with EPIPE. The subshell reports imgbuild's status.
    let o = Command::new("sh")
        .arg("-c")
        .arg(r#"(sleep 0.2; "$0" "$@"; echo "status=$?" >&2) | true"#)
        .arg(env!("CARGO_BIN_EXE_imgbuild"))
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("IMGBUILD_INIT")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let (rest, status) = err
        .trim_end()
        .rsplit_once("status=")
        .unwrap_or_else(|| panic!("no status in {err:?}"));
    // A shell reports death by signal N as 128 + N.
    let code: i32 = status.parse().unwrap();
    (if code > 128 { None } else { Some(code) }, rest.to_owned())
}

/// Asserts that `o` failed with exactly one line on stderr, an
/// `imgbuild: error: ` line holding `want` exactly once, and no cause twice
/// (`…: X: X`); returns that line.
pub fn one_error(o: &Output, want: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "succeeded: {err}");
    assert_eq!(o.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "not one line: {err}");
    let line = lines[0];
    assert!(line.starts_with("imgbuild: error: "), "{line}");
    assert_eq!(line.matches(want).count(), 1, "{want:?} not once: {line}");
    assert!(
        line.matches("(os error").count() <= 1,
        "a cause twice: {line}"
    );
    let parts: Vec<&str> = line.split(": ").collect();
    for w in parts.windows(2) {
        assert_ne!(w[0], w[1], "a cause twice: {line}");
    }
    line.to_owned()
}
