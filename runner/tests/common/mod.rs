//! Shared by the real-QEMU tests: the guest image, root check, one test at a time.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

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

/// A variant of `recipes/busybox.toml`: its text with `edit` applied,
/// built as the busybox guest is (into `<target>/<profile>/imgrun-test-out-<tag>`,
/// once per test run and tag). `IMGRUN_TEST_IMAGE` does not apply: a
/// variant is always built. `None` (after printing why) when the test must skip.
pub fn guest_variant(tag: &str, edit: fn(&str) -> String) -> Option<PathBuf> {
    if !is_root() {
        eprintln!("SKIPPED: imgrun's QEMU tests need root (CAP_NET_ADMIN for a network namespace)");
        return None;
    }
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, dir)) = built.iter().find(|(t, _)| t == tag) {
        return Some(dir.clone());
    }
    let original = std::fs::read_to_string(workspace().join("recipes/busybox.toml"))
        .expect("reading recipes/busybox.toml");
    let text = edit(&original);
    assert_ne!(
        text, original,
        "the {tag} edit changed nothing in recipes/busybox.toml"
    );
    let out = profile_dir().join(format!("imgrun-test-out-{tag}"));
    std::fs::create_dir_all(&out).expect("creating the variant's output directory");
    let recipe = out.join(format!("busybox-{tag}.toml"));
    std::fs::write(&recipe, text).expect("writing the variant recipe");
    let dir = build_recipe(&recipe, &out);
    built.push((tag.to_string(), dir.clone()));
    Some(dir)
}

/// `<target>/<profile>`, where this test binary and `imgbuild` are.
fn profile_dir() -> PathBuf {
    // <target>/<profile>/deps/<test> -> <target>/<profile>
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent()?.parent().map(Path::to_path_buf))
        .expect("test binary location")
}

/// Builds the busybox guest with the builder, as a user would:
/// `imgbuild recipe recipes/busybox.toml`. `IMGRUN_TEST_IMAGE=<dir>` skips the build.
fn build_guest() -> PathBuf {
    if let Ok(dir) = std::env::var("IMGRUN_TEST_IMAGE") {
        return PathBuf::from(dir);
    }
    build_recipe(
        Path::new("recipes/busybox.toml"),
        &profile_dir().join("imgrun-test-out"),
    )
}

/// `imgbuild recipe <recipe> --out <out>` (from the workspace root) and the
/// guest directory it made, `<out>/busybox`. Uses the `imgbuild` binary built
/// next to this test (CI runs `cargo build --workspace` first), else
/// `cargo run -p imgbuild`.
fn build_recipe(recipe: &Path, out: &Path) -> PathBuf {
    let sibling = profile_dir().join("imgbuild");
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
        .arg("recipe")
        .arg(recipe)
        .arg("--out")
        .arg(out);
    let status = cmd.status().expect("running imgbuild to build the guest");
    assert!(
        status.success(),
        "imgbuild recipe {} failed: {status}",
        recipe.display()
    );
    let dir = out.join("busybox");
    assert!(
        dir.join("manifest.json").is_file(),
        "no manifest in {}",
        dir.display()
    );
    dir
}

/// Each line of `r` (a child's stderr), sent on the returned channel as it
/// is read, by a thread of its own.
pub fn line_channel(r: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

/// Moves lines from `rx` to `seen` until one contains `needle` (returned),
/// or `timeout` passes or the sender is gone (`None`).
pub fn wait_line(
    rx: &Receiver<String>,
    seen: &mut Vec<String>,
    needle: &str,
    timeout: Duration,
) -> Option<String> {
    let end = Instant::now() + timeout;
    while let Ok(l) = rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
        seen.push(l.clone());
        if l.contains(needle) {
            return Some(l);
        }
    }
    None
}
