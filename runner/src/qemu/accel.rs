//! Choosing TCG or KVM: KVM only when the guest's own kernel gets going
//! under it.
//!
//! `/dev/kvm` opening, or even a vCPU running firmware, is not enough: on
//! nested hosts without hardware virtualisation exposed (no `vmx`/`svm`),
//! KVM runs SeaBIOS and the kernel's real-mode setup and then hangs for ever
//! where the kernel enters long mode (seen on the CI machines: `Probing EDD
//! ... ok`, then nothing). So the probe boots the kernel for a moment and
//! waits for the line the 64-bit kernel prints first.
//!
//! The answer is a property of the host, so it is cached (in the temporary
//! directory, keyed by the host's boot and the QEMU binary) and the probe
//! costs its seconds once per boot of the host, not once per run.

use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::argv::Accel;
use super::process::die_with_parent;

/// How long the kernel gets to print its banner under KVM (it needs well
/// under a second where KVM works).
const PROBE_TIME: Duration = Duration::from_secs(4);
/// What the decompressed 64-bit kernel prints first.
const BANNER: &[u8] = b"Linux version";

/// KVM if `/dev/kvm` opens and `kernel` boots under it, else TCG.
/// `scratch` is a directory for the probe's console file.
pub fn probe(qemu: &Path, kernel: &Path, scratch: &Path) -> Accel {
    if fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return Accel::Tcg;
    }
    let cache = cache_file(qemu);
    if let Some(a) = cache.as_deref().and_then(read_cache) {
        return a;
    }
    let accel = if kernel_boots(qemu, kernel, scratch) {
        Accel::Kvm
    } else {
        Accel::Tcg
    };
    if let Some(c) = &cache {
        // Best effort: without the cache the next run probes again.
        let tmp = c.with_extension(format!("tmp-{}", std::process::id()));
        if fs::write(&tmp, accel.name()).is_ok() {
            let _ = fs::rename(&tmp, c);
        }
    }
    accel
}

/// Boots `kernel` under KVM (no disk, no initramfs) and watches its serial
/// console for the banner.
fn kernel_boots(qemu: &Path, kernel: &Path, scratch: &Path) -> bool {
    let console = scratch.join("kvm-probe.console.log");
    let _ = fs::remove_file(&console);
    let mut cmd = Command::new(qemu);
    cmd.args([
        "-machine",
        "q35",
        "-accel",
        "kvm",
        "-cpu",
        "max",
        "-m",
        "128M",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-monitor",
        "none",
        "-no-reboot",
    ])
    .arg("-serial")
    .arg(format!("file:{}", console.display()))
    .arg("-kernel")
    .arg(kernel)
    .args(["-append", "console=ttyS0 earlyprintk=ttyS0 panic=-1"])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .process_group(0);
    die_with_parent(&mut cmd);
    let Ok(mut child) = cmd.spawn() else {
        return false;
    };
    let start = Instant::now();
    let mut booted = false;
    while start.elapsed() < PROBE_TIME {
        if fs::read(&console).is_ok_and(|c| c.windows(BANNER.len()).any(|w| w == BANNER)) {
            booted = true;
            break;
        }
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = fs::remove_file(&console);
    booted
}

/// `$TMPDIR/imgrun-accel-<boot id>-<hash of the QEMU binary's path, size and mtime>`.
fn cache_file(qemu: &Path) -> Option<PathBuf> {
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let exe = which(qemu)?;
    let md = fs::metadata(&exe).ok()?;
    let mtime = md
        .modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_nanos();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{}\0{}\0{mtime}", exe.display(), md.len()).bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    Some(std::env::temp_dir().join(format!("imgrun-accel-{}-{h:016x}", boot.trim())))
}

fn read_cache(path: &Path) -> Option<Accel> {
    match fs::read_to_string(path).ok()?.as_str() {
        "kvm" => Some(Accel::Kvm),
        "tcg" => Some(Accel::Tcg),
        _ => None,
    }
}

/// The QEMU binary's path: as given if it has a `/`, else found on `PATH`.
fn which(qemu: &Path) -> Option<PathBuf> {
    if qemu.components().count() > 1 {
        return fs::canonicalize(qemu).ok();
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(qemu))
        .find(|p| p.is_file())
        .and_then(|p| fs::canonicalize(p).ok())
}
