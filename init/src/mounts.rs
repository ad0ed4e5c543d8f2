//! Mounting the filesystems each stage mounts (the table is the contract's:
//! [`guest_contract::mounts`], so the builder knows what they hide).

use crate::sys::{MountOpts, Sys};

pub use guest_contract::mounts::{KERNEL_FS, Mount, SYSTEM_FS};

/// The `mount(2)` flags of a mount of the contract's table.
pub fn opts(m: &Mount) -> MountOpts {
    MountOpts {
        read_only: false,
        nosuid: m.nosuid,
        nodev: m.nodev,
        noexec: m.noexec,
    }
}

/// Mounts each spec whose target is not already a mount point, creating the
/// directory first if it is missing. Failures are logged and skipped;
/// returns how many mounts failed.
pub fn mount_all<S: Sys>(sys: &mut S, specs: &[Mount]) -> usize {
    let mut failed = 0;
    for m in specs {
        if sys.is_mount_point(m.target) {
            continue; // moved here by stage 1, or mounted by an earlier call
        }
        if !sys.exists(m.target) {
            if let Err(e) = sys.mkdir_p(m.target) {
                sys.log(&format!("mkdir {} failed: {e}", m.target));
            }
        }
        match sys.mount(m.source, m.target, m.fstype, opts(m), m.data) {
            Ok(()) => sys.log(&format!("mounted {} on {}", m.fstype, m.target)),
            Err(e) => {
                failed += 1;
                sys.log(&format!("mount {} on {} failed: {e}", m.fstype, m.target));
            }
        }
    }
    failed
}

/// Mount points from `/proc/mounts` text, in mount order.
pub fn mount_points(proc_mounts: &str) -> Vec<String> {
    proc_mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|p| p.replace("\\040", " "))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;

    #[test]
    fn skips_mounted_and_creates_missing() {
        let mut sys = FakeSys::new();
        sys.mount_points.insert("/proc".into());
        sys.paths.insert("/sys".into());
        sys.fail.insert("mount devtmpfs".into());
        assert_eq!(mount_all(&mut sys, &KERNEL_FS), 1);
        assert_eq!(
            sys.calls,
            [
                "mount sysfs /sys sysfs nosuid,nodev,noexec",
                "mkdir /dev",
                "mount devtmpfs /dev devtmpfs nosuid mode=0755",
            ]
        );
        assert!(
            sys.logs
                .iter()
                .any(|l| l.contains("mount devtmpfs on /dev failed"))
        );
    }

    #[test]
    fn parses_proc_mounts() {
        let t = "rootfs / rootfs rw 0 0\n/dev/vda / ext4 ro 0 0\nproc /proc proc rw 0 0\nx /a\\040b tmpfs rw 0 0\n";
        assert_eq!(mount_points(t), ["/", "/", "/proc", "/a b"]);
    }
}
