//! Extent trees: up to 4 extents in `i_block`, more in index/leaf blocks of any depth.

use crate::bytes::{put_u16, put_u32};
use crate::checksum::Checksum;
use crate::units::BlockNo;

pub(crate) const EXT4_EXT_MAGIC: u16 = 0xF30A;
/// Longest initialized extent.
pub(crate) const EXT_INIT_MAX_LEN: u32 = 32768;
const HEADER: usize = 12;
const ENTRY: usize = 12;
/// Entries that fit in `i_block`.
const ROOT_ENTRIES: usize = 4;

/// One run of blocks: logical `ee_block` .. + `ee_len` at physical `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Extent {
    pub ee_block: u32,
    pub ee_len: u16,
    pub start: BlockNo,
}

/// Entries per tree block: (block size - header) / entry size.
pub(crate) fn entries_per_block(block_size: u32) -> usize {
    (block_size as usize - HEADER) / ENTRY
}

/// How many tree blocks `n` extents need (0 when they fit in the inode).
pub(crate) fn tree_blocks_needed(n: usize, block_size: u32) -> usize {
    let per = entries_per_block(block_size);
    let mut n = n;
    let mut total = 0;
    while n > ROOT_ENTRIES {
        n = n.div_ceil(per);
        total += n;
    }
    total
}

fn header(b: &mut [u8], entries: usize, max: usize, depth: u16) {
    put_u16(b, 0, EXT4_EXT_MAGIC);
    put_u16(b, 2, entries as u16);
    put_u16(b, 4, max as u16);
    put_u16(b, 6, depth);
}

fn put_entry(b: &mut [u8], off: usize, e: &Entry) {
    match *e {
        Entry::Leaf(x) => {
            put_u32(b, off, x.ee_block);
            put_u16(b, off + 4, x.ee_len);
            put_u16(b, off + 6, (x.start.0 >> 32) as u16); // ee_start_hi
            put_u32(b, off + 8, (x.start.0 & 0xFFFF_FFFF) as u32); // ee_start_lo
        }
        Entry::Index { ei_block, leaf } => {
            put_u32(b, off, ei_block);
            put_u32(b, off + 4, (leaf.0 & 0xFFFF_FFFF) as u32); // ei_leaf_lo
            put_u16(b, off + 8, (leaf.0 >> 32) as u16); // ei_leaf_hi
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Entry {
    Leaf(Extent),
    Index { ei_block: u32, leaf: BlockNo },
}

impl Entry {
    fn first_block(&self) -> u32 {
        match *self {
            Entry::Leaf(x) => x.ee_block,
            Entry::Index { ei_block, .. } => ei_block,
        }
    }
}

/// A built tree: the 60-byte root for `i_block` and the tree blocks `(block, bytes)`.
#[derive(Debug)]
pub(crate) struct ExtentTree {
    pub i_block: [u8; 60],
    pub blocks: Vec<(BlockNo, Vec<u8>)>,
}

/// Builds the tree for `extents` (sorted by logical block) using `tree_blocks`
/// (exactly `tree_blocks_needed` of them). `inode_seed` seeds the block checksums.
pub(crate) fn build(
    extents: &[Extent],
    tree_blocks: &[BlockNo],
    block_size: u32,
    inode_seed: u32,
) -> ExtentTree {
    let per = entries_per_block(block_size);
    let bs = block_size as usize;
    let mut level: Vec<Entry> = extents.iter().map(|&x| Entry::Leaf(x)).collect();
    let mut depth = 0u16;
    let mut next_block = tree_blocks.iter();
    let mut blocks = Vec::new();
    while level.len() > ROOT_ENTRIES {
        let mut up = Vec::with_capacity(level.len().div_ceil(per));
        for chunk in level.chunks(per) {
            let blk = *next_block
                .next()
                .expect("tree_blocks_needed blocks were allocated");
            let mut b = vec![0u8; bs];
            header(&mut b, chunk.len(), per, depth);
            for (i, e) in chunk.iter().enumerate() {
                put_entry(&mut b, HEADER + i * ENTRY, e);
            }
            // ext4_extent_tail right after eh_max entries.
            let tail = HEADER + per * ENTRY;
            let c = Checksum::with_seed(inode_seed).update(&b[..tail]).value();
            put_u32(&mut b, tail, c);
            up.push(Entry::Index {
                ei_block: chunk[0].first_block(),
                leaf: blk,
            });
            blocks.push((blk, b));
        }
        level = up;
        depth += 1;
    }
    let mut i_block = [0u8; 60];
    header(&mut i_block, level.len(), ROOT_ENTRIES, depth);
    for (i, e) in level.iter().enumerate() {
        put_entry(&mut i_block, HEADER + i * ENTRY, e);
    }
    ExtentTree { i_block, blocks }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::{get_u16, get_u32};

    fn ext(i: u32) -> Extent {
        Extent {
            ee_block: i * 2,
            ee_len: 1,
            start: BlockNo(1000 + u64::from(i) * 2),
        }
    }

    #[test]
    fn counts_blocks_per_depth() {
        assert_eq!(entries_per_block(4096), 340);
        assert_eq!(entries_per_block(1024), 84);
        assert_eq!(tree_blocks_needed(4, 1024), 0);
        assert_eq!(tree_blocks_needed(5, 1024), 1);
        assert_eq!(tree_blocks_needed(84 * 4, 1024), 4);
        assert_eq!(tree_blocks_needed(84 * 4 + 1, 1024), 5 + 1);
    }

    #[test]
    fn in_inode_tree() {
        let t = build(&[ext(0), ext(1)], &[], 4096, 0);
        assert!(t.blocks.is_empty());
        assert_eq!(get_u16(&t.i_block, 0), EXT4_EXT_MAGIC);
        assert_eq!(get_u16(&t.i_block, 2), 2);
        assert_eq!(get_u16(&t.i_block, 4), 4);
        assert_eq!(get_u16(&t.i_block, 6), 0);
        assert_eq!(get_u32(&t.i_block, 12 + 12 + 8), 1002);
    }

    #[test]
    fn two_level_tree_with_checksums() {
        let exts: Vec<Extent> = (0..400).map(ext).collect();
        let n = tree_blocks_needed(exts.len(), 1024);
        let blocks: Vec<BlockNo> = (0..n as u64).map(|i| BlockNo(50 + i)).collect();
        let t = build(&exts, &blocks, 1024, 7);
        assert_eq!(t.blocks.len(), 6);
        assert_eq!(get_u16(&t.i_block, 6), 2); // depth 2
        let (b0, leaf) = &t.blocks[0];
        assert_eq!(*b0, BlockNo(50));
        assert_eq!(get_u16(leaf, 2), 84);
        let c = Checksum::with_seed(7).update(&leaf[..1020]).value();
        assert_eq!(get_u32(leaf, 1020), c);
        let (_, idx) = &t.blocks[5];
        assert_eq!(get_u16(idx, 6), 1);
        assert_eq!(get_u16(idx, 2), 5);
        assert_eq!(get_u32(idx, 12 + 12), 84 * 2); // second leaf starts at logical 168
    }
}
