//! `imgrun run`'s and `--workload`'s refusals, which boot nothing: imgrun's
//! own failures exit 125 from `run` (so that a command's own 1 or 2 stays
//! the command's), 2 from `migrate-check`, as its other refusals.

use std::process::{Command, Output};

fn imgrun(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imgrun"))
        .args(args)
        .output()
        .unwrap()
}

fn code_and_stderr(args: &[&str]) -> (i32, String) {
    let out = imgrun(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn run_usage_errors_exit_125() {
    for (args, says) in [
        (
            &["run", "out/x", "echo", "hi"][..],
            "unexpected argument 'echo'",
        ),
        (&["run", "out/x"][..], "<CMD>"),
        (&["run", "out/x", "--"][..], "<CMD>"),
        (
            &["run", "--timeout", "0", "out/x", "--", "true"][..],
            "--timeout",
        ),
        (
            &["run", "--no-such-option", "out/x", "--", "true"][..],
            "--no-such-option",
        ),
    ] {
        let (code, err) = code_and_stderr(args);
        assert_eq!(code, 125, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let out = imgrun(&["run", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("-- <CMD>..."), "{help}");
    assert!(help.contains("125: imgrun failed"), "{help}");
}

#[test]
fn run_refuses_before_booting_anything() {
    let (code, err) = code_and_stderr(&["run", "/nonexistent/busybox", "--", "true"]);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("cannot read /nonexistent/busybox/manifest.json"),
        "{err}"
    );
    // Longer than the console's tty takes on one line: refused first.
    let long = "x".repeat(5000);
    let (code, err) = code_and_stderr(&["run", "/nonexistent/busybox", "--", "echo", &long]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("takes at most 4095"), "{err}");
    assert!(!err.contains("manifest.json"), "{err}");
}

#[test]
fn workload_refusals() {
    let (code, err) = code_and_stderr(&[
        "migrate-check",
        "/nonexistent/busybox",
        "--libvirt",
        "qemu:///system",
        "qemu:///system",
        "--workload",
        "sleep 100",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("the libvirt backend has no console"), "{err}");
    let (code, err) =
        code_and_stderr(&["migrate-check", "/nonexistent/busybox", "--workload", " "]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--workload: no command given"), "{err}");
    let (code, err) = code_and_stderr(&[
        "migrate-check",
        "/nonexistent/busybox",
        "--workload-check",
        "true",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--workload <CMD>"), "{err}");
    let long = "x".repeat(5000);
    let (code, err) = code_and_stderr(&[
        "migrate-check",
        "/nonexistent/busybox",
        "--workload",
        "true",
        "--workload-check",
        &long,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--workload-check: the line typed"), "{err}");
}
