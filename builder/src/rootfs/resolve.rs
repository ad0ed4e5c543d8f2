//! Finding a path in the root filesystem as the guest's kernel will:
//! component by component, following symbolic links (absolute ones from the
//! image's root). It looks at the filesystem as it will be written — the
//! base tarball, the copied host trees and every planned entry, put together
//! by `ext4fs_builder::FsBuilder` — so a program is found wherever it came
//! from.

use ext4fs_builder::{EntryType, FsBuilder};

/// What a path names in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A regular file; `executable` if any execute bit is set.
    File {
        /// The image path it was found at (after links).
        path: String,
        /// Any of the mode's execute bits.
        executable: bool,
    },
    /// A directory.
    Dir(String),
    /// A device, fifo or socket.
    Other(String),
}

/// Why a path cannot be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// Nothing is planned at this path.
    Missing(String),
    /// A component is not a directory.
    NotDir(String),
    /// Too many symbolic links (a loop).
    Loop,
}

fn split(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_owned)
        .collect()
}

/// Finds `path` (absolute) in `fs`, following every symbolic link.
pub fn resolve(fs: &FsBuilder, path: &str) -> Result<Target, ResolveError> {
    let mut todo: std::collections::VecDeque<String> = split(path).into();
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0;
    let as_path = |c: &[String]| format!("/{}", c.join("/"));
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            cur.pop();
            continue;
        }
        cur.push(c);
        let here = as_path(&cur);
        let Some(entry) = fs.entry(&here) else {
            return Err(ResolveError::Missing(here));
        };
        if let EntryType::Symlink(t) = entry.kind {
            hops += 1;
            if hops > 40 {
                return Err(ResolveError::Loop);
            }
            cur.pop();
            let t = String::from_utf8_lossy(&t);
            if t.starts_with('/') {
                cur.clear();
            }
            for (n, part) in split(&t).into_iter().enumerate() {
                todo.insert(n, part);
            }
            continue;
        }
        let is_dir = entry.kind == EntryType::Dir;
        if todo.is_empty() {
            return Ok(match entry.kind {
                EntryType::File => Target::File {
                    path: here,
                    executable: entry.mode & 0o111 != 0,
                },
                _ if is_dir => Target::Dir(here),
                _ => Target::Other(here),
            });
        }
        if !is_dir {
            return Err(ResolveError::NotDir(here));
        }
    }
    Ok(Target::Dir("/".to_owned()))
}

#[cfg(test)]
mod tests {
    use ext4fs_builder::{EntryKind, FileData, Metadata, Options, Timestamp};

    use super::*;

    fn add(fs: &mut FsBuilder, path: &str, kind: EntryKind, mode: u16) {
        fs.add(path, kind, Metadata::new(mode, Timestamp::from_secs(0)))
            .unwrap();
    }

    fn file(b: &[u8]) -> EntryKind {
        EntryKind::File(FileData::Bytes(b.to_vec()))
    }

    fn link(t: &str) -> EntryKind {
        EntryKind::Symlink(t.into())
    }

    fn plan() -> FsBuilder {
        let mut p = FsBuilder::new(Options::default());
        add(&mut p, "/bin/busybox", file(b"ELF"), 0o755);
        add(&mut p, "/bin/sh", link("/bin/busybox"), 0o777);
        add(&mut p, "/usr/sbin/httpd", link("../../bin/busybox"), 0o777);
        add(&mut p, "/etc/motd", file(b"hi"), 0o644);
        add(&mut p, "/loop", link("/loop"), 0o777);
        add(&mut p, "/lib64", link("lib"), 0o777);
        add(&mut p, "/lib/x", file(b""), 0o755);
        add(
            &mut p,
            "/dev/null",
            EntryKind::CharDev { major: 1, minor: 3 },
            0o666,
        );
        p
    }

    #[test]
    fn follows_links_like_the_kernel() {
        let p = plan();
        let exe = |path: &str| Target::File {
            path: path.into(),
            executable: true,
        };
        assert_eq!(resolve(&p, "/bin/sh"), Ok(exe("/bin/busybox")));
        assert_eq!(resolve(&p, "/usr/sbin/httpd"), Ok(exe("/bin/busybox")));
        assert_eq!(resolve(&p, "/lib64/x"), Ok(exe("/lib/x")));
        assert_eq!(
            resolve(&p, "/etc/motd"),
            Ok(Target::File {
                path: "/etc/motd".into(),
                executable: false
            })
        );
        assert_eq!(resolve(&p, "/etc"), Ok(Target::Dir("/etc".into())));
        assert_eq!(
            resolve(&p, "/bin/httpd"),
            Err(ResolveError::Missing("/bin/httpd".into()))
        );
        assert_eq!(
            resolve(&p, "/etc/motd/x"),
            Err(ResolveError::NotDir("/etc/motd".into()))
        );
        assert_eq!(resolve(&p, "/loop"), Err(ResolveError::Loop));
        assert_eq!(
            resolve(&p, "/dev/null"),
            Ok(Target::Other("/dev/null".into()))
        );
    }

    #[test]
    fn looks_into_copied_trees() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("bin")).unwrap();
        std::fs::write(d.path().join("bin/server"), b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            d.path().join("bin/server"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("bin/server", d.path().join("run")).unwrap();
        let mut p = plan();
        p.add_tree(d.path(), "/opt/app").unwrap();
        let exe = Target::File {
            path: "/opt/app/bin/server".into(),
            executable: true,
        };
        assert_eq!(resolve(&p, "/opt/app/run"), Ok(exe.clone()));
        assert_eq!(resolve(&p, "/opt/app/bin/server"), Ok(exe));
        assert_eq!(
            resolve(&p, "/opt/app/nope"),
            Err(ResolveError::Missing("/opt/app/nope".into()))
        );
    }

    #[test]
    fn looks_into_a_base_tarball() {
        // A ustar archive: usr/bin/server (0755) and a link bin -> usr/bin.
        let mut tar = Vec::new();
        for (name, kind, mode, target, body) in [
            ("usr/bin/server", b'0', 0o755, "", &b"#!/bin/sh\n"[..]),
            ("bin", b'2', 0o777, "usr/bin", &b""[..]),
        ] {
            let mut h = [0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            h[100..107].copy_from_slice(format!("{mode:07o}").as_bytes());
            h[108..115].copy_from_slice(b"0000000");
            h[116..123].copy_from_slice(b"0000000");
            h[124..135].copy_from_slice(format!("{:011o}", body.len()).as_bytes());
            h[136..147].copy_from_slice(b"00000000000");
            h[156] = kind;
            h[157..157 + target.len()].copy_from_slice(target.as_bytes());
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
            h[148..156].copy_from_slice(b"        ");
            let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
            h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
            tar.extend_from_slice(&h);
            tar.extend_from_slice(body);
            tar.resize(tar.len().div_ceil(512) * 512, 0);
        }
        tar.resize(tar.len() + 1024, 0);
        let mut p = FsBuilder::new(Options::default());
        p.add_tar(&tar[..], "/").unwrap();
        assert_eq!(
            resolve(&p, "/bin/server"),
            Ok(Target::File {
                path: "/usr/bin/server".into(),
                executable: true
            })
        );
    }
}
