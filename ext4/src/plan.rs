//! Planning: inode numbers, link counts, sizes and data ranges (independent of the
//! geometry), then block allocation for a given geometry.

use std::collections::HashMap;

use crate::data::data_block_ranges;
use crate::dir_entry::{DirBlockWriter, rec_len};
use crate::error::Error;
use crate::extent::{EXT_INIT_MAX_LEN, Extent, tree_blocks_needed};
use crate::layout::{Geometry, GeometryError, Layout};
use crate::options::FileData;
use crate::tree::{NodeId, NodeKind, ROOT, SourceStat, Tree};
use crate::units::{BlockNo, InodeNo};
use crate::{htree, xattr};

/// What occupies an inode number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Reserved,
    Journal,
    Node(NodeId),
}

impl Slot {
    /// Whether the slot holds a directory of `tree`.
    pub fn is_dir(self, tree: &Tree) -> bool {
        matches!(self, Slot::Node(id) if matches!(tree.nodes[id].kind, NodeKind::Dir { .. }))
    }
}

/// Geometry-independent facts about one inode.
#[derive(Debug, Clone)]
pub(crate) struct InodeInfo {
    pub slot: Slot,
    pub size: u64,
    pub links: u32,
    /// Logical block ranges `[start, end)` that hold data.
    pub ranges: Vec<(u64, u64)>,
    /// The xattr block holding the attributes that do not fit in the inode
    /// (an index into [`Scan::xattr_blocks`]).
    pub xattr_block: Option<usize>,
    /// A directory written as a hashed (dir_index) tree.
    pub htree: bool,
}

/// Where one inode's blocks went.
#[derive(Debug, Clone, Default)]
pub(crate) struct Placed {
    pub extents: Vec<Extent>,
    pub tree_blocks: Vec<BlockNo>,
    pub xattr_block: Option<BlockNo>,
}

impl Placed {
    /// Blocks charged to the inode (data + tree + xattr).
    pub fn block_count(&self) -> u64 {
        let data: u64 = self.extents.iter().map(|x| u64::from(x.ee_len)).sum();
        data + self.tree_blocks.len() as u64 + u64::from(self.xattr_block.is_some())
    }
}

/// One xattr block, shared by the inodes whose attributes outside the inode
/// are the same, as the kernel shares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct XattrBlock {
    /// The first inode using it (which writes it).
    pub first: InodeNo,
    /// `h_refcount`: inodes using it, at most `EXT4_XATTR_REFCOUNT_MAX`.
    pub refcount: u32,
}

/// The geometry-independent plan.
#[derive(Debug)]
pub(crate) struct Scan {
    pub inodes: Vec<InodeInfo>,
    pub ino_of: Vec<InodeNo>,
    pub xattr_blocks: Vec<XattrBlock>,
}

impl Scan {
    pub fn info(&self, ino: InodeNo) -> &InodeInfo {
        &self.inodes[ino.0 as usize - 1]
    }

    /// Blocks of content (without tree blocks beyond one per big file).
    pub fn content_blocks(&self) -> u64 {
        self.xattr_blocks.len() as u64
            + self
                .inodes
                .iter()
                .map(|i| {
                    let data: u64 = i.ranges.iter().map(|r| r.1 - r.0).sum();
                    let extents: u64 = i
                        .ranges
                        .iter()
                        .map(|r| (r.1 - r.0).div_ceil(u64::from(EXT_INIT_MAX_LEN)) + 1)
                        .sum();
                    data + if extents > 4 { extents / 64 + 2 } else { 0 }
                })
                .sum::<u64>()
    }
}

/// A directory's children sorted by (name hash, name): the order of an htree's leaves.
pub(crate) fn hashed_children<'t>(
    tree: &'t Tree,
    id: NodeId,
    seed: &[u8; 16],
) -> Vec<(u32, &'t [u8], NodeId)> {
    let mut v: Vec<(u32, &[u8], NodeId)> = tree
        .children(id)
        .map(|c| {
            c.iter()
                .map(|(n, &c)| (crate::dx_hash::dx_hash(n, seed), &n[..], c))
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    v
}

/// The htree shape of a directory, if it is worth indexing (more than one block).
pub(crate) fn htree_shape(
    tree: &Tree,
    id: NodeId,
    seed: &[u8; 16],
    block_size: u32,
) -> Option<htree::Shape> {
    let v = hashed_children(tree, id, seed);
    let keys: Vec<(u32, usize)> = v.iter().map(|e| (e.0, e.1.len())).collect();
    htree::shape(&keys, block_size)
}

fn dir_blocks(tree: &Tree, id: NodeId, block_size: u32) -> u64 {
    let mut w = DirBlockWriter::new(block_size, 0);
    let mut sink = |_: &[u8]| {};
    w.add(InodeNo(0), b".", 0, &mut sink);
    w.add(InodeNo(0), b"..", 0, &mut sink);
    if let Some(ch) = tree.children(id) {
        for name in ch.keys() {
            debug_assert!(rec_len(name.len()) <= block_size as usize);
            w.add(InodeNo(0), name, 0, &mut sink);
        }
    }
    w.finish(&mut sink) as u64
}

/// Assigns inode numbers (root 2, journal 8, lost+found 11, then depth-first by name)
/// and computes sizes, link counts and data ranges.
pub(crate) fn scan(
    tree: &mut Tree,
    block_size: u32,
    journal: bool,
    hash_seed: &[u8; 16],
) -> Result<Scan, Error> {
    let bs = u64::from(block_size);
    let lost_found = match tree.children(ROOT).and_then(|c| c.get(&b"lost+found"[..])) {
        Some(&id) if matches!(tree.nodes[id].kind, NodeKind::Dir { .. }) => id,
        _ => {
            return Err(Error::InvalidPath {
                path: "/lost+found".into(),
                reason: "must be a directory",
            });
        }
    };
    let mut ino_of = vec![0u32; tree.nodes.len()];
    let mut links = vec![0u32; tree.nodes.len()];
    let mut order: Vec<NodeId> = Vec::new();
    ino_of[ROOT] = 2;
    ino_of[lost_found] = 11;
    let mut next = 12u32;
    let mut stack = vec![ROOT];
    while let Some(id) = stack.pop() {
        let Some(ch) = tree.children(id) else {
            continue;
        };
        let mut subdirs = 0u32;
        for &c in ch.values() {
            links[c] += 1;
            if ino_of[c] == 0 {
                ino_of[c] = next;
                next = next.checked_add(1).ok_or(Error::TooManyInodes {
                    needed: u64::from(u32::MAX) + 1,
                    max: u64::from(u32::MAX),
                    size_bytes: 0,
                })?;
                order.push(c);
            }
            if matches!(tree.nodes[c].kind, NodeKind::Dir { .. }) {
                subdirs += 1;
            }
        }
        let dir_links = 2 + subdirs;
        links[id] = if dir_links >= 65000 { 1 } else { dir_links };
        for &c in ch.values().rev() {
            if matches!(tree.nodes[c].kind, NodeKind::Dir { .. }) && c != lost_found {
                stack.push(c);
            }
        }
        if id == ROOT {
            stack.push(lost_found);
        }
    }
    let count = next - 1;
    let mut inodes: Vec<InodeInfo> = (1..=count)
        .map(|ino| InodeInfo {
            slot: if ino == 8 && journal {
                Slot::Journal
            } else {
                Slot::Reserved
            },
            size: 0,
            links: 0,
            ranges: Vec::new(),
            xattr_block: None,
            htree: false,
        })
        .collect();
    let mut xattr_blocks = Vec::new();
    let mut shared = SharedXattrs::default();
    let mut nodes_in_order = vec![ROOT, lost_found];
    nodes_in_order.extend(order);
    for id in nodes_in_order {
        let ino = ino_of[id];
        let mut htree = false;
        enum What {
            Dir,
            Bytes(u64),
            Path(std::path::PathBuf, Option<SourceStat>),
            Region(u64, Vec<(u64, u64)>),
            Symlink(usize),
            Other,
        }
        let what = match &tree.nodes[id].kind {
            NodeKind::Dir { .. } => What::Dir,
            NodeKind::File {
                data: FileData::Bytes(b),
                ..
            } => What::Bytes(b.len() as u64),
            NodeKind::File {
                data: FileData::Path(p),
                stat,
            } => What::Path(p.clone(), *stat),
            NodeKind::File {
                data: FileData::Region(r),
                ..
            } => What::Region(r.size(), crate::data::region_block_ranges(r, block_size)),
            NodeKind::Symlink(t) => What::Symlink(t.len()),
            _ => What::Other,
        };
        let (size, ranges) = match what {
            What::Dir => {
                let mut n = dir_blocks(tree, id, block_size);
                if id == lost_found {
                    n = n.max(16384 / bs);
                } else if n > 1 {
                    if let Some(shape) = htree_shape(tree, id, hash_seed, block_size) {
                        n = shape.blocks();
                        htree = true;
                    }
                }
                (n * bs, vec![(0, n)])
            }
            What::Bytes(len) => (
                len,
                if len == 0 {
                    vec![]
                } else {
                    vec![(0, len.div_ceil(bs))]
                },
            ),
            What::Path(p, stat) => {
                let st = match stat {
                    Some(s) => s,
                    None => {
                        let m = crate::data::open_source(&p)?.metadata().map_err(|e| {
                            Error::SourceRead {
                                path: p.clone(),
                                source: e,
                            }
                        })?;
                        if !m.is_file() {
                            return Err(Error::UnsupportedSource { path: p });
                        }
                        let s = SourceStat {
                            size: m.len(),
                            allocated: std::os::unix::fs::MetadataExt::blocks(&m) * 512,
                        };
                        tree.set_stat(id, s);
                        s
                    }
                };
                let ranges = if st.size == 0 {
                    vec![]
                } else if st.allocated < st.size {
                    let f = crate::data::open_source(&p)?;
                    data_block_ranges(&f, &p, st.size, block_size)?
                } else {
                    vec![(0, st.size.div_ceil(bs))]
                };
                (st.size, ranges)
            }
            What::Region(size, ranges) => (size, ranges),
            What::Symlink(len) => {
                if len as u64 >= bs {
                    return Err(Error::SymlinkTooLong {
                        path: tree.path_of(id),
                        len,
                    });
                }
                (len as u64, if len < 60 { vec![] } else { vec![(0, 1)] })
            }
            What::Other => (0, vec![]),
        };
        let path = || tree.path_of(id);
        if ranges.last().is_some_and(|r| r.1 > u64::from(u32::MAX)) {
            return Err(Error::FileTooLarge { path: path() });
        }
        let attrs = xattr::prepare(&tree.nodes[id].meta.xattrs);
        let (_, rest) = xattr::split_ibody(attrs);
        if let Some(a) = xattr::overflowing(&rest, block_size) {
            return Err(Error::BadXattr {
                path: path(),
                name: a.full_name(),
                reason: "the attributes of one entry must fit in its inode and one block",
            });
        }
        let xattr_block =
            (!rest.is_empty()).then(|| shared.share(rest, InodeNo(ino), &mut xattr_blocks));
        let info = &mut inodes[ino as usize - 1];
        info.slot = Slot::Node(id);
        info.size = size;
        info.links = links[id];
        info.ranges = ranges;
        info.xattr_block = xattr_block;
        info.htree = htree;
    }
    let ino_of = ino_of.into_iter().map(InodeNo).collect();
    Ok(Scan {
        inodes,
        ino_of,
        xattr_blocks,
    })
}

/// The xattr block that takes each set of out-of-inode attributes next.
#[derive(Debug, Default)]
struct SharedXattrs {
    open: HashMap<Vec<xattr::Attr>, usize>,
}

impl SharedXattrs {
    /// The block (an index into `blocks`) for `attrs` of inode `ino`: the one
    /// with the same attributes while it has room for another user, else a
    /// new one.
    fn share(
        &mut self,
        attrs: Vec<xattr::Attr>,
        ino: InodeNo,
        blocks: &mut Vec<XattrBlock>,
    ) -> usize {
        if let Some(&k) = self.open.get(&attrs) {
            if blocks[k].refcount < xattr::EXT4_XATTR_REFCOUNT_MAX {
                blocks[k].refcount += 1;
                return k;
            }
        }
        blocks.push(XattrBlock {
            first: ino,
            refcount: 1,
        });
        self.open.insert(attrs, blocks.len() - 1);
        blocks.len() - 1
    }
}

/// Allocates `ranges` (logical) into extents.
fn place_ranges(l: &mut Layout, ranges: &[(u64, u64)], block_size: u32) -> Option<Placed> {
    let mut p = Placed::default();
    for &(s, e) in ranges {
        let mut lblk = s;
        while lblk < e {
            let (start, len) = l.alloc_run((e - lblk).min(u64::from(EXT_INIT_MAX_LEN)))?;
            if len == 0 {
                return None;
            }
            p.extents.push(Extent {
                ee_block: lblk as u32,
                ee_len: len as u16,
                start,
            });
            lblk += len;
        }
    }
    let mut need = tree_blocks_needed(p.extents.len(), block_size) as u64;
    while need > 0 {
        let (start, len) = l.alloc_run(need)?;
        if len == 0 {
            return None;
        }
        p.tree_blocks.extend((0..len).map(|i| start.plus(i)));
        need -= len;
    }
    Some(p)
}

/// Why allocation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AllocError {
    Geometry(GeometryError),
    NoSpace,
}

/// Places all metadata and inode blocks for `geo`.
pub(crate) fn allocate(
    scan: &Scan,
    geo: Geometry,
    journal_blocks: u64,
) -> Result<(Layout, Vec<Placed>), AllocError> {
    let bs = geo.block_size;
    let mut l = Layout::new(geo).map_err(AllocError::Geometry)?;
    let mut placed = Vec::with_capacity(scan.inodes.len());
    let mut xattr_at: Vec<Option<BlockNo>> = vec![None; scan.xattr_blocks.len()];
    for info in &scan.inodes {
        let mut p = match info.slot {
            Slot::Reserved => Placed::default(),
            Slot::Journal if journal_blocks == 0 => Placed::default(),
            Slot::Journal => {
                place_ranges(&mut l, &[(0, journal_blocks)], bs).ok_or(AllocError::NoSpace)?
            }
            Slot::Node(_) => place_ranges(&mut l, &info.ranges, bs).ok_or(AllocError::NoSpace)?,
        };
        if let Some(k) = info.xattr_block {
            // Placed after its first user's data.
            let b = match xattr_at[k] {
                Some(b) => b,
                None => {
                    let (b, n) = l.alloc_run(1).ok_or(AllocError::NoSpace)?;
                    if n == 0 {
                        return Err(AllocError::NoSpace);
                    }
                    xattr_at[k] = Some(b);
                    b
                }
            };
            p.xattr_block = Some(b);
        }
        placed.push(p);
    }
    Ok((l, placed))
}
