//! Geometry (groups, inode counts) and placement of the fixed metadata:
//! superblock/GDT copies in sparse groups, flex_bg-packed bitmaps and inode tables.

use crate::bitmap::BitSet;
use crate::group_desc::DESC_SIZE;
use crate::inode::INODE_SIZE;
use crate::options::InodeSpec;
use crate::superblock::group_has_super;
use crate::units::BlockNo;

/// Groups per flex group (`s_log_groups_per_flex` = 4).
pub(crate) const LOG_GROUPS_PER_FLEX: u8 = 4;
const GROUPS_PER_FLEX: u32 = 1 << LOG_GROUPS_PER_FLEX;
/// mke2fs.conf's size classes (`[fs_types]`, as e2fsprogs ships it): below
/// this many bytes, one inode per that many bytes (`inode_ratio`).
const INODE_RATIOS: [(u64, u64); 4] = [
    (3 << 20, 8192),   // floppy
    (512 << 20, 4096), // small
    (4 << 40, 16384),  // default
    (16 << 40, 32768), // big
];
/// `inode_ratio` of the "huge" class (16 TiB and more).
const HUGE_INODE_RATIO: u64 = 65536;
/// `EXT2_FIRST_INO` + 1: the reserved inodes and one more.
const MIN_INODES: u64 = 12;
/// mke2fs keeps a last group only with this many blocks beyond its metadata.
const MIN_LAST_GROUP_FREE: u64 = 50;

/// Bytes per inode mke2fs picks for a filesystem of `bytes` bytes.
pub(crate) fn default_inode_ratio(bytes: u64) -> u64 {
    INODE_RATIOS
        .iter()
        .find(|&&(below, _)| bytes < below)
        .map_or(HUGE_INODE_RATIO, |&(_, ratio)| ratio)
}

/// The filesystem sizes (in bytes) at which mke2fs's default inode ratio changes.
pub(crate) fn inode_ratio_steps() -> impl Iterator<Item = u64> {
    INODE_RATIOS.iter().map(|&(below, _)| below)
}

/// Why a geometry is impossible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GeometryError {
    /// More inodes than this size can hold.
    Inodes,
    /// Too few blocks to hold even the metadata.
    NoRoom,
    /// More blocks than [`max_blocks`].
    BeyondLimits,
    /// This size cannot be laid out at all (whatever the contents): why.
    Unplaceable(&'static str),
}

/// The GDT blocks mke2fs reserves for `resize_inode`
/// (`calc_reserved_gdt_blocks`): enough descriptor blocks for 1024 times the
/// size, or for 2^32 blocks if less, beyond the `desc_blocks` in use; at
/// most one block of block addresses (the resize inode's double-indirect
/// block lists them).
fn reserved_gdt_blocks(
    blocks: u64,
    first_data_block: u64,
    bpg: u64,
    bs: u64,
    desc_blocks: u64,
) -> u64 {
    let max_blocks = if blocks < u64::from(u32::MAX) / 1024 {
        blocks * 1024
    } else {
        u64::from(u32::MAX)
    };
    let groups = (max_blocks - first_data_block).div_ceil(bpg);
    let per_block = bs / DESC_SIZE as u64;
    groups
        .div_ceil(per_block)
        .saturating_sub(desc_blocks)
        .min(bs / 4)
}

/// The most groups there can be: each has at least one block of inodes (and
/// 8), all of them numbered in 32 bits; and the Linux kernel mounts no more
/// than 2^32 less one block of descriptors (`ext4_fill_super`: "groups
/// count too large").
fn max_groups(block_size: u32) -> u64 {
    let bs = u64::from(block_size);
    let min_ipg = (bs / INODE_SIZE as u64).max(8);
    (u64::from(u32::MAX) / min_ipg).min((1 << 32) - bs / DESC_SIZE as u64)
}

/// The biggest filesystem, in blocks, laid out with `block_size` blocks:
/// as many full groups as the kernel mounts.
pub(crate) fn max_blocks(block_size: u32) -> u64 {
    let first_data_block = u64::from(block_size == 1024);
    first_data_block + max_groups(block_size) * 8 * u64::from(block_size)
}

/// The shape of a filesystem.
#[derive(Debug, Clone)]
pub(crate) struct Geometry {
    pub block_size: u32,
    pub blocks_count: u64,
    pub first_data_block: u64,
    pub blocks_per_group: u32,
    pub groups: u32,
    pub inodes_per_group: u32,
    pub itable_blocks: u32,
    /// Blocks of group descriptors (`desc_blocks`).
    pub gdt_blocks: u32,
    /// `s_reserved_gdt_blocks`: after the descriptors wherever they have a
    /// copy; nonzero exactly when there is a resize inode.
    pub reserved_gdt_blocks: u32,
    /// `meta_bg` (with `s_first_meta_bg` = 0): each block of descriptors
    /// is in the first, second and last group of the groups it describes.
    pub meta_bg: bool,
}

/// What a group holds at its start, before bitmaps and inode tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupHead {
    /// A superblock copy (first).
    pub superblock: bool,
    /// The blocks of the descriptor table copied here (next).
    pub desc_blocks: std::ops::Range<u64>,
    /// Reserved GDT blocks (last).
    pub reserved_gdt_blocks: u64,
}

impl GroupHead {
    /// Blocks in all.
    pub fn len(&self) -> u64 {
        u64::from(self.superblock)
            + (self.desc_blocks.end - self.desc_blocks.start)
            + self.reserved_gdt_blocks
    }
}

impl Geometry {
    /// Computes the geometry mke2fs (`ext2fs_initialize`) gives `blocks_count`
    /// blocks with the inodes of `spec`, holding at least `inodes_needed`
    /// inodes, and `inodes_wanted` when they fit; with the GDT blocks it
    /// reserves for a resize inode when `resize_inode` (`-O resize_inode`,
    /// its default), and `meta_bg` where it switches that on.
    pub fn new(
        block_size: u32,
        blocks_count: u64,
        spec: InodeSpec,
        inodes_needed: u64,
        inodes_wanted: u64,
        resize_inode: bool,
    ) -> Result<Self, GeometryError> {
        let bs = u64::from(block_size);
        let first_data_block = u64::from(block_size == 1024);
        if blocks_count > max_blocks(block_size) {
            return Err(GeometryError::BeyondLimits);
        }
        if blocks_count < first_data_block + 64 {
            return Err(GeometryError::NoRoom);
        }
        // At most 2^47 blocks of at most 4 KiB: no overflow in bytes.
        let bytes = blocks_count * bs;
        // The count asked for, from the whole size (before a last group is dropped).
        let asked = match spec {
            InodeSpec::Default => bytes / default_inode_ratio(bytes),
            InodeSpec::BytesPerInode(r) => bytes / r.max(1),
            InodeSpec::Count(n) => n,
        };
        let count = asked
            .min(u64::from(u32::MAX))
            .max(MIN_INODES)
            .max(inodes_needed);
        // mke2fs: inode tables as big as the filesystem are refused.
        if count.saturating_mul(INODE_SIZE as u64) >= bytes {
            return Err(GeometryError::Inodes);
        }
        let per_block = bs / INODE_SIZE as u64;
        let align = per_block.max(8);
        // An inode bitmap is one block: at most 8 inodes per byte of it.
        let max_ipg = 8 * bs;
        let mut bpg = 8 * bs;
        let mut blocks = blocks_count;
        // mke2fs (64bit) has no resize inode beyond 2^32 blocks; once it
        // switches to meta_bg it keeps it (and drops the resize inode) as it
        // shrinks the groups or drops the last one.
        let mut resize_inode = resize_inode && blocks_count <= u64::from(u32::MAX);
        let mut meta_bg = false;
        loop {
            let groups = (blocks - first_data_block).div_ceil(bpg);
            if groups == 0 {
                return Err(GeometryError::NoRoom);
            }
            if groups > max_groups(block_size) {
                // Groups made smaller for many inodes, more than the kernel mounts.
                return Err(GeometryError::Inodes);
            }
            let groups32 = groups as u32;
            let gdt_blocks = (groups * DESC_SIZE as u64).div_ceil(bs);
            let mut ipg = count.div_ceil(groups);
            if ipg > max_ipg {
                // More inodes per group than a bitmap holds: smaller groups.
                if bpg < 256 {
                    return Err(GeometryError::Inodes);
                }
                bpg -= 8;
                blocks = blocks_count;
                continue;
            }
            // Whole inode-table blocks, then a multiple of 8 (as mke2fs).
            ipg = (ipg.div_ceil(per_block) * per_block).max(8) & !7;
            // Ours: never fewer than the contents need (that is why `count`
            // is at least that many), and the spare ones asked for when they
            // fit; never more than the 32-bit inode count holds (a big
            // filesystem gets fewer inodes than its ratio asks, as mke2fs).
            let cap = max_ipg.min(u64::from(u32::MAX) / groups) / align * align;
            let rounded = |n: u64| n.div_ceil(groups).div_ceil(align) * align;
            ipg = ipg.max(rounded(inodes_needed));
            ipg = ipg.max(rounded(inodes_wanted).min(cap)).min(cap);
            if ipg * groups < inodes_needed {
                return Err(GeometryError::Inodes);
            }
            let itable_blocks = ipg / per_block;
            let mut rsv = if resize_inode {
                reserved_gdt_blocks(blocks, first_data_block, bpg, bs, gdt_blocks)
            } else {
                0
            };
            // More than 3/4 of a group in descriptors: meta_bg instead.
            if rsv + gdt_blocks > bpg * 3 / 4 {
                meta_bg = true;
                resize_inode = false;
                rsv = 0;
            }
            // A group's metadata must fit in a group (with meta_bg, one
            // descriptor block at most).
            let gdt_in_group = if meta_bg { 1 } else { gdt_blocks };
            if 3 + itable_blocks + rsv + gdt_in_group > bpg {
                return Err(GeometryError::Inodes);
            }
            // A last group too small to be useful is dropped, as mke2fs does
            // (counting all descriptor blocks where there is a superblock
            // backup, even with meta_bg).
            let rem = (blocks - first_data_block) % bpg;
            let mut last_meta = 2 + itable_blocks;
            if group_has_super(groups32 - 1) {
                last_meta += 1 + gdt_blocks + rsv;
            }
            if rem != 0 && groups == 1 && rem < last_meta {
                return Err(GeometryError::NoRoom);
            }
            if rem != 0 && rem < last_meta + MIN_LAST_GROUP_FREE {
                blocks -= rem;
                continue;
            }
            return Ok(Geometry {
                block_size,
                blocks_count: blocks,
                first_data_block,
                blocks_per_group: bpg as u32,
                groups: groups32,
                inodes_per_group: ipg as u32,
                itable_blocks: itable_blocks as u32,
                gdt_blocks: gdt_blocks as u32,
                reserved_gdt_blocks: rsv as u32,
                meta_bg,
            });
        }
    }

    pub fn group_start(&self, g: u32) -> u64 {
        self.first_data_block + u64::from(g) * u64::from(self.blocks_per_group)
    }

    /// One past the group's last block.
    pub fn group_end(&self, g: u32) -> u64 {
        (self.group_start(g) + u64::from(self.blocks_per_group)).min(self.blocks_count)
    }

    pub fn inodes_count(&self) -> u64 {
        u64::from(self.inodes_per_group) * u64::from(self.groups)
    }

    /// Descriptors per block: also the groups of a meta group.
    pub fn descs_per_block(&self) -> u32 {
        self.block_size / DESC_SIZE as u32
    }

    /// What group `g` holds before its bitmaps (`ext2fs_super_and_bgd_loc2`):
    /// without meta_bg, a group with a superblock copy has the whole table
    /// and the reserved GDT blocks; with meta_bg, the first, second and last
    /// group of each meta group have its one block of descriptors.
    pub fn head(&self, g: u32) -> GroupHead {
        let superblock = group_has_super(g);
        let per_meta = self.descs_per_block();
        let (desc_blocks, reserved_gdt_blocks) = if !self.meta_bg {
            if superblock {
                (
                    0..u64::from(self.gdt_blocks),
                    u64::from(self.reserved_gdt_blocks),
                )
            } else {
                (0..0, 0)
            }
        } else if matches!(g % per_meta, 0 | 1) || g % per_meta == per_meta - 1 {
            let m = u64::from(g / per_meta);
            (m..m + 1, 0)
        } else {
            (0..0, 0)
        };
        GroupHead {
            superblock,
            desc_blocks,
            reserved_gdt_blocks,
        }
    }
}

/// Block-level placement: which blocks hold metadata, plus a bump allocator for the rest.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub geo: Geometry,
    pub used: BitSet,
    pub block_bitmap: Vec<BlockNo>,
    pub inode_bitmap: Vec<BlockNo>,
    pub inode_table: Vec<BlockNo>,
    /// The resize inode's double-indirect block (with reserved GDT blocks).
    pub resize_dind: Option<BlockNo>,
    cursor: u64,
}

impl Layout {
    /// Places superblock copies, GDTs, reserved GDT blocks, bitmaps, inode
    /// tables and the resize inode's double-indirect block.
    pub fn new(geo: Geometry) -> Result<Self, GeometryError> {
        let mut used = BitSet::new(geo.blocks_count);
        for b in 0..geo.first_data_block {
            used.set(b);
        }
        for g in 0..geo.groups {
            let s = geo.group_start(g);
            let end = s + geo.head(g).len();
            if end > geo.group_end(g) {
                return Err(GeometryError::Unplaceable(
                    "the superblock and group descriptors do not fit in a group",
                ));
            }
            for b in s..end {
                used.set(b);
            }
        }
        let n = geo.groups as usize;
        let mut l = Layout {
            geo,
            used,
            block_bitmap: vec![BlockNo(0); n],
            inode_bitmap: vec![BlockNo(0); n],
            inode_table: vec![BlockNo(0); n],
            resize_dind: None,
            cursor: 0,
        };
        let mut flex = 0;
        while flex < l.geo.groups {
            let members = flex..(flex + GROUPS_PER_FLEX).min(l.geo.groups);
            l.cursor = l.geo.group_start(flex);
            for g in members.clone() {
                l.block_bitmap[g as usize] = l.alloc_one().ok_or(GeometryError::NoRoom)?;
            }
            for g in members.clone() {
                l.inode_bitmap[g as usize] = l.alloc_one().ok_or(GeometryError::NoRoom)?;
            }
            for g in members {
                let n = u64::from(l.geo.itable_blocks);
                l.inode_table[g as usize] = l.alloc_contiguous(n).ok_or(GeometryError::NoRoom)?;
            }
            flex += GROUPS_PER_FLEX;
        }
        l.cursor = 0;
        if l.geo.reserved_gdt_blocks > 0 {
            // The first block after group 0's metadata (mke2fs: after the
            // root's and lost+found's blocks).
            l.resize_dind = Some(l.alloc_one().ok_or(GeometryError::NoRoom)?);
        }
        Ok(l)
    }

    fn alloc_one(&mut self) -> Option<BlockNo> {
        let b = self.used.next_clear(self.cursor)?;
        self.used.set(b);
        self.cursor = b + 1;
        Some(BlockNo(b))
    }

    fn alloc_contiguous(&mut self, n: u64) -> Option<BlockNo> {
        let mut start = self.used.next_clear(self.cursor)?;
        loop {
            let end = start.checked_add(n)?;
            if end > self.used.len() {
                return None;
            }
            match (start..end).find(|&b| self.used.get(b)) {
                None => break,
                Some(busy) => start = self.used.next_clear(busy)?,
            }
        }
        for b in start..start + n {
            self.used.set(b);
        }
        self.cursor = start + n;
        Some(BlockNo(start))
    }

    /// Allocates up to `max` contiguous free blocks at the cursor: `(start, len)`.
    pub fn alloc_run(&mut self, max: u64) -> Option<(BlockNo, u64)> {
        let start = self.used.next_clear(self.cursor)?;
        let mut len = 0;
        while len < max && start + len < self.used.len() && !self.used.get(start + len) {
            self.used.set(start + len);
            len += 1;
        }
        self.cursor = start + len;
        Some((BlockNo(start), len))
    }

    /// Free blocks left.
    pub fn free_blocks(&self) -> u64 {
        self.geo.blocks_count - self.used.count_ones(0, self.geo.blocks_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: InodeSpec = InodeSpec::Default;

    #[test]
    fn geometry_like_mke2fs() {
        // 64 MiB with 1 KiB blocks: 8 groups of 8192 from block 1, one inode
        // per 4096 bytes (mke2fs.conf's "small").
        let g = Geometry::new(1024, 65536, D, 0, 0, true).unwrap();
        assert_eq!(g.first_data_block, 1);
        assert_eq!(g.groups, 8);
        assert_eq!(g.gdt_blocks, 1);
        assert_eq!(g.inodes_per_group, 2048);
        assert_eq!(g.reserved_gdt_blocks, 256);
        let l = Layout::new(g).unwrap();
        // Group 0 (dumpe2fs of mke2fs's): block 1 superblock, 2 GDT, 3-258
        // reserved GDT, then 8 block bitmaps, 8 inode bitmaps, tables.
        assert_eq!(l.block_bitmap[0], BlockNo(259));
        assert_eq!(l.inode_bitmap[0], BlockNo(267));
        assert_eq!(l.inode_table[0], BlockNo(275));
        assert_eq!(l.inode_table[1], BlockNo(275 + 512));
        assert_eq!(l.resize_dind, Some(BlockNo(275 + 8 * 512)));
        // Without resize_inode: no reserved blocks, bitmaps from block 3.
        let g = Geometry::new(1024, 65536, D, 0, 0, false).unwrap();
        assert_eq!(g.reserved_gdt_blocks, 0);
        let l = Layout::new(g).unwrap();
        assert_eq!(l.block_bitmap[0], BlockNo(3));
        assert_eq!(l.inode_table[0], BlockNo(19));
        assert_eq!(l.resize_dind, None);
        assert!(Geometry::new(1024, 2048, D, 100_000, 0, true).is_err());
    }

    #[test]
    fn inode_ratio_by_size_class() {
        assert_eq!(default_inode_ratio((3 << 20) - 1), 8192);
        assert_eq!(default_inode_ratio(3 << 20), 4096);
        assert_eq!(default_inode_ratio(512 << 20), 16384);
        assert_eq!(default_inode_ratio(4 << 40), 32768);
        assert_eq!(default_inode_ratio(16 << 40), 65536);
        // 2 MiB ("floppy") and 1 GiB ("default"), 4 KiB blocks.
        assert_eq!(
            Geometry::new(4096, 512, D, 0, 0, true)
                .unwrap()
                .inodes_count(),
            256
        );
        assert_eq!(
            Geometry::new(4096, 1 << 18, D, 0, 0, true)
                .unwrap()
                .inodes_count(),
            65536
        );
    }

    #[test]
    fn many_inodes_make_smaller_groups_like_mke2fs() {
        // mke2fs -b 4096 -N 100000 on 64 MiB: 4 groups of 4904 blocks.
        let g = Geometry::new(4096, 16384, InodeSpec::Count(100_000), 0, 0, true).unwrap();
        assert_eq!((g.blocks_per_group, g.groups), (4904, 4));
        assert_eq!(g.inodes_per_group, 25008);
        // More inodes than blocks' worth of tables: refused.
        let e = Geometry::new(4096, 16384, InodeSpec::Count(300_000), 0, 0, true);
        assert_eq!(e.unwrap_err(), GeometryError::Inodes);
    }

    #[test]
    fn contents_get_the_inodes_they_need() {
        let g = Geometry::new(4096, 16384, InodeSpec::Count(100), 5000, 0, true).unwrap();
        assert!(g.inodes_count() >= 5000, "{}", g.inodes_count());
        let g = Geometry::new(4096, 16384, InodeSpec::Count(100), 0, 5000, true).unwrap();
        assert!(g.inodes_count() >= 5000, "{}", g.inodes_count());
    }

    #[test]
    fn huge_filesystems_get_at_most_2_pow_32_inodes() {
        // 100 TiB with 4 KiB blocks: one inode per 16 KiB asks for 6.7e9 inodes.
        let spec = InodeSpec::BytesPerInode(16384);
        let g = Geometry::new(4096, 100 << 28, spec, 325, 0, true).unwrap();
        assert!(
            g.inodes_count() <= u64::from(u32::MAX),
            "{}",
            g.inodes_count()
        );
        assert!(g.inodes_count() > 4_000_000_000, "{}", g.inodes_count());
        // By default ("huge"), one per 64 KiB.
        let g = Geometry::new(4096, 100 << 28, D, 325, 0, true).unwrap();
        assert_eq!(g.inodes_count(), (100 << 40) / 65536);
    }

    #[test]
    fn runs_skip_metadata() {
        let mut l = Layout::new(Geometry::new(4096, 40000, D, 0, 0, true).unwrap()).unwrap();
        let (s, n) = l.alloc_run(1 << 20).unwrap();
        assert!(s > l.inode_table[1]);
        // Stops at group 1's superblock backup.
        assert_eq!(s.plus(n), BlockNo(32768));
        // After its superblock, GDT and reserved GDT blocks.
        assert_eq!(l.geo.reserved_gdt_blocks, 19);
        let (s2, _) = l.alloc_run(10).unwrap();
        assert_eq!(s2, BlockNo(32768 + 2 + 19));
    }

    #[test]
    fn reserved_gdt_blocks_as_mke2fs() {
        // dumpe2fs -h "Reserved GDT blocks" of mke2fs -t ext4 -b BS.
        for (bs, blocks, rsv) in [
            (1024, 2048, 15),
            (1024, 65536, 256),
            (4096, 4096, 1),
            (4096, 1 << 18, 127),
            (4096, 1 << 28, 1024),
            (2048, 1 << 22, 512),
        ] {
            let g = Geometry::new(bs, blocks, D, 0, 0, true).unwrap();
            assert_eq!(g.reserved_gdt_blocks, rsv, "{bs} x {blocks}");
            assert!(!g.meta_bg);
        }
        // None beyond 2^32 blocks (mke2fs drops resize_inode with 64bit).
        let g = Geometry::new(4096, 1 << 32, D, 0, 0, true).unwrap();
        assert_eq!((g.reserved_gdt_blocks, g.meta_bg), (0, false));
    }

    #[test]
    fn meta_bg_where_the_descriptors_outgrow_three_quarters_of_a_group() {
        // mke2fs -b 1024: resize_inode at 700 GiB, meta_bg at 800 GiB.
        let g = Geometry::new(1024, 700 << 20, D, 0, 0, true).unwrap();
        assert_eq!((g.reserved_gdt_blocks, g.meta_bg), (256, false));
        let g = Geometry::new(1024, 800 << 20, D, 0, 0, true).unwrap();
        assert_eq!((g.reserved_gdt_blocks, g.meta_bg), (0, true));
        // At 760 GiB, 6080 descriptor blocks: with the 256 reserved ones more
        // than 3/4 of 8192; without them (-O ^resize_inode) not.
        let g = Geometry::new(1024, 760 << 20, D, 0, 0, true).unwrap();
        assert_eq!((g.gdt_blocks, g.meta_bg), (6080, true));
        let g = Geometry::new(1024, 760 << 20, D, 0, 0, false).unwrap();
        assert_eq!((g.gdt_blocks, g.meta_bg), (6080, false));
        // 1 TiB: 131072 groups, 8192 descriptor blocks of 16 descriptors.
        let g = Geometry::new(1024, 1 << 30, D, 0, 0, true).unwrap();
        assert_eq!((g.groups, g.gdt_blocks, g.meta_bg), (131072, 8192, true));
        let heads: Vec<(bool, u64, u64)> = [0, 1, 2, 3, 15, 16, 17, 31, 32, 81]
            .iter()
            .map(|&n| {
                let h = g.head(n);
                (h.superblock, h.desc_blocks.start, h.desc_blocks.end)
            })
            .collect();
        assert_eq!(
            heads,
            [
                (true, 0, 1),
                (true, 0, 1),
                (false, 0, 0),
                (true, 0, 0),
                (false, 0, 1),
                (false, 1, 2),
                (false, 1, 2),
                (false, 1, 2),
                (false, 2, 3),
                (true, 5, 6),
            ]
        );
        let l = Layout::new(g).unwrap();
        // Group 0: superblock 1, descriptors 2, block bitmaps from 3 (mke2fs's).
        assert_eq!(l.block_bitmap[0], BlockNo(3));
        // Group 16 starts with meta group 1's descriptors.
        assert_eq!(l.block_bitmap[16], BlockNo(16 * 8192 + 2));
        assert_eq!(l.resize_dind, None);
    }

    #[test]
    fn the_limit_is_one_inode_block_per_group() {
        for bs in [1024, 2048, 4096] {
            let max = max_blocks(bs);
            let g = Geometry::new(bs, max, D, 11, 0, true).unwrap();
            // One inode-table block (and 8 inodes) per group, 2^32 - 1 in all.
            let min_ipg = (u64::from(bs) / 256).max(8);
            assert_eq!(u64::from(g.groups), u64::from(u32::MAX) / min_ipg);
            assert_eq!(u64::from(g.inodes_per_group), min_ipg);
            assert!(g.meta_bg);
            let e = Geometry::new(bs, max + 1, D, 0, 0, true).unwrap_err();
            assert_eq!(e, GeometryError::BeyondLimits);
        }
    }

    #[test]
    fn a_head_bigger_than_its_group_cannot_be_placed() {
        // Descriptors filling group 0 without meta_bg (what this writer
        // made of 1 KiB blocks at 1 TiB before meta_bg).
        let mut g = Geometry::new(1024, 1 << 30, D, 0, 0, true).unwrap();
        g.meta_bg = false;
        assert!(matches!(Layout::new(g), Err(GeometryError::Unplaceable(_))));
    }
}
