//! Kernel module names: `-` and `_` are the same character to the kernel.

/// File-name suffixes a module file can carry, longest first.
const SUFFIXES: [&str; 4] = [".ko.zst", ".ko.xz", ".ko.gz", ".ko"];

/// Normalises a module name the way `modprobe` does: every `-` becomes `_`.
///
/// ```
/// assert_eq!(imgbuild_modules::name::normalize("xen-netfront"), "xen_netfront");
/// ```
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The normalised module name of a module file path such as
/// `kernel/drivers/net/xen-netfront.ko.xz` (→ `xen_netfront`).
pub fn from_path(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = SUFFIXES
        .iter()
        .find_map(|s| base.strip_suffix(s))
        .unwrap_or(base);
    normalize(stem)
}

/// True if `path` names a module file (`.ko`, optionally compressed).
pub fn is_module_path(path: &str) -> bool {
    SUFFIXES.iter().any(|s| path.ends_with(s))
}

/// Compares two module names (or paths) for identity after normalisation.
pub fn same(a: &str, b: &str) -> bool {
    let a = if is_module_path(a) {
        from_path(a)
    } else {
        normalize(a)
    };
    let b = if is_module_path(b) {
        from_path(b)
    } else {
        normalize(b)
    };
    a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_paths() {
        assert_eq!(
            from_path("kernel/drivers/net/xen-netfront.ko"),
            "xen_netfront"
        );
        assert_eq!(
            from_path("kernel/drivers/net/virtio_net.ko.xz"),
            "virtio_net"
        );
        assert_eq!(from_path("a/b/c.ko.zst"), "c");
        assert_eq!(from_path("net_failover.ko.gz"), "net_failover");
        assert_eq!(from_path("noext"), "noext");
    }

    #[test]
    fn dash_equals_underscore() {
        assert!(same("xen-blkfront", "xen_blkfront"));
        assert!(same("kernel/drivers/block/xen-blkfront.ko", "xen_blkfront"));
        assert!(!same("virtio_net", "virtio_blk"));
        assert!(is_module_path("x.ko.xz"));
        assert!(!is_module_path("x.kox"));
    }
}
