//! The filesystems the init mounts over the root image. What the image
//! holds under these paths is hidden while the guest runs, so the builder
//! warns about files a recipe puts there.

/// One mount the init makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mount {
    /// Source (`proc`, `sysfs`, …).
    pub source: &'static str,
    /// Mount point.
    pub target: &'static str,
    /// Filesystem type.
    pub fstype: &'static str,
    /// `MS_NOSUID`.
    pub nosuid: bool,
    /// `MS_NODEV`.
    pub nodev: bool,
    /// `MS_NOEXEC`.
    pub noexec: bool,
    /// Filesystem data (`mode=1777`, …).
    pub data: &'static str,
}

const fn mount(
    source: &'static str,
    target: &'static str,
    fstype: &'static str,
    (nosuid, nodev, noexec): (bool, bool, bool),
    data: &'static str,
) -> Mount {
    Mount {
        source,
        target,
        fstype,
        nosuid,
        nodev,
        noexec,
        data,
    }
}

/// The kernel filesystems: stage 1 mounts them and moves them into the new
/// root; stage 2 mounts whichever are not already there.
pub const KERNEL_FS: [Mount; 3] = [
    mount("proc", "/proc", "proc", (true, true, true), ""),
    mount("sysfs", "/sys", "sysfs", (true, true, true), ""),
    mount(
        "devtmpfs",
        "/dev",
        "devtmpfs",
        (true, false, false),
        "mode=0755",
    ),
];

/// What stage 2 mounts after the kernel filesystems.
pub const SYSTEM_FS: [Mount; 4] = [
    mount(
        "devpts",
        "/dev/pts",
        "devpts",
        (true, false, true),
        "gid=5,mode=0620,ptmxmode=0666",
    ),
    mount("shm", "/dev/shm", "tmpfs", (true, true, false), "mode=1777"),
    mount("run", "/run", "tmpfs", (true, true, false), "mode=0755"),
    mount("tmpfs", "/tmp", "tmpfs", (true, true, false), "mode=1777"),
];

/// The mount that hides `path` (an absolute, normalised image path) in the
/// running guest, if any: `path` is below its mount point. The mount point
/// itself is not hidden (the mount needs it).
pub fn hidden_by(path: &str) -> Option<&'static Mount> {
    KERNEL_FS
        .iter()
        .chain(SYSTEM_FS.iter())
        .filter(|m| {
            path.strip_prefix(m.target)
                .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1)
        })
        // The outermost mount is the one that hides it (/dev hides /dev/pts/x).
        .min_by_key(|m| m.target.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_hidden() {
        assert_eq!(hidden_by("/dev/xvdb").map(|m| m.fstype), Some("devtmpfs"));
        assert_eq!(hidden_by("/dev/pts/0").map(|m| m.target), Some("/dev"));
        assert_eq!(hidden_by("/tmp/x/y").map(|m| m.target), Some("/tmp"));
        assert_eq!(hidden_by("/run/lock").map(|m| m.fstype), Some("tmpfs"));
        for visible in [
            "/dev",
            "/tmp",
            "/etc/motd",
            "/devices",
            "/tmpfile",
            "/runner/x",
        ] {
            assert_eq!(hidden_by(visible), None, "{visible}");
        }
    }
}
