//! Finding a path in the planned root filesystem as the guest's kernel will:
//! component by component, following symbolic links (absolute ones from the
//! image's root), looking inside copied host trees where the plan has one.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::{Node, Plan};

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

/// One step's view: the plan's entry (and mode), or a host file inside a
/// copied tree (and the mode it gets in the image).
enum Found {
    Planned(Node, u16),
    Host(fs::Metadata, PathBuf, u16),
}

fn lookup(plan: &Plan, path: &str) -> Option<Found> {
    if let Some(e) = plan.get(path) {
        return Some(Found::Planned(e.node.clone(), e.mode));
    }
    // Inside a copied tree: the nearest ancestor that is one.
    let mut ancestor = path;
    while let Some(i) = ancestor.rfind('/') {
        ancestor = &ancestor[..i];
        let key = if ancestor.is_empty() { "/" } else { ancestor };
        if let Some(e) = plan.get(key) {
            return match &e.node {
                Node::HostTree { src, file_mode, .. } => {
                    let host = src.join(path[key.len()..].trim_start_matches('/'));
                    let md = fs::symlink_metadata(&host).ok()?;
                    let mode = match file_mode {
                        Some(m) if md.is_file() => *m,
                        _ => (md.permissions().mode() & 0o7777) as u16,
                    };
                    Some(Found::Host(md, host, mode))
                }
                _ => None,
            };
        }
        if ancestor.is_empty() {
            break;
        }
    }
    None
}

fn split(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_owned)
        .collect()
}

/// Finds `path` (absolute) in `plan`, following every symbolic link.
pub fn resolve(plan: &Plan, path: &str) -> Result<Target, ResolveError> {
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
        let link = match lookup(plan, &here) {
            None => return Err(ResolveError::Missing(here)),
            Some(Found::Planned(Node::Symlink(t), _)) => Some(t),
            Some(Found::Host(md, host, _)) if md.file_type().is_symlink() => Some(
                fs::read_link(&host)
                    .map_err(|_| ResolveError::Missing(here.clone()))?
                    .to_string_lossy()
                    .into_owned(),
            ),
            Some(found) => {
                let is_dir = match &found {
                    Found::Planned(n, _) => n.is_dir_like(),
                    Found::Host(md, _, _) => md.is_dir(),
                };
                if todo.is_empty() {
                    return Ok(match found {
                        Found::Planned(Node::Bytes(_) | Node::HostFile(_), mode) => Target::File {
                            path: here,
                            executable: mode & 0o111 != 0,
                        },
                        Found::Host(md, _, mode) if md.is_file() => Target::File {
                            path: here,
                            executable: mode & 0o111 != 0,
                        },
                        _ if is_dir => Target::Dir(here),
                        _ => Target::Other(here),
                    });
                }
                if !is_dir {
                    return Err(ResolveError::NotDir(here));
                }
                None
            }
        };
        if let Some(t) = link {
            hops += 1;
            if hops > 40 {
                return Err(ResolveError::Loop);
            }
            cur.pop();
            if t.starts_with('/') {
                cur.clear();
            }
            for (n, part) in split(&t).into_iter().enumerate() {
                todo.insert(n, part);
            }
        }
    }
    Ok(Target::Dir("/".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        let mut p = Plan::new();
        p.add("/bin/busybox", Node::Bytes(b"ELF".to_vec()), 0o755);
        p.add("/bin/sh", Node::Symlink("/bin/busybox".into()), 0o777);
        p.add(
            "/usr/sbin/httpd",
            Node::Symlink("../../bin/busybox".into()),
            0o777,
        );
        p.add("/etc/motd", Node::Bytes(b"hi".to_vec()), 0o644);
        p.add("/loop", Node::Symlink("/loop".into()), 0o777);
        p.add("/lib64", Node::Symlink("lib".into()), 0o777);
        p.add("/lib/x", Node::Bytes(vec![]), 0o755);
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
        p.add(
            "/opt/app",
            Node::HostTree {
                src: d.path().to_path_buf(),
                file_mode: None,
                dir_mode: None,
            },
            0o755,
        );
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
}
