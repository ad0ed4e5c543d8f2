//! Shared by the real-QEMU tests: the guest image, root check, one test at a time.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Returns the guest directory, or `None` (after printing why) when the test must skip.
pub fn guest() -> Option<PathBuf> {
    if !is_root() {
        eprintln!("SKIPPED: imgrun's QEMU tests need root (CAP_NET_ADMIN for a network namespace)");
        return None;
    }
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    Some(DIR.get_or_init(build_guest).clone())
}

/// Builds the busybox guest with the builder, as a user would:
/// `imgbuild recipe recipes/busybox.toml`. Uses the `imgbuild` binary built
/// next to this test (CI runs `cargo build --workspace` first), else
/// `cargo run -p imgbuild`. `IMGRUN_TEST_IMAGE=<dir>` skips the build.
fn build_guest() -> PathBuf {
    if let Ok(dir) = std::env::var("IMGRUN_TEST_IMAGE") {
        return PathBuf::from(dir);
    }
    // <target>/<profile>/deps/<test> -> <target>/<profile>
    let profile_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent()?.parent().map(Path::to_path_buf))
        .expect("test binary location");
    let out = profile_dir.join("imgrun-test-out");
    let sibling = profile_dir.join("imgbuild");
    let mut cmd = if sibling.is_file() {
        Command::new(&sibling)
    } else {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut c = Command::new(cargo);
        c.args(["run", "-q", "-p", "imgbuild"]);
        if !cfg!(debug_assertions) {
            c.arg("--release");
        }
        c.arg("--");
        c
    };
    cmd.current_dir(workspace())
        .args(["recipe", "recipes/busybox.toml", "--out"])
        .arg(&out);
    let status = cmd.status().expect("running imgbuild to build the guest");
    assert!(
        status.success(),
        "imgbuild recipe recipes/busybox.toml failed: {status}"
    );
    let dir = out.join("busybox");
    assert!(
        dir.join("manifest.json").is_file(),
        "no manifest in {}",
        dir.display()
    );
    dir
}
