//! The filesystems each stage mounts.

use crate::sys::{MountOpts, Sys};

/// One mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountSpec {
    /// Source (`proc`, `sysfs`, ...).
    pub source: &'static str,
    /// Mount point.
    pub target: &'static str,
    /// Filesystem type.
    pub fstype: &'static str,
    /// Flags.
    pub opts: MountOpts,
    /// Filesystem data (`mode=1777`, ...).
    pub data: &'static str,
}

/// The kernel filesystems: stage 1 mounts them and moves them into the new
/// root; stage 2 mounts whichever are not already there.
pub const KERNEL_FS: [MountSpec; 3] = [
    MountSpec {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        opts: MountOpts::KERNEL_FS,
        data: "",
    },
    MountSpec {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        opts: MountOpts::KERNEL_FS,
        data: "",
    },
    MountSpec {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        opts: MountOpts::DEV,
        data: "mode=0755",
    },
];

/// What stage 2 mounts after the kernel filesystems.
pub const SYSTEM_FS: [MountSpec; 4] = [
    MountSpec {
        source: "devpts",
        target: "/dev/pts",
        fstype: "devpts",
        opts: MountOpts {
            read_only: false,
            nosuid: true,
            nodev: false,
            noexec: true,
        },
        data: "gid=5,mode=0620,ptmxmode=0666",
    },
    MountSpec {
        source: "shm",
        target: "/dev/shm",
        fstype: "tmpfs",
        opts: MountOpts::TMP,
        data: "mode=1777",
    },
    MountSpec {
        source: "run",
        target: "/run",
        fstype: "tmpfs",
        opts: MountOpts::TMP,
        data: "mode=0755",
    },
    MountSpec {
        source: "tmpfs",
        target: "/tmp",
        fstype: "tmpfs",
        opts: MountOpts::TMP,
        data: "mode=1777",
    },
];

/// Mounts each spec whose target is not already a mount point, creating the
/// directory first if it is missing. Failures are logged and skipped;
/// returns how many mounts failed.
pub fn mount_all<S: Sys>(sys: &mut S, specs: &[MountSpec]) -> usize {
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
        match sys.mount(m.source, m.target, m.fstype, m.opts, m.data) {
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
