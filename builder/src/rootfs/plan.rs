//! The root filesystem as a plan: every entry with its path, kind, mode and
//! owner, before anything is written. Later entries at the same path replace
//! earlier ones, so the order of `add` calls decides who wins.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir,
    /// A regular file with these bytes.
    Bytes(Vec<u8>),
    /// A regular file copied from the host.
    HostFile(PathBuf),
    /// A host directory copied recursively (owned by root).
    HostTree(PathBuf),
    /// A symbolic link.
    Symlink(String),
    /// A character device.
    CharDev(u32, u32),
    /// A block device.
    BlockDev(u32, u32),
    /// A named pipe.
    Fifo,
}

/// One entry of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanEntry {
    /// What it is.
    pub node: Node,
    /// Permission bits.
    pub mode: u16,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
}

/// The planned root filesystem, keyed by absolute path (sorted, so parents
/// come before their children).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    entries: BTreeMap<String, PlanEntry>,
}

impl Plan {
    /// An empty plan.
    pub fn new() -> Plan {
        Plan::default()
    }

    /// Adds (or replaces) `path`, root-owned, creating missing parent
    /// directories (0755).
    pub fn add(&mut self, path: &str, node: Node, mode: u16) {
        self.add_owned(path, node, mode, 0, 0);
    }

    /// Adds (or replaces) `path` with an explicit owner.
    pub fn add_owned(&mut self, path: &str, node: Node, mode: u16, uid: u32, gid: u32) {
        let mut parent = String::new();
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        for c in comps.iter().take(comps.len().saturating_sub(1)) {
            parent.push('/');
            parent.push_str(c);
            let replace = !matches!(self.entries.get(&parent), Some(e) if e.node == Node::Dir);
            if replace {
                self.entries.insert(
                    parent.clone(),
                    PlanEntry {
                        node: Node::Dir,
                        mode: 0o755,
                        uid: 0,
                        gid: 0,
                    },
                );
            }
        }
        let path = if comps.is_empty() {
            "/".to_owned()
        } else {
            format!("/{}", comps.join("/"))
        };
        if node != Node::Dir {
            // A non-directory replaces a directory and everything under it.
            let prefix = format!("{path}/");
            self.entries.retain(|k, _| !k.starts_with(&prefix));
        }
        self.entries.insert(
            path,
            PlanEntry {
                node,
                mode,
                uid,
                gid,
            },
        );
    }

    /// The entry at `path`.
    pub fn get(&self, path: &str) -> Option<&PlanEntry> {
        self.entries.get(path)
    }

    /// All entries, parents first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &PlanEntry)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if nothing is planned.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_created_and_sorted_first() {
        let mut p = Plan::new();
        p.add("/usr/bin/awk", Node::Symlink("/bin/busybox".into()), 0o777);
        let paths: Vec<&str> = p.iter().map(|(k, _)| k).collect();
        assert_eq!(paths, ["/usr", "/usr/bin", "/usr/bin/awk"]);
        assert_eq!(p.get("/usr").unwrap().mode, 0o755);
    }

    #[test]
    fn later_adds_win() {
        let mut p = Plan::new();
        p.add("/sbin/init", Node::Symlink("/bin/busybox".into()), 0o777);
        p.add("/sbin/init", Node::Bytes(b"ELF".to_vec()), 0o755);
        assert_eq!(
            p.get("/sbin/init").unwrap().node,
            Node::Bytes(b"ELF".to_vec())
        );
        p.add("/tmp", Node::Dir, 0o1777);
        assert_eq!(p.get("/tmp").unwrap().mode, 0o1777);
        // Parent creation does not reset an existing directory's mode.
        p.add("/tmp/x", Node::Bytes(vec![]), 0o644);
        assert_eq!(p.get("/tmp").unwrap().mode, 0o1777);
    }

    #[test]
    fn file_replaces_directory_subtree() {
        let mut p = Plan::new();
        p.add("/a/b/c", Node::Bytes(vec![]), 0o644);
        p.add("/a", Node::Symlink("x".into()), 0o777);
        assert!(p.get("/a/b").is_none());
        assert!(p.get("/a/b/c").is_none());
    }
}
