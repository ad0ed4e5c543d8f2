//! How QEMU boots the guest's kernel: the fast way (the default) or as
//! before (`--legacy-boot`), and what each costs is in BENCHMARKS.md.
//!
//! Fast: the same kernel, initramfs and root image, entered through PVH
//! (the bzImage's own payload, see [`super::pvh`]) from qboot instead of
//! SeaBIOS, the initramfs given uncompressed ([`super::initramfs`]), with
//! kernel parameters that skip work whose result nobody under emulation uses. Only the QEMU guest gets them: the Xen config, the
//! libvirt XML and the image are untouched.

use std::path::{Path, PathBuf};

use super::{initramfs, pvh};

/// Which way to boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BootMode {
    #[default]
    Fast,
    /// SeaBIOS, the bzImage, the manifest's command line as it is.
    Legacy,
}

/// Kernel parameters of the fast boot, each skipping a cost measured under
/// TCG with the Debian kernel (BENCHMARKS.md, "boot stages").
pub const FAST_KERNEL_PARAMS: &[&str] = &[
    // The crypto manager's self-tests of every algorithm registered at boot.
    "cryptomgr.notests",
    // The IO-APIC timer check (a calibrated wait for timer interrupts).
    "no_timer_check",
    // No clocksource watchdog and no TSC re-calibration against a slower clock.
    "tsc=reliable",
    // The SP800-108 KDF self-test and the kprobe-events tracer set-up: both
    // only run a self-test or register a tracefs file nothing here uses.
    "initcall_blacklist=crypto_kdf108_init,init_kprobe_trace",
];

/// The firmware QEMU loads instead of SeaBIOS (Debian's qemu-system-data).
const QBOOT: &str = "qboot.rom";

/// What one boot uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootPlan {
    pub mode: BootMode,
    /// The kernel file QEMU loads (`-kernel`).
    pub kernel: PathBuf,
    /// The initramfs it loads (`-initrd`).
    pub initrd: PathBuf,
    /// `-bios`, when not QEMU's default.
    pub firmware: Option<PathBuf>,
    /// Appended to the manifest's QEMU command line.
    pub extra_params: Vec<String>,
    /// What fell back, and why (said once as a note).
    pub notes: Vec<String>,
}

impl BootPlan {
    /// `PVH entry, qboot` / `bzImage, SeaBIOS`, for the host line.
    pub fn describe(&self) -> String {
        let kernel = if self.kernel.extension().is_some_and(|e| e == "vmlinux") {
            "PVH entry"
        } else {
            "bzImage"
        };
        let firmware = if self.firmware.is_some() {
            "qboot"
        } else {
            "SeaBIOS"
        };
        format!("{kernel}, {firmware}")
    }

    /// The manifest's command line with this plan's parameters.
    pub fn cmdline(&self, manifest_cmdline: &str) -> String {
        let mut c = manifest_cmdline.to_owned();
        for p in &self.extra_params {
            c.push(' ');
            c.push_str(p);
        }
        c
    }
}

/// Where QEMU keeps its firmware: beside a QEMU in `<prefix>/bin`, then
/// the distribution's places.
fn firmware_dirs(qemu: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(prefix) = qemu.parent().and_then(Path::parent) {
        if !prefix.as_os_str().is_empty() {
            dirs.push(prefix.join("share/qemu"));
        }
    }
    dirs.extend(["/usr/share/qemu", "/usr/local/share/qemu"].map(PathBuf::from));
    dirs
}

/// The plan for booting `kernel` (the manifest's bzImage) and `initrd`
/// with `qemu`; `cache_dir` holds the unpacked PVH image and the inflated
/// initramfs (none: both boot as built).
pub fn plan(
    mode: BootMode,
    kernel: &Path,
    initrd: &Path,
    cache_dir: Option<&Path>,
    qemu: &Path,
) -> BootPlan {
    let mut p = BootPlan {
        mode,
        kernel: kernel.to_path_buf(),
        initrd: initrd.to_path_buf(),
        firmware: None,
        extra_params: Vec::new(),
        notes: Vec::new(),
    };
    if mode == BootMode::Legacy {
        return p;
    }
    match cache_dir {
        None => p.notes.push(
            "no cache directory (set IMGRUN_CACHE or HOME): booting the bzImage, not its PVH entry"
                .into(),
        ),
        Some(dir) => {
            match pvh::vmlinux(kernel, dir) {
                Ok(v) => p.kernel = v,
                Err(e) => p
                    .notes
                    .push(format!("booting the bzImage, not its PVH entry: {e}")),
            }
            match initramfs::uncompressed(initrd, dir) {
                Ok(i) => p.initrd = i,
                Err(e) => p.notes.push(format!("the initramfs boots compressed: {e}")),
            }
        }
    }
    p.firmware = firmware_dirs(qemu)
        .into_iter()
        .map(|d| d.join(QBOOT))
        .find(|f| f.is_file());
    if p.firmware.is_none() {
        p.notes.push(format!(
            "no {QBOOT} beside QEMU (qemu-system-data): booting with SeaBIOS"
        ));
    }
    p.extra_params = FAST_KERNEL_PARAMS.iter().map(|s| (*s).to_owned()).collect();
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_is_the_manifest_as_it_is() {
        let p = plan(
            BootMode::Legacy,
            Path::new("/o/vmlinuz"),
            Path::new("/o/initrd.img"),
            Some(Path::new("/nonexistent")),
            Path::new("qemu-system-x86_64"),
        );
        assert_eq!(p.kernel, Path::new("/o/vmlinuz"));
        assert_eq!(p.initrd, Path::new("/o/initrd.img"));
        assert_eq!(p.firmware, None);
        assert_eq!(p.cmdline("root=/dev/vda ro"), "root=/dev/vda ro");
        assert!(p.notes.is_empty());
        assert_eq!(p.describe(), "bzImage, SeaBIOS");
    }

    #[test]
    fn fast_falls_back_to_the_bzimage_with_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("vmlinuz");
        std::fs::write(&kernel, b"not a bzImage").unwrap();
        let initrd = dir.path().join("initrd.img");
        std::fs::write(&initrd, [0x1f, 0x8b, 0, 0]).unwrap();
        let p = plan(
            BootMode::Fast,
            &kernel,
            &initrd,
            Some(dir.path()),
            Path::new("/nonexistent/bin/qemu"),
        );
        assert_eq!(p.kernel, kernel);
        assert!(p.notes[0].contains("is not a bzImage"), "{:?}", p.notes);
        assert!(
            p.notes[1].contains("the initramfs boots compressed"),
            "{:?}",
            p.notes
        );
        assert_eq!(p.initrd, initrd);
        assert_eq!(
            p.cmdline("root=/dev/vda"),
            format!("root=/dev/vda {}", FAST_KERNEL_PARAMS.join(" "))
        );
        let p = plan(BootMode::Fast, &kernel, &initrd, None, Path::new("qemu"));
        assert!(p.notes[0].contains("no cache directory"), "{:?}", p.notes);
    }

    #[test]
    fn firmware_is_looked_for_beside_qemu_first() {
        let d = firmware_dirs(Path::new("/opt/q/bin/qemu-system-x86_64"));
        assert_eq!(d[0], Path::new("/opt/q/share/qemu"));
        assert_eq!(d[1], Path::new("/usr/share/qemu"));
        assert_eq!(
            firmware_dirs(Path::new("qemu-system-x86_64"))[0],
            Path::new("/usr/share/qemu")
        );
    }
}
