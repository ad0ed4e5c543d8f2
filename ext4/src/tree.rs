//! The in-memory plan: a tree of entries with metadata, no file contents.

use std::collections::BTreeMap;

use crate::error::Error;
use crate::options::{EntryKind, FileData, Metadata, Timestamp};

/// Index of a node in [`Tree::nodes`].
pub(crate) type NodeId = usize;

/// Host facts about a source file, gathered when it was added.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SourceStat {
    pub size: u64,
    /// Bytes allocated on the host (st_blocks * 512); less than size hints at holes.
    pub allocated: u64,
}

/// What a node is.
#[derive(Debug)]
pub(crate) enum NodeKind {
    File {
        data: FileData,
        stat: Option<SourceStat>,
    },
    Dir {
        children: BTreeMap<Box<[u8]>, NodeId>,
    },
    Symlink(Vec<u8>),
    CharDev {
        major: u32,
        minor: u32,
    },
    BlockDev {
        major: u32,
        minor: u32,
    },
    Fifo,
    Socket,
}

/// One inode-to-be.
#[derive(Debug)]
pub(crate) struct Node {
    pub kind: NodeKind,
    pub meta: Metadata,
    /// First parent and name, for error messages.
    pub parent: NodeId,
    pub name: Box<[u8]>,
}

/// The whole plan. Node 0 is the root directory.
#[derive(Debug)]
pub(crate) struct Tree {
    pub nodes: Vec<Node>,
    pub default_time: Timestamp,
}

pub(crate) const ROOT: NodeId = 0;

impl Tree {
    pub fn new(ts: Timestamp) -> Self {
        let root = Node {
            kind: NodeKind::Dir {
                children: BTreeMap::new(),
            },
            meta: Metadata::new(0o755, ts),
            parent: ROOT,
            name: Box::default(),
        };
        Tree {
            nodes: vec![root],
            default_time: ts,
        }
    }

    /// The image path of a node, for messages.
    pub fn path_of(&self, mut id: NodeId) -> String {
        let mut parts: Vec<&[u8]> = Vec::new();
        while id != ROOT {
            parts.push(&self.nodes[id].name);
            id = self.nodes[id].parent;
        }
        let mut s = String::new();
        for p in parts.iter().rev() {
            s.push('/');
            s.push_str(&String::from_utf8_lossy(p));
        }
        if s.is_empty() {
            s.push('/');
        }
        s
    }

    pub fn children(&self, id: NodeId) -> Option<&BTreeMap<Box<[u8]>, NodeId>> {
        match &self.nodes[id].kind {
            NodeKind::Dir { children } => Some(children),
            _ => None,
        }
    }

    fn children_mut(&mut self, id: NodeId) -> Option<&mut BTreeMap<Box<[u8]>, NodeId>> {
        match &mut self.nodes[id].kind {
            NodeKind::Dir { children } => Some(children),
            _ => None,
        }
    }

    /// Splits and validates an absolute image path.
    pub fn components(path: &str) -> Result<Vec<&[u8]>, Error> {
        let bad = |reason| Error::InvalidPath {
            path: path.to_owned(),
            reason,
        };
        if !path.starts_with('/') {
            return Err(bad("must be absolute"));
        }
        if path.contains('\0') {
            return Err(bad("contains a NUL byte"));
        }
        let mut out = Vec::new();
        for c in path.split('/').filter(|c| !c.is_empty()) {
            if c == "." || c == ".." {
                return Err(bad("contains . or .."));
            }
            if c.len() > 255 {
                return Err(Error::NameTooLong {
                    path: path.to_owned(),
                    len: c.len(),
                });
            }
            out.push(c.as_bytes());
        }
        Ok(out)
    }

    /// Finds a node by absolute path.
    pub fn lookup(&self, path: &str) -> Result<Option<NodeId>, Error> {
        let mut cur = ROOT;
        for c in Self::components(path)? {
            match self.children(cur).and_then(|ch| ch.get(c)) {
                Some(&id) => cur = id,
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    /// Returns the directory at `parts`, creating missing ones 0755 root:root;
    /// symlinks to directories on the way are followed.
    fn ensure_dir(&mut self, full: &str, parts: &[&[u8]]) -> Result<NodeId, Error> {
        let mut hops = 0;
        match self.walk_dirs(ROOT, parts, true, &mut hops) {
            Ok(Some(id)) => Ok(id),
            Ok(None) => Err(Error::InvalidPath {
                path: full.to_owned(),
                reason: "a parent is not a directory",
            }),
            Err(reason) => Err(Error::InvalidPath {
                path: full.to_owned(),
                reason,
            }),
        }
    }

    /// Follows `comps` (`.` and `..` allowed) from directory `start`, as the kernel
    /// would: a symlink on the way is followed (40 at most) and must lead to a
    /// directory; a missing directory is created (0755 root:root, the default
    /// time) when `create`, else the answer is `None`.
    pub fn walk_dirs(
        &mut self,
        start: NodeId,
        comps: &[&[u8]],
        create: bool,
        hops: &mut u32,
    ) -> Result<Option<NodeId>, &'static str> {
        let mut cur = start;
        for c in comps {
            match *c {
                b"" | b"." => continue,
                b".." => {
                    cur = self.nodes[cur].parent;
                    continue;
                }
                _ => {}
            }
            let existing = match self.children(cur) {
                Some(ch) => ch.get(*c).copied(),
                None => return Err("a parent is not a directory"),
            };
            let Some(id) = existing else {
                if !create {
                    return Ok(None);
                }
                let meta = Metadata::new(0o755, self.default_time);
                let kind = NodeKind::Dir {
                    children: BTreeMap::new(),
                };
                cur = self.insert_child(cur, c, kind, meta);
                continue;
            };
            cur = match &self.nodes[id].kind {
                NodeKind::Dir { .. } => id,
                NodeKind::Symlink(t) => {
                    *hops += 1;
                    if *hops > 40 {
                        return Err("too many levels of symbolic links");
                    }
                    let t = t.clone();
                    let from = if t.starts_with(b"/") { ROOT } else { cur };
                    let tc: Vec<&[u8]> = t.split(|&b| b == b'/').collect();
                    match self.walk_dirs(from, &tc, false, hops)? {
                        Some(d) => d,
                        None => return Err("a parent is a symlink to nothing in the image"),
                    }
                }
                _ => return Err("a parent is not a directory"),
            };
        }
        if self.children(cur).is_none() {
            return Err("a parent is not a directory");
        }
        Ok(Some(cur))
    }

    /// The directory a symlink node leads to, if it leads to one.
    pub fn symlink_dir(&mut self, parent: NodeId, id: NodeId) -> Option<NodeId> {
        let NodeKind::Symlink(t) = &self.nodes[id].kind else {
            return None;
        };
        let t = t.clone();
        let from = if t.starts_with(b"/") { ROOT } else { parent };
        let tc: Vec<&[u8]> = t.split(|&b| b == b'/').collect();
        self.walk_dirs(from, &tc, false, &mut 1).ok().flatten()
    }

    /// Adds `name` under directory `parent`, merging into an existing directory.
    pub fn upsert(
        &mut self,
        parent: NodeId,
        name: &[u8],
        kind: NodeKind,
        meta: Metadata,
    ) -> NodeId {
        if matches!(kind, NodeKind::Dir { .. }) {
            if let Some(&id) = self.children(parent).and_then(|c| c.get(name)) {
                if matches!(self.nodes[id].kind, NodeKind::Dir { .. }) {
                    self.nodes[id].meta = meta;
                    return id;
                }
            }
        }
        self.insert_child(parent, name, kind, meta)
    }

    /// Adds another name for an existing non-directory node.
    pub fn link(&mut self, parent: NodeId, name: &[u8], target: NodeId) {
        if let Some(ch) = self.children_mut(parent) {
            ch.insert(name.into(), target);
        }
    }

    fn insert_child(
        &mut self,
        parent: NodeId,
        name: &[u8],
        kind: NodeKind,
        meta: Metadata,
    ) -> NodeId {
        let id = self.nodes.len();
        self.nodes.push(Node {
            kind,
            meta,
            parent,
            name: name.into(),
        });
        if let Some(ch) = self.children_mut(parent) {
            ch.insert(name.into(), id);
        }
        id
    }

    /// Adds or replaces one entry. Returns its node.
    pub fn add(&mut self, path: &str, kind: EntryKind, meta: Metadata) -> Result<NodeId, Error> {
        let parts = Self::components(path)?;
        let Some((name, dirs)) = parts.split_last() else {
            // The root itself: only a directory can go there.
            return match kind {
                EntryKind::Dir => {
                    self.nodes[ROOT].meta = meta;
                    Ok(ROOT)
                }
                _ => Err(Error::InvalidPath {
                    path: path.to_owned(),
                    reason: "the root must be a directory",
                }),
            };
        };
        for (xname, _) in &meta.xattrs {
            crate::xattr::split_name(xname).ok_or_else(|| Error::BadXattr {
                path: path.to_owned(),
                name: xname.clone(),
                reason: "unknown namespace prefix or name too long",
            })?;
        }
        let parent = self.ensure_dir(path, dirs)?;
        let existing = self.children(parent).and_then(|c| c.get(*name)).copied();
        let node_kind = match kind {
            EntryKind::Dir => {
                if let Some(id) = existing {
                    if matches!(self.nodes[id].kind, NodeKind::Dir { .. }) {
                        self.nodes[id].meta = meta;
                        return Ok(id);
                    }
                    // A symlink to a directory stays (as dpkg and `tar
                    // --keep-directory-symlink` keep it); the directory gets the metadata.
                    if let Some(dir) = self.symlink_dir(parent, id) {
                        if dir != ROOT {
                            self.nodes[dir].meta = meta;
                        }
                        return Ok(dir);
                    }
                }
                NodeKind::Dir {
                    children: BTreeMap::new(),
                }
            }
            EntryKind::File(data) => NodeKind::File { data, stat: None },
            EntryKind::Symlink(target) => {
                let bytes = std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str()).to_vec();
                if bytes.is_empty() {
                    return Err(Error::InvalidPath {
                        path: path.to_owned(),
                        reason: "empty symlink target",
                    });
                }
                NodeKind::Symlink(bytes)
            }
            EntryKind::HardLink(target) => {
                let bad = |reason| Error::BadHardLink {
                    path: path.to_owned(),
                    target: target.clone(),
                    reason,
                };
                let id = self
                    .lookup(&target)?
                    .ok_or_else(|| bad("target does not exist"))?;
                if matches!(self.nodes[id].kind, NodeKind::Dir { .. }) {
                    return Err(bad("target is a directory"));
                }
                if let Some(ch) = self.children_mut(parent) {
                    ch.insert((*name).into(), id);
                }
                return Ok(id);
            }
            EntryKind::CharDev { major, minor } => NodeKind::CharDev { major, minor },
            EntryKind::BlockDev { major, minor } => NodeKind::BlockDev { major, minor },
            EntryKind::Fifo => NodeKind::Fifo,
            EntryKind::Socket => NodeKind::Socket,
        };
        Ok(self.insert_child(parent, name, node_kind, meta))
    }

    /// Records a host stat for a file node (used by add_tree).
    pub fn set_stat(&mut self, id: NodeId, st: SourceStat) {
        if let NodeKind::File { stat, .. } = &mut self.nodes[id].kind {
            *stat = Some(st);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_parents_and_replaces_files() {
        let ts = Timestamp::from_secs(5);
        let mut t = Tree::new(ts);
        let f = t
            .add(
                "/a/b/c",
                EntryKind::File(FileData::Bytes(vec![1])),
                Metadata::new(0o644, ts),
            )
            .unwrap();
        assert_eq!(t.path_of(f), "/a/b/c");
        let g = t
            .add("/a/b/c", EntryKind::Fifo, Metadata::new(0o600, ts))
            .unwrap();
        assert_ne!(f, g);
        assert_eq!(t.lookup("/a/b/c").unwrap(), Some(g));
        let h = t
            .add(
                "/h",
                EntryKind::HardLink("/a/b/c".into()),
                Metadata::new(0, ts),
            )
            .unwrap();
        assert_eq!(h, g);
        assert!(
            t.add("/x", EntryKind::HardLink("/a".into()), Metadata::new(0, ts))
                .is_err()
        );
        assert!(
            t.add("/a/b/c/d", EntryKind::Dir, Metadata::new(0, ts))
                .is_err()
        );
        assert!(matches!(
            Tree::components(&format!("/{}", "n".repeat(256))),
            Err(Error::NameTooLong { .. })
        ));
        assert!(Tree::components("rel").is_err());
    }
}
