//! Preconditions shared by every real-QEMU test.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

/// One QEMU at a time: the machine has two cores, and TCG guests that
/// compete for them make every timeout a coin toss.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Holds the lock that serialises the QEMU tests of this binary.
pub fn serial() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether this process runs as root (the tests create network namespaces,
/// bridges and taps).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Returns `false` (after printing why, naming the test) when the test cannot
/// run here; the caller then returns without asserting anything.
pub fn can_run(test: &str) -> bool {
    if is_root() {
        return true;
    }
    eprintln!(
        "SKIPPED {test}: the boot tests need root (CAP_NET_ADMIN to create a network \
         namespace, bridge and taps); run `sudo -E cargo test -p imgbuild-e2e`"
    );
    false
}

/// The QEMU binary: `$IMGBUILD_E2E_QEMU`, else `qemu-system-x86_64` from `PATH`.
pub fn qemu() -> PathBuf {
    std::env::var_os("IMGBUILD_E2E_QEMU")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("qemu-system-x86_64"))
}

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<tmp>/imgbuild-e2e-<pid>-<label>-<n>`.
    pub fn new(label: &str) -> std::io::Result<TempDir> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let p =
            std::env::temp_dir().join(format!("imgbuild-e2e-{}-{label}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("IMGBUILD_E2E_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
