//! Hashed directories (`dir_index`): a dx_root block, optionally one level of interior
//! dx nodes, and leaf blocks holding entries in hash order, each with checksums,
//! written with the slack the kernel needs to keep adding names.

use crate::bytes::{put_u8, put_u16, put_u32};
use crate::checksum::Checksum;
use crate::dir_entry::{self, DirBlockWriter, TAIL_SIZE, rec_len};
use crate::units::InodeNo;

/// `dx_root` entries start here (after ".", ".." and `dx_root_info`).
const ROOT_COUNT_OFFSET: usize = 32;
/// Interior nodes: after one empty 8-byte dirent.
const NODE_COUNT_OFFSET: usize = 8;
/// `struct dx_tail`: reserved word and checksum.
const DX_TAIL: usize = 8;
/// `dx_root_info.hash_version`: half-MD4.
const DX_HASH_HALF_MD4: u8 = 1;

/// One directory entry with its hash.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HashedEntry<'a> {
    pub hash: u32,
    pub name: &'a [u8],
    pub inode: InodeNo,
    pub file_type: u8,
}

/// The shape of an indexed directory: leaves as ranges of the hash-sorted entries.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    /// `indirect_levels`: 0 (root -> leaves) or 1 (root -> nodes -> leaves).
    pub levels: u8,
    pub leaves: Vec<std::ops::Range<usize>>,
    pub nodes: usize,
}

impl Shape {
    pub fn blocks(&self) -> u64 {
        1 + self.nodes as u64 + self.leaves.len() as u64
    }
}

fn root_limit(bs: usize) -> usize {
    (bs - ROOT_COUNT_OFFSET - DX_TAIL) / 8
}

fn node_limit(bs: usize) -> usize {
    (bs - NODE_COUNT_OFFSET - DX_TAIL) / 8
}

// Slack for the kernel. It adds an entry by splitting a full leaf, which
// takes a slot in the leaf's index node; a full node splits, taking a slot
// in the root; with the root full at two levels (the most without
// `large_dir`) the insert fails: "Directory index full". A tree written
// full (every index node at its limit) could take only a handful of new
// names. So leaves are filled like e2fsck -D fills them (its default
// `indexed_dir_slack_percentage` of 20), interior nodes to 3/4, and a
// two-level root to half: the kernel can then add at least as many names
// as the directory has before it runs out of index. A directory that does
// not fit that way stays linear, which the kernel grows without limit.

/// How full a leaf is filled, in percent of its usable bytes.
const LEAF_FILL_PERCENT: usize = 80;

/// Index entries written into an interior node of `bs` bytes.
fn node_fill(bs: usize) -> usize {
    node_limit(bs) * 3 / 4
}

/// Index entries written into a root that points at leaves.
fn root_leaf_fill(bs: usize) -> usize {
    root_limit(bs) * 3 / 4
}

/// Index entries written into a root that points at interior nodes.
fn root_node_fill(bs: usize) -> usize {
    root_limit(bs) / 2
}

/// Packs hash-sorted `(hash, name_len)` into leaves, never splitting equal
/// hashes, leaving the slack above. None when the directory is better left
/// linear (it would not fit two levels with that slack).
pub(crate) fn shape(sorted: &[(u32, usize)], block_size: u32) -> Option<Shape> {
    let bs = block_size as usize;
    let usable = (bs - TAIL_SIZE) * LEAF_FILL_PERCENT / 100;
    let mut leaves = Vec::new();
    let mut start = 0;
    let mut used = 0;
    let mut run_start = 0;
    for (i, &(hash, len)) in sorted.iter().enumerate() {
        if i > 0 && sorted[i - 1].0 != hash {
            run_start = i;
        }
        let need = rec_len(len);
        if used + need > usable {
            if run_start == start {
                return None; // a run of equal hashes larger than a leaf
            }
            leaves.push(start..run_start);
            start = run_start;
            used = sorted[run_start..i].iter().map(|&(_, l)| rec_len(l)).sum();
        }
        used += need;
    }
    if start < sorted.len() || leaves.is_empty() {
        leaves.push(start..sorted.len());
    }
    if leaves.len() <= root_leaf_fill(bs) {
        Some(Shape {
            levels: 0,
            leaves,
            nodes: 0,
        })
    } else {
        let nodes = leaves.len().div_ceil(node_fill(bs));
        (nodes <= root_node_fill(bs)).then_some(Shape {
            levels: 1,
            leaves,
            nodes,
        })
    }
}

/// Writes `count`/`limit`, the entries and the dx_tail checksum of one index block.
fn fill_index(b: &mut [u8], count_off: usize, entries: &[(u32, u32)], seed: u32) {
    let limit = (b.len() - count_off - DX_TAIL) / 8;
    put_u16(b, count_off, limit as u16);
    put_u16(b, count_off + 2, entries.len() as u16);
    for (i, &(hash, block)) in entries.iter().enumerate() {
        if i > 0 {
            put_u32(b, count_off + 8 * i, hash);
        }
        put_u32(b, count_off + 8 * i + 4, block);
    }
    let tail = count_off + limit * 8;
    let size = count_off + entries.len() * 8;
    // dx_tail: crc over the used entries, then the tail with dt_checksum as zero.
    let c = Checksum::with_seed(seed)
        .update(&b[..size])
        .update(&b[tail..tail + 4])
        .update(&[0; 4])
        .value();
    put_u32(b, tail + 4, c);
}

/// Serializes the whole directory (root, nodes, leaves) in logical block order.
pub(crate) fn write(
    entries: &[HashedEntry<'_>],
    shape: &Shape,
    this: InodeNo,
    parent: InodeNo,
    block_size: u32,
    inode_seed: u32,
) -> Vec<u8> {
    let bs = block_size as usize;
    let first_leaf = 1 + shape.nodes as u32;
    let leaf_refs: Vec<(u32, u32)> = shape
        .leaves
        .iter()
        .enumerate()
        .map(|(i, r)| (entries[r.start].hash, first_leaf + i as u32))
        .collect();
    let mut out = vec![0u8; bs * (1 + shape.nodes)];
    // dx_root: "." and ".." (spanning the block), then dx_root_info.
    {
        let b = &mut out[..bs];
        put_u32(b, 0, this.0);
        put_u16(b, 4, 12);
        put_u8(b, 6, 1);
        put_u8(b, 7, dir_entry::FT_DIR);
        b[8] = b'.';
        put_u32(b, 12, parent.0);
        put_u16(b, 16, (bs - 12) as u16);
        put_u8(b, 18, 2);
        put_u8(b, 19, dir_entry::FT_DIR);
        b[20..22].copy_from_slice(b"..");
        put_u8(b, 28, DX_HASH_HALF_MD4); // hash_version
        put_u8(b, 29, 8); // info_length
        put_u8(b, 30, shape.levels); // indirect_levels
    }
    if shape.levels == 0 {
        fill_index(&mut out[..bs], ROOT_COUNT_OFFSET, &leaf_refs, inode_seed);
    } else {
        let mut node_refs = Vec::new();
        for (n, chunk) in leaf_refs.chunks(node_fill(bs)).enumerate() {
            let b = &mut out[bs * (1 + n)..bs * (2 + n)];
            put_u16(b, 4, bs as u16); // an empty dirent spanning the block
            fill_index(b, NODE_COUNT_OFFSET, chunk, inode_seed);
            node_refs.push((chunk[0].0, 1 + n as u32));
        }
        fill_index(&mut out[..bs], ROOT_COUNT_OFFSET, &node_refs, inode_seed);
    }
    let mut leaves: Vec<u8> = Vec::new();
    let mut emit = |blk: &[u8]| leaves.extend_from_slice(blk);
    let mut w = DirBlockWriter::new(block_size, inode_seed);
    for r in &shape.leaves {
        for e in &entries[r.clone()] {
            w.add(e.inode, e.name, e.file_type, &mut emit);
        }
        w.end_block(&mut emit);
    }
    out.extend_from_slice(&leaves);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let small: Vec<(u32, usize)> = (0..10).map(|i| (i * 2, 8)).collect();
        let s = shape(&small, 1024).unwrap();
        assert_eq!((s.levels, s.leaves.len(), s.blocks()), (0, 1, 2));
        let many: Vec<(u32, usize)> = (0..20_000).map(|i| (i * 2, 20)).collect();
        let s = shape(&many, 1024).unwrap();
        assert_eq!(s.levels, 1);
        assert!(s.nodes >= 2);
        // Equal hashes never straddle leaves.
        let dup: Vec<(u32, usize)> = (0..200).map(|i| (i / 7 * 2, 40)).collect();
        let s = shape(&dup, 1024).unwrap();
        for w in s.leaves.windows(2) {
            assert_ne!(dup[w[0].end - 1].0, dup[w[1].start].0);
        }
        assert!(shape(&[(4, 200); 10], 1024).is_none());
    }

    #[test]
    fn trees_leave_the_kernel_room() {
        for bs in [1024usize, 4096] {
            let many: Vec<(u32, usize)> = (0..60_000).map(|i| (i * 2, 30)).collect();
            let s = shape(&many, bs as u32).unwrap();
            let usable = bs - TAIL_SIZE;
            for l in &s.leaves {
                let bytes: usize = many[l.clone()].iter().map(|&(_, n)| rec_len(n)).sum();
                assert!(
                    bytes * 100 <= usable * LEAF_FILL_PERCENT,
                    "{bs}: leaf {bytes}"
                );
            }
            if s.levels == 1 {
                assert!(s.nodes <= root_limit(bs) / 2, "{bs}: {} nodes", s.nodes);
                assert!(s.leaves.len() <= s.nodes * node_limit(bs) * 3 / 4);
            } else {
                assert!(s.leaves.len() <= root_limit(bs) * 3 / 4);
            }
        }
        // 25,000 names of 255 bytes in 1 KiB blocks need nearly all that
        // two levels can index: such a directory is left linear.
        let long: Vec<(u32, usize)> = (0..25_000).map(|i| (i * 2, 255)).collect();
        assert!(shape(&long, 1024).is_none());
        assert!(shape(&long, 4096).is_some());
    }
}
