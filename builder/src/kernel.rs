//! Finding the kernel image, its version and its module tree in an input
//! (an unpacked Debian package, a local directory, or a vmlinuz file plus a
//! module tree), and the busybox binary in its input.

use std::path::{Path, PathBuf};

/// Where the kernel and its modules are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelFiles {
    /// The bootable image (`vmlinuz-<kver>`).
    pub vmlinuz: PathBuf,
    /// `/lib/modules/<kver>` of that kernel.
    pub modules_dir: PathBuf,
    /// `<kver>`, e.g. `6.1.0-28-amd64`.
    pub version: String,
}

/// The kernel or busybox cannot be found in an input.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    /// No `boot/vmlinuz-*` in the tree.
    #[error("no kernel image (boot/vmlinuz-*) in {0}")]
    NoVmlinuz(PathBuf),
    /// Several kernels and none matches a single module tree.
    #[error("{dir}: found kernels {found:?} but no single one with a lib/modules/<version> tree")]
    Ambiguous {
        /// The tree.
        dir: PathBuf,
        /// The vmlinuz versions found.
        found: Vec<String>,
    },
    /// No module tree for the kernel.
    #[error("kernel {version}: no module tree {0} (expected lib/modules/{version} next to boot/)", .dir.display())]
    NoModules {
        /// The directory expected.
        dir: PathBuf,
        /// The kernel version.
        version: String,
    },
    /// The module tree's directory name is not a version.
    #[error("cannot tell the kernel version of module tree {0}")]
    NoVersion(PathBuf),
    /// No busybox binary.
    #[error("no busybox binary in {0} (looked for bin/busybox, usr/bin/busybox)")]
    NoBusybox(PathBuf),
    /// The kernel image and the module tree are of different kernels.
    #[error(
        "kernel image {vmlinuz} is version {image_version} but its module tree is for {modules_version}: modules would not load (vermagic mismatch)"
    )]
    VersionMismatch {
        /// The kernel image.
        vmlinuz: PathBuf,
        /// The version in its bzImage header.
        image_version: String,
        /// The module tree's version.
        modules_version: String,
    },
    /// A directory cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn read_names(dir: &Path) -> Result<Vec<String>, LocateError> {
    let rd = std::fs::read_dir(dir).map_err(|source| LocateError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut v: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    Ok(v)
}

/// Finds the kernel in a package-like tree (`boot/vmlinuz-<kver>` and
/// `lib/modules/<kver>`; `usr/lib/modules` is accepted too).
pub fn locate_in_tree(root: &Path) -> Result<KernelFiles, LocateError> {
    let boot = root.join("boot");
    let versions: Vec<String> = if boot.is_dir() {
        read_names(&boot)?
            .into_iter()
            .filter_map(|n| n.strip_prefix("vmlinuz-").map(str::to_owned))
            .collect()
    } else {
        Vec::new()
    };
    if versions.is_empty() {
        return Err(LocateError::NoVmlinuz(root.to_path_buf()));
    }
    let mod_dir = |v: &str| {
        [
            root.join("lib/modules").join(v),
            root.join("usr/lib/modules").join(v),
        ]
        .into_iter()
        .find(|p| p.is_dir())
    };
    let with_modules: Vec<&String> = versions.iter().filter(|v| mod_dir(v).is_some()).collect();
    match with_modules.as_slice() {
        [v] => {
            let k = KernelFiles {
                vmlinuz: boot.join(format!("vmlinuz-{v}")),
                modules_dir: mod_dir(v).unwrap_or_default(),
                version: (*v).clone(),
            };
            k.check_version()?;
            Ok(k)
        }
        [] if versions.len() == 1 => Err(LocateError::NoModules {
            dir: root.join("lib/modules").join(&versions[0]),
            version: versions[0].clone(),
        }),
        _ => Err(LocateError::Ambiguous {
            dir: root.to_path_buf(),
            found: versions,
        }),
    }
}

/// A kernel file with an explicit module tree; the version is the tree's
/// directory name, and must be the image's own version.
pub fn locate_file(vmlinuz: &Path, modules_dir: &Path) -> Result<KernelFiles, LocateError> {
    let version = modules_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .ok_or_else(|| LocateError::NoVersion(modules_dir.to_path_buf()))?;
    let k = KernelFiles {
        vmlinuz: vmlinuz.to_path_buf(),
        modules_dir: modules_dir.to_path_buf(),
        version,
    };
    k.check_version()?;
    Ok(k)
}

impl KernelFiles {
    /// Compares the bzImage header's version with the module tree's (when
    /// the image has a readable header).
    pub fn check_version(&self) -> Result<(), LocateError> {
        let bytes = std::fs::read(&self.vmlinuz).map_err(|source| LocateError::Read {
            path: self.vmlinuz.clone(),
            source,
        })?;
        match bzimage_version(&bytes) {
            Some(v) if v != self.version => Err(LocateError::VersionMismatch {
                vmlinuz: self.vmlinuz.clone(),
                image_version: v,
                modules_version: self.version.clone(),
            }),
            _ => Ok(()),
        }
    }
}

/// The release (`uname -r`) in an x86 bzImage's setup header: `HdrS` at
/// 0x202, and at 0x20e the offset (minus 0x200) of a NUL-terminated string
/// such as `6.1.0-28-amd64 (debian-kernel@…) #1 SMP …`.
pub fn bzimage_version(image: &[u8]) -> Option<String> {
    if image.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let off = usize::from(u16::from_le_bytes([*image.get(0x20e)?, *image.get(0x20f)?])) + 0x200;
    let tail = image.get(off..)?;
    let end = tail.iter().take(256).position(|b| *b == 0)?;
    let s = std::str::from_utf8(&tail[..end]).ok()?;
    s.split_whitespace().next().map(str::to_owned)
}

/// The busybox binary in an input: the file itself, or `bin/busybox` /
/// `usr/bin/busybox` under a directory.
pub fn locate_busybox(input: &Path) -> Result<PathBuf, LocateError> {
    if input.is_file() {
        return Ok(input.to_path_buf());
    }
    ["bin/busybox", "usr/bin/busybox"]
        .iter()
        .map(|p| input.join(p))
        .find(|p| p.is_file())
        .ok_or_else(|| LocateError::NoBusybox(input.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("imgbuild-kernel-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn finds_kernel_in_tree() {
        let d = tmp("tree");
        std::fs::create_dir_all(d.join("boot")).unwrap();
        std::fs::write(d.join("boot/vmlinuz-6.1.0-9-amd64"), b"k").unwrap();
        std::fs::write(d.join("boot/System.map-6.1.0-9-amd64"), b"m").unwrap();
        std::fs::create_dir_all(d.join("lib/modules/6.1.0-9-amd64/kernel")).unwrap();
        let k = locate_in_tree(&d).unwrap();
        assert_eq!(k.version, "6.1.0-9-amd64");
        assert_eq!(k.vmlinuz, d.join("boot/vmlinuz-6.1.0-9-amd64"));
        assert_eq!(k.modules_dir, d.join("lib/modules/6.1.0-9-amd64"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    fn fake_bzimage(version: &str) -> Vec<u8> {
        let mut b = vec![0u8; 0x400];
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        let s = format!("{version} (someone@example) #1 SMP\0");
        b[0x300..0x300 + s.len()].copy_from_slice(s.as_bytes());
        b
    }

    #[test]
    fn bzimage_header_version() {
        assert_eq!(
            bzimage_version(&fake_bzimage("6.1.0-9-amd64")).as_deref(),
            Some("6.1.0-9-amd64")
        );
        assert_eq!(bzimage_version(b"not a kernel"), None);
        let d = tmp("mismatch");
        std::fs::write(d.join("vmlinuz"), fake_bzimage("6.1.0-8-amd64")).unwrap();
        std::fs::create_dir_all(d.join("6.1.0-9-amd64")).unwrap();
        let e = locate_file(&d.join("vmlinuz"), &d.join("6.1.0-9-amd64")).unwrap_err();
        assert!(matches!(e, LocateError::VersionMismatch { .. }), "{e}");
        assert!(e.to_string().contains("6.1.0-8-amd64") && e.to_string().contains("6.1.0-9-amd64"));
        std::fs::write(d.join("vmlinuz"), fake_bzimage("6.1.0-9-amd64")).unwrap();
        assert_eq!(
            locate_file(&d.join("vmlinuz"), &d.join("6.1.0-9-amd64"))
                .unwrap()
                .version,
            "6.1.0-9-amd64"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn errors() {
        let d = tmp("err");
        assert!(matches!(locate_in_tree(&d), Err(LocateError::NoVmlinuz(_))));
        std::fs::create_dir_all(d.join("boot")).unwrap();
        std::fs::write(d.join("boot/vmlinuz-6.1.0-9-amd64"), b"k").unwrap();
        assert!(matches!(
            locate_in_tree(&d),
            Err(LocateError::NoModules { .. })
        ));
        assert!(matches!(locate_busybox(&d), Err(LocateError::NoBusybox(_))));
        assert!(matches!(
            locate_file(&d.join("boot/vmlinuz-6.1.0-9-amd64"), &d.join("boot")),
            Err(LocateError::NoVersion(_))
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
