//! The root filesystem as a plan: every entry with its path, kind, mode,
//! owner and origin (the builder's standard contents, or the recipe's
//! `[[rootfs.files]]` entry that put it there), before anything is written.
//!
//! The builder's own entries ([`Plan::add`]) replace each other freely. A
//! recipe entry ([`Plan::place`]) may replace a standard file, but refuses
//! what would silently lose something: the same destination twice, a file
//! over a directory (and everything in it), a path under a file.

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
    /// A host directory copied recursively; `None` modes keep the source's.
    HostTree {
        /// The host directory.
        src: PathBuf,
        /// Mode of every regular file in it.
        file_mode: Option<u16>,
        /// Mode of every directory in it (the top one's is the entry's).
        dir_mode: Option<u16>,
    },
    /// A symbolic link.
    Symlink(String),
    /// A character device.
    CharDev(u32, u32),
    /// A block device.
    BlockDev(u32, u32),
    /// A named pipe.
    Fifo,
}

impl Node {
    /// A directory, or a copied tree (which is one in the image).
    pub fn is_dir_like(&self) -> bool {
        matches!(self, Node::Dir | Node::HostTree { .. })
    }
}

/// Who put an entry in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// The builder's standard contents.
    Standard,
    /// `[[rootfs.files]]` entry number `n` (0-based), or a parent directory it needed.
    Recipe(usize),
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
    /// Who put it there.
    pub origin: Origin,
}

/// Why a recipe entry cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// An earlier recipe entry has the same destination.
    SameDest {
        /// Its index.
        earlier: usize,
    },
    /// A non-directory would replace a directory and what is in it.
    ReplacesDir {
        /// Some of what would be lost.
        lost: Vec<String>,
        /// Who put the directory (or its contents) there.
        origins: Vec<Origin>,
    },
    /// A parent of the destination is a file, link or device.
    UnderFile {
        /// That parent.
        parent: String,
        /// Who put it there.
        origin: Origin,
    },
}

/// The planned root filesystem, keyed by absolute path (sorted, so parents
/// come before their children).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    entries: BTreeMap<String, PlanEntry>,
    /// Where each recipe entry was placed.
    placed: BTreeMap<usize, String>,
}

fn components(path: &str) -> Vec<&str> {
    path.split('/').filter(|c| !c.is_empty()).collect()
}

fn join(comps: &[&str]) -> String {
    if comps.is_empty() {
        "/".to_owned()
    } else {
        format!("/{}", comps.join("/"))
    }
}

impl Plan {
    /// An empty plan.
    pub fn new() -> Plan {
        Plan::default()
    }

    /// Adds (or replaces) a standard entry at `path`, root-owned, creating
    /// missing parent directories (0755).
    pub fn add(&mut self, path: &str, node: Node, mode: u16) {
        self.insert(path, node, mode, (0, 0), Origin::Standard);
    }

    /// Adds (or replaces) `path` with an explicit owner and origin, no
    /// questions asked; a non-directory replaces a directory and everything
    /// under it.
    fn insert(
        &mut self,
        path: &str,
        node: Node,
        mode: u16,
        (uid, gid): (u32, u32),
        origin: Origin,
    ) {
        let comps = components(path);
        for n in 1..comps.len() {
            let parent = join(&comps[..n]);
            if !self
                .entries
                .get(&parent)
                .is_some_and(|e| e.node.is_dir_like())
            {
                let dir = PlanEntry {
                    node: Node::Dir,
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    origin,
                };
                self.entries.insert(parent, dir);
            }
        }
        let path = join(&comps);
        if !node.is_dir_like() {
            let prefix = format!("{path}/");
            self.entries.retain(|k, _| !k.starts_with(&prefix));
        }
        let entry = PlanEntry {
            node,
            mode,
            uid,
            gid,
            origin,
        };
        self.entries.insert(path, entry);
    }

    /// Places recipe entry `index` at `path`, or says why not.
    pub fn place(
        &mut self,
        path: &str,
        node: Node,
        mode: u16,
        owner: (u32, u32),
        index: usize,
    ) -> Result<(), Conflict> {
        let comps = components(path);
        for n in 1..comps.len() {
            let parent = join(&comps[..n]);
            if let Some(e) = self.entries.get(&parent) {
                if !e.node.is_dir_like() {
                    return Err(Conflict::UnderFile {
                        parent,
                        origin: e.origin,
                    });
                }
            }
        }
        let path = join(&comps);
        if let Some(e) = self.entries.get(&path) {
            if let Origin::Recipe(earlier) = e.origin {
                if self.put_by(&path, earlier) {
                    return Err(Conflict::SameDest { earlier });
                }
            }
            if e.node.is_dir_like() && !node.is_dir_like() {
                let prefix = format!("{path}/");
                let inside: Vec<(&String, &PlanEntry)> = self
                    .entries
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix))
                    .collect();
                let mut origins: Vec<Origin> = inside.iter().map(|(_, e)| e.origin).collect();
                origins.push(e.origin);
                origins.sort();
                origins.dedup();
                return Err(Conflict::ReplacesDir {
                    lost: inside.iter().take(3).map(|(k, _)| (*k).clone()).collect(),
                    origins,
                });
            }
        }
        self.insert(&path, node, mode, owner, Origin::Recipe(index));
        self.placed.insert(index, path);
        Ok(())
    }

    /// True if recipe entry `index` was placed at `path` itself (not only
    /// as a parent directory it needed).
    fn put_by(&self, path: &str, index: usize) -> bool {
        self.placed.get(&index).is_some_and(|p| p == path)
    }

    /// The entry at `path`.
    pub fn get(&self, path: &str) -> Option<&PlanEntry> {
        self.entries.get(path)
    }

    /// All entries, parents first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &PlanEntry)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// All entries in the order they are written: the standard contents,
    /// then each recipe entry's in recipe order, parents first within each,
    /// so a later recipe entry (and a copied tree) wins where they meet.
    pub fn write_order(&self) -> Vec<(&str, &PlanEntry)> {
        let mut v: Vec<(&str, &PlanEntry)> = self.iter().collect();
        v.sort_by_key(|(k, e)| (e.origin, *k));
        v
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

    fn standard() -> Plan {
        let mut p = Plan::new();
        p.add("/etc/passwd", Node::Bytes(b"root".to_vec()), 0o644);
        p.add("/etc/imgbuild/init.conf", Node::Bytes(vec![]), 0o644);
        p.add("/proc", Node::Dir, 0o555);
        p
    }

    fn text() -> Node {
        Node::Bytes(b"t".to_vec())
    }

    #[test]
    fn a_recipe_may_replace_a_standard_file_and_add_to_directories() {
        let mut p = standard();
        p.place("/etc/passwd", text(), 0o600, (0, 0), 0).unwrap();
        p.place("/etc", Node::Dir, 0o700, (0, 0), 1).unwrap();
        p.place("/etc/motd", text(), 0o644, (0, 0), 2).unwrap();
        assert_eq!(p.get("/etc/passwd").unwrap().origin, Origin::Recipe(0));
        assert_eq!(p.get("/etc").unwrap().mode, 0o700);
        assert!(p.get("/etc/imgbuild/init.conf").is_some());
        // A copied tree merges into an existing directory.
        let tree = Node::HostTree {
            src: "/host/etc".into(),
            file_mode: None,
            dir_mode: None,
        };
        p.place("/etc", tree, 0o755, (0, 0), 3).unwrap_err();
        let mut p = standard();
        let tree = Node::HostTree {
            src: "/host/etc".into(),
            file_mode: None,
            dir_mode: None,
        };
        p.place("/etc", tree, 0o755, (0, 0), 0).unwrap();
        assert!(p.get("/etc/passwd").is_some());
        p.place("/etc/extra", text(), 0o644, (0, 0), 1).unwrap();
    }

    #[test]
    fn what_would_be_lost_is_refused() {
        let mut p = standard();
        // All of /etc (passwd, the init's config) under a file.
        let e = p.place("/etc", text(), 0o644, (0, 0), 0).unwrap_err();
        let Conflict::ReplacesDir { lost, origins } = e else {
            panic!("{e:?}")
        };
        assert_eq!(
            lost,
            ["/etc/imgbuild", "/etc/imgbuild/init.conf", "/etc/passwd"]
        );
        assert_eq!(origins, [Origin::Standard]);
        // An empty standard directory the init mounts over.
        assert!(matches!(
            p.place("/proc", text(), 0o644, (0, 0), 0),
            Err(Conflict::ReplacesDir { .. })
        ));
        // A directory an earlier entry made, with what it put in it.
        p.place("/etc/motd/x", text(), 0o644, (0, 0), 0).unwrap();
        let e = p.place("/etc/motd", text(), 0o644, (0, 0), 1).unwrap_err();
        assert_eq!(
            e,
            Conflict::ReplacesDir {
                lost: vec!["/etc/motd/x".into()],
                origins: vec![Origin::Recipe(0)]
            }
        );
        // The same destination twice.
        p.place("/srv/a", text(), 0o644, (0, 0), 2).unwrap();
        assert_eq!(
            p.place("/srv/a", text(), 0o644, (0, 0), 3),
            Err(Conflict::SameDest { earlier: 2 })
        );
        // Under a file: a standard one, or a recipe's.
        assert_eq!(
            p.place("/etc/passwd/x", text(), 0o644, (0, 0), 4),
            Err(Conflict::UnderFile {
                parent: "/etc/passwd".into(),
                origin: Origin::Standard
            })
        );
        assert_eq!(
            p.place("/srv/a/b", text(), 0o644, (0, 0), 4),
            Err(Conflict::UnderFile {
                parent: "/srv/a".into(),
                origin: Origin::Recipe(2)
            })
        );
    }

    #[test]
    fn write_order_is_standard_then_recipe_order() {
        let mut p = standard();
        p.place("/zz", text(), 0o644, (0, 0), 0).unwrap();
        p.place("/aa/b", text(), 0o644, (0, 0), 1).unwrap();
        p.place("/etc/passwd", text(), 0o644, (0, 0), 2).unwrap();
        let order: Vec<&str> = p.write_order().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            order,
            [
                "/etc",
                "/etc/imgbuild",
                "/etc/imgbuild/init.conf",
                "/proc",
                "/zz",
                "/aa",
                "/aa/b",
                "/etc/passwd"
            ]
        );
    }
}
