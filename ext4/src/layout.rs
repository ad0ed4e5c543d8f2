//! Geometry (groups, inode counts) and placement of the fixed metadata:
//! superblock/GDT copies in sparse groups, flex_bg-packed bitmaps and inode tables.

use crate::bitmap::BitSet;
use crate::group_desc::DESC_SIZE;
use crate::inode::INODE_SIZE;
use crate::superblock::group_has_super;
use crate::units::BlockNo;

/// Groups per flex group (`s_log_groups_per_flex` = 4).
pub(crate) const LOG_GROUPS_PER_FLEX: u8 = 4;
const GROUPS_PER_FLEX: u32 = 1 << LOG_GROUPS_PER_FLEX;
/// Bytes of filesystem per inode (mke2fs `inode_ratio`).
pub(crate) const INODE_RATIO: u64 = 16384;

/// Why a geometry is impossible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GeometryError {
    /// Needs at least this many inodes but at most `max` fit.
    Inodes { max: u64 },
    /// Too few blocks to hold even the metadata.
    NoRoom,
    /// Beyond what this writer supports.
    BeyondLimits,
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
    pub gdt_blocks: u32,
}

impl Geometry {
    /// Computes a geometry for `blocks_count` blocks holding at least `inodes_needed`
    /// inodes, and `inodes_wanted` (or one per `INODE_RATIO` bytes) when they fit.
    pub fn new(
        block_size: u32,
        blocks_count: u64,
        inodes_needed: u64,
        inodes_wanted: u64,
    ) -> Result<Self, GeometryError> {
        let bs = u64::from(block_size);
        let first_data_block = u64::from(block_size == 1024);
        let bpg = 8 * block_size;
        if blocks_count >= 1 << 47 {
            return Err(GeometryError::BeyondLimits);
        }
        if blocks_count < first_data_block + 64 {
            return Err(GeometryError::NoRoom);
        }
        let mut blocks = blocks_count;
        let mut groups = (blocks - first_data_block).div_ceil(u64::from(bpg));
        // Drop a last group too small to be useful, as mke2fs does.
        let last = blocks - first_data_block - (groups - 1) * u64::from(bpg);
        let gdt_est = (groups * DESC_SIZE as u64).div_ceil(bs);
        if groups > 1 && last < gdt_est + 1 + 50 {
            blocks -= last;
            groups -= 1;
        }
        let groups32 = u32::try_from(groups).map_err(|_| GeometryError::BeyondLimits)?;
        let gdt_blocks = (groups * DESC_SIZE as u64).div_ceil(bs);
        let per_block = bs / INODE_SIZE as u64;
        let align = per_block.max(8);
        let by_ratio = (blocks * bs / INODE_RATIO).max(16);
        let wanted = by_ratio.max(inodes_needed).max(inodes_wanted);
        let mut ipg = wanted.div_ceil(groups).div_ceil(align) * align;
        // At most one inode per block of a group, and (as mke2fs caps it) no
        // more inodes than the 32-bit inode count holds: a big filesystem
        // gets fewer inodes than its ratio asks, not an error.
        let cap =
            ((u64::from(bpg) / align) * align).min((u64::from(u32::MAX) / groups) / align * align);
        ipg = ipg.min(cap);
        let max = ipg * groups;
        if max < inodes_needed {
            return Err(GeometryError::Inodes { max: cap * groups });
        }
        let itable_blocks = ipg / per_block;
        Ok(Geometry {
            block_size,
            blocks_count: blocks,
            first_data_block,
            blocks_per_group: bpg,
            groups: groups32,
            inodes_per_group: ipg as u32,
            itable_blocks: itable_blocks as u32,
            gdt_blocks: gdt_blocks as u32,
        })
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
}

/// Block-level placement: which blocks hold metadata, plus a bump allocator for the rest.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub geo: Geometry,
    pub used: BitSet,
    pub block_bitmap: Vec<BlockNo>,
    pub inode_bitmap: Vec<BlockNo>,
    pub inode_table: Vec<BlockNo>,
    cursor: u64,
}

impl Layout {
    /// Places superblock copies, GDTs, bitmaps and inode tables.
    pub fn new(geo: Geometry) -> Result<Self, GeometryError> {
        let mut used = BitSet::new(geo.blocks_count);
        for b in 0..geo.first_data_block {
            used.set(b);
        }
        for g in 0..geo.groups {
            if group_has_super(g) {
                let s = geo.group_start(g);
                let end = s + 1 + u64::from(geo.gdt_blocks);
                if end > geo.group_end(g) {
                    return Err(GeometryError::NoRoom);
                }
                for b in s..end {
                    used.set(b);
                }
            }
        }
        let n = geo.groups as usize;
        let mut l = Layout {
            geo,
            used,
            block_bitmap: vec![BlockNo(0); n],
            inode_bitmap: vec![BlockNo(0); n],
            inode_table: vec![BlockNo(0); n],
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

    #[test]
    fn geometry_like_mke2fs() {
        // 64 MiB with 1 KiB blocks: 8 groups of 8192 from block 1.
        let g = Geometry::new(1024, 65536, 0, 0).unwrap();
        assert_eq!(g.first_data_block, 1);
        assert_eq!(g.groups, 8);
        assert_eq!(g.gdt_blocks, 1);
        assert_eq!(g.inodes_per_group, 512);
        let l = Layout::new(g).unwrap();
        // Group 0: block 1 superblock, 2 GDT, then 8 block bitmaps, 8 inode bitmaps, tables.
        assert_eq!(l.block_bitmap[0], BlockNo(3));
        assert_eq!(l.inode_bitmap[0], BlockNo(11));
        assert_eq!(l.inode_table[0], BlockNo(19));
        assert_eq!(l.inode_table[1], BlockNo(19 + 128));
        assert!(Geometry::new(1024, 2048, 100_000, 0).is_err());
    }

    #[test]
    fn huge_filesystems_get_at_most_2_pow_32_inodes() {
        // 100 TiB with 4 KiB blocks: its ratio asks for 6.7e9 inodes.
        let g = Geometry::new(4096, 100 << 28, 325, 0).unwrap();
        assert!(
            g.inodes_count() <= u64::from(u32::MAX),
            "{}",
            g.inodes_count()
        );
        assert!(g.inodes_count() > 4_000_000_000, "{}", g.inodes_count());
    }

    #[test]
    fn runs_skip_metadata() {
        let mut l = Layout::new(Geometry::new(4096, 40000, 0, 0).unwrap()).unwrap();
        let (s, n) = l.alloc_run(1 << 20).unwrap();
        assert!(s > l.inode_table[1]);
        // Stops at group 1's superblock backup.
        assert_eq!(s.plus(n), BlockNo(32768));
        let (s2, _) = l.alloc_run(10).unwrap();
        assert_eq!(s2, BlockNo(32768 + 2));
    }
}
