//! Choosing TCG or KVM: KVM only when a quick probe shows QEMU can start a vCPU with it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::argv::Accel;

/// How long a KVM guest must survive start-up to count as working.
const PROBE_TIME: Duration = Duration::from_millis(1500);

/// Returns KVM if `/dev/kvm` opens and a paused q35 machine with a `-cpu max`
/// vCPU stays up for a moment under it, else TCG. On machines where KVM is
/// present but broken (e.g. nested without VMX), QEMU aborts at once.
pub fn probe(binary: &Path) -> Accel {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return Accel::Tcg;
    }
    let child = Command::new(binary)
        .args([
            "-machine",
            "q35",
            "-accel",
            "kvm",
            "-cpu",
            "max",
            "-m",
            "64M",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-monitor",
            "none",
            "-S",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return Accel::Tcg;
    };
    let start = Instant::now();
    while start.elapsed() < PROBE_TIME {
        if let Ok(Some(_)) = child.try_wait() {
            return Accel::Tcg;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    Accel::Kvm
}
