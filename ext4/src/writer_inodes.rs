//! Per-inode output: contents (file data, directory blocks, symlink targets, extent
//! tree and xattr blocks) and the inode tables, in inode-number order.

use crate::data::Copier;
use crate::dir_entry::{self, DirBlockWriter};
use crate::error::Error;
use crate::extent::{self, Extent};
use crate::htree::{self, HashedEntry};
use crate::inode::{EXT4_EXTENTS_FL, EXT4_INDEX_FL, INODE_SIZE, Inode, encode_dev, inode_seed};
use crate::layout::Layout;
use crate::mode::{S_IFREG, type_bits};
use crate::options::{FileData, Timestamp};
use crate::out::Out;
use crate::plan::hashed_children;
use crate::plan::{Placed, Scan, Slot};
use crate::report::Progress;
use crate::tree::{NodeId, NodeKind, ROOT, Tree};
use crate::units::{BlockNo, InodeNo};
use crate::xattr;

/// Everything needed to write inodes.
pub(crate) struct Ctx<'a> {
    pub tree: &'a Tree,
    pub scan: &'a Scan,
    pub placed: &'a [Placed],
    pub out: &'a Out,
    pub csum_seed: u32,
    pub ts: Timestamp,
    pub uuid: [u8; 16],
    pub hash_seed: [u8; 16],
}

/// Facts gathered while writing inodes that the group descriptors and superblock need.
#[derive(Debug)]
pub(crate) struct Written {
    pub dirs_per_group: Vec<u32>,
    pub jnl_blocks: [u32; 17],
}

/// Physical block of logical block `lblk` in `extents`.
fn physical(extents: &[Extent], lblk: u64) -> Option<BlockNo> {
    extents.iter().find_map(|x| {
        let s = u64::from(x.ee_block);
        (lblk >= s && lblk < s + u64::from(x.ee_len)).then(|| x.start.plus(lblk - s))
    })
}

fn file_type(kind: &NodeKind) -> u8 {
    match kind {
        NodeKind::File { .. } => dir_entry::FT_REG_FILE,
        NodeKind::Dir { .. } => dir_entry::FT_DIR,
        NodeKind::Symlink(_) => dir_entry::FT_SYMLINK,
        NodeKind::CharDev { .. } => dir_entry::FT_CHRDEV,
        NodeKind::BlockDev { .. } => dir_entry::FT_BLKDEV,
        NodeKind::Fifo => dir_entry::FT_FIFO,
        NodeKind::Socket => dir_entry::FT_SOCK,
    }
}

impl Ctx<'_> {
    /// Writes every inode's contents and the inode tables, telling `progress`
    /// after each inode how many bytes of contents are written.
    pub fn write_all(
        &self,
        layout: &Layout,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Written, Error> {
        let bytes_total = self.scan.inodes.iter().map(|i| i.size).sum();
        let mut bytes_done = 0u64;
        let geo = &layout.geo;
        let bs = geo.block_size;
        let ipg = geo.inodes_per_group as usize;
        let mut table = vec![0u8; ipg * INODE_SIZE];
        let mut table_used = 0usize;
        let mut group = 0u32;
        let mut written = Written {
            dirs_per_group: vec![0; geo.groups as usize],
            jnl_blocks: [0; 17],
        };
        let mut copier = Copier::new();
        let flush = |g: u32, table: &mut Vec<u8>, used: usize| -> Result<(), Error> {
            if used > 0 {
                let bytes = (used * INODE_SIZE).div_ceil(bs as usize) * bs as usize;
                self.out
                    .block(layout.inode_table[g as usize], &table[..bytes])?;
                table.fill(0);
            }
            Ok(())
        };
        for (i, info) in self.scan.inodes.iter().enumerate() {
            let ino = InodeNo(i as u32 + 1);
            let g = (i / ipg) as u32;
            if g != group {
                flush(group, &mut table, table_used)?;
                group = g;
                table_used = 0;
            }
            let p = &self.placed[i];
            let raw = match info.slot {
                Slot::Reserved if ino == InodeNo::RESIZE => self.resize_inode(layout)?,
                Slot::Reserved => None,
                Slot::Journal if p.extents.is_empty() => None,
                Slot::Journal => Some(self.journal_inode(ino, p, &mut written)?),
                Slot::Node(id) => Some(self.node_inode(ino, id, p, &mut copier)?),
            };
            if info.slot.is_dir(self.tree) {
                written.dirs_per_group[g as usize] += 1;
            }
            if let Some(raw) = raw {
                let off = (i % ipg) * INODE_SIZE;
                table[off..off + INODE_SIZE].copy_from_slice(&raw);
                table_used = i % ipg + 1;
            }
            bytes_done += info.size;
            progress(Progress {
                bytes_done,
                bytes_total,
            });
        }
        flush(group, &mut table, table_used)?;
        Ok(written)
    }

    /// The resize inode, its double-indirect block and the primary reserved
    /// GDT blocks written, if the layout has one.
    fn resize_inode(&self, layout: &Layout) -> Result<Option<[u8; INODE_SIZE]>, Error> {
        let Some(dind) = layout.resize_dind else {
            return Ok(None);
        };
        let r = crate::resize_inode::build(&layout.geo, dind, self.ts);
        for (b, bytes) in &r.blocks {
            self.out.block(*b, bytes)?;
        }
        Ok(Some(r.inode.to_bytes(InodeNo::RESIZE, self.csum_seed)))
    }

    /// Builds the extent tree, writes its blocks, returns `i_block`.
    fn extents(&self, ino: InodeNo, p: &Placed) -> Result<[u8; 60], Error> {
        let seed = inode_seed(ino, self.csum_seed);
        let t = extent::build(&p.extents, &p.tree_blocks, self.out.bs, seed);
        for (b, bytes) in &t.blocks {
            self.out.block(*b, bytes)?;
        }
        Ok(t.i_block)
    }

    fn journal_inode(
        &self,
        ino: InodeNo,
        p: &Placed,
        w: &mut Written,
    ) -> Result<[u8; INODE_SIZE], Error> {
        let bs = self.out.bs;
        let blocks: u64 = p.extents.iter().map(|x| u64::from(x.ee_len)).sum();
        let first = p.extents.first().map(|x| x.start).unwrap_or_default();
        self.out.block(
            first,
            &crate::journal::superblock(bs, blocks as u32, &self.uuid),
        )?;
        let i_block = self.extents(ino, p)?;
        let size = blocks * u64::from(bs);
        for (k, word) in i_block.chunks(4).enumerate() {
            w.jnl_blocks[k] = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        }
        w.jnl_blocks[15] = (size >> 32) as u32;
        w.jnl_blocks[16] = (size & 0xFFFF_FFFF) as u32;
        let inode = Inode {
            i_mode: S_IFREG | 0o600,
            i_size: size,
            i_atime: self.ts,
            i_ctime: self.ts,
            i_mtime: self.ts,
            i_crtime: self.ts,
            i_links_count: 1,
            i_blocks: p.block_count() * u64::from(bs) / 512,
            i_flags: EXT4_EXTENTS_FL,
            i_block,
            ..Default::default()
        };
        Ok(inode.to_bytes(ino, self.csum_seed))
    }

    /// Writes a directory's entry blocks (linear, or hashed when planned so).
    fn dir_blocks(&self, ino: InodeNo, id: NodeId, p: &Placed) -> Result<(), Error> {
        let bs = self.out.bs;
        let seed = inode_seed(ino, self.csum_seed);
        let parent = if id == ROOT {
            InodeNo::ROOT
        } else {
            self.scan.ino_of[self.tree.nodes[id].parent]
        };
        let mut data: Vec<u8> = Vec::new();
        if self.scan.info(ino).htree {
            let sorted = hashed_children(self.tree, id, &self.hash_seed);
            let keys: Vec<(u32, usize)> = sorted.iter().map(|e| (e.0, e.1.len())).collect();
            let shape = htree::shape(&keys, bs).expect("planned as indexable");
            let entries: Vec<HashedEntry<'_>> = sorted
                .iter()
                .map(|&(hash, name, c)| HashedEntry {
                    hash,
                    name,
                    inode: self.scan.ino_of[c],
                    file_type: file_type(&self.tree.nodes[c].kind),
                })
                .collect();
            data = htree::write(&entries, &shape, ino, parent, bs, seed);
            return self.write_dir_data(p, &data);
        }
        let ch = self.tree.children(id).map(|c| c.iter());
        let mut emit = |b: &[u8]| data.extend_from_slice(b);
        let mut w = DirBlockWriter::new(bs, seed);
        w.add(ino, b".", dir_entry::FT_DIR, &mut emit);
        w.add(parent, b"..", dir_entry::FT_DIR, &mut emit);
        for (name, &c) in ch.into_iter().flatten() {
            w.add(
                self.scan.ino_of[c],
                name,
                file_type(&self.tree.nodes[c].kind),
                &mut emit,
            );
        }
        let total: u64 = p.extents.iter().map(|x| u64::from(x.ee_len)).sum();
        let mut n = w.finish(&mut emit) as u64;
        let mut w = DirBlockWriter::new(bs, seed);
        while n < total {
            w.empty_block(&mut emit);
            n += 1;
        }
        self.write_dir_data(p, &data)
    }

    /// Writes directory bytes (whole blocks in logical order) to the dir's extents.
    fn write_dir_data(&self, p: &Placed, data: &[u8]) -> Result<(), Error> {
        let bs = self.out.bs;
        for x in &p.extents {
            let s = u64::from(x.ee_block) * u64::from(bs);
            let e = s + u64::from(x.ee_len) * u64::from(bs);
            self.out.block(x.start, &data[s as usize..e as usize])?;
        }
        Ok(())
    }

    fn node_inode(
        &self,
        ino: InodeNo,
        id: NodeId,
        p: &Placed,
        copier: &mut Copier,
    ) -> Result<[u8; INODE_SIZE], Error> {
        let node = &self.tree.nodes[id];
        let info = self.scan.info(ino);
        let bs = self.out.bs;
        let mut flags = 0;
        let i_block = match &node.kind {
            NodeKind::Dir { .. } => {
                self.dir_blocks(ino, id, p)?;
                flags |= EXT4_EXTENTS_FL;
                if info.htree {
                    flags |= EXT4_INDEX_FL;
                }
                self.extents(ino, p)?
            }
            NodeKind::File { data, .. } => {
                match data {
                    FileData::Bytes(b) => {
                        for x in &p.extents {
                            let s = (u64::from(x.ee_block) * u64::from(bs)) as usize;
                            let e = (s + usize::from(x.ee_len) * bs as usize).min(b.len());
                            self.out.block(x.start, &b[s..e])?;
                        }
                    }
                    FileData::Path(path) => {
                        copier.copy_file(
                            path,
                            info.size,
                            &p.extents,
                            bs,
                            &self.out.file,
                            &self.out.path,
                        )?;
                    }
                    FileData::Region(r) => {
                        copier.copy_region(r, &p.extents, bs, &self.out.file, &self.out.path)?;
                    }
                }
                flags |= EXT4_EXTENTS_FL;
                self.extents(ino, p)?
            }
            NodeKind::Symlink(t) if t.len() < 60 => {
                let mut b = [0u8; 60];
                b[..t.len()].copy_from_slice(t);
                b
            }
            NodeKind::Symlink(t) => {
                let blk = physical(&p.extents, 0).unwrap_or_default();
                self.out.block(blk, t)?;
                flags |= EXT4_EXTENTS_FL;
                self.extents(ino, p)?
            }
            NodeKind::CharDev { major, minor } | NodeKind::BlockDev { major, minor } => {
                encode_dev(*major, *minor)
            }
            NodeKind::Fifo | NodeKind::Socket => [0u8; 60],
        };
        let attrs = xattr::prepare(&node.meta.xattrs);
        let (ibody, rest) = xattr::split_ibody(attrs);
        if let (Some(b), Some(k)) = (p.xattr_block, info.xattr_block) {
            // Written once, by its first user, for all of them.
            let shared = self.scan.xattr_blocks[k];
            if shared.first == ino {
                let bytes = xattr::block_bytes(&rest, bs, b, self.csum_seed, shared.refcount);
                self.out.block(b, &bytes)?;
            }
        }
        let m = &node.meta;
        let inode = Inode {
            i_mode: type_bits(&node.kind) | (m.mode & 0o7777),
            i_uid: m.uid,
            i_gid: m.gid,
            i_size: info.size,
            i_atime: m.atime,
            i_ctime: m.ctime,
            i_mtime: m.mtime,
            i_crtime: m.crtime,
            i_links_count: info.links.min(65000) as u16,
            i_blocks: p.block_count() * u64::from(bs) / 512,
            i_flags: flags,
            i_block,
            i_file_acl: p.xattr_block.map_or(0, |b| b.0),
            ibody_xattrs: xattr::ibody_bytes(&ibody),
        };
        Ok(inode.to_bytes(ino, self.csum_seed))
    }
}
