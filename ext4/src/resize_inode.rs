//! The resize inode (inode 7, `resize_inode`): a block-mapped regular file
//! whose double-indirect block lists the primary reserved GDT blocks as its
//! indirect blocks, each listing its copies in the groups with superblock
//! backups as its data blocks. That is how a growing filesystem (resize2fs,
//! the kernel's online resize) finds them: e2fsprogs'
//! `ext2fs_create_resize_inode`, checked by e2fsck's `check_resize_inode`.

use crate::bytes::put_u32;
use crate::inode::Inode;
use crate::layout::Geometry;
use crate::mode::S_IFREG;
use crate::options::Timestamp;
use crate::superblock::group_has_super;
use crate::units::BlockNo;

/// The `i_block` slot of the double-indirect block (`EXT2_DIND_BLOCK`).
const EXT2_DIND_BLOCK: usize = 13;
/// Direct block slots (`EXT2_NDIR_BLOCKS`).
const EXT2_NDIR_BLOCKS: u64 = 12;

/// The resize inode and the blocks that make it.
#[derive(Debug)]
pub(crate) struct ResizeInode {
    pub inode: Inode,
    /// The double-indirect block, then each primary reserved GDT block
    /// (the copies in other groups stay zero).
    pub blocks: Vec<(BlockNo, Vec<u8>)>,
}

/// The resize inode of `geo` (which has reserved GDT blocks, hence at most
/// 2^32 blocks: every number fits the 32-bit slots), its double-indirect
/// block at `dind`, all its times `ts`.
pub(crate) fn build(geo: &Geometry, dind: BlockNo, ts: Timestamp) -> ResizeInode {
    let bs = u64::from(geo.block_size);
    let addrs_per_block = bs / 4;
    let gdt = u64::from(geo.gdt_blocks);
    // Where each primary block's copies are: as far on as its group is.
    let backups: Vec<u64> = (1..geo.groups)
        .filter(|&g| group_has_super(g))
        .map(|g| geo.group_start(g) - geo.first_data_block)
        .collect();
    let mut dind_block = vec![0u8; bs as usize];
    let mut blocks = Vec::new();
    for i in 0..u64::from(geo.reserved_gdt_blocks) {
        let primary = geo.first_data_block + 1 + gdt + i;
        // Slot (desc_blocks + i) mod addresses-per-block: a reserved block
        // keeps its slot once the table grows into it.
        let slot = (gdt + i) % addrs_per_block;
        put_u32(&mut dind_block, 4 * slot as usize, primary as u32);
        let mut ind = vec![0u8; bs as usize];
        for (k, off) in backups.iter().enumerate() {
            put_u32(&mut ind, 4 * k, (primary + off) as u32);
        }
        blocks.push((BlockNo(primary), ind));
    }
    blocks.insert(0, (dind, dind_block));
    let mut i_block = [0u8; 60];
    put_u32(&mut i_block, 4 * EXT2_DIND_BLOCK, dind.0 as u32);
    // The double-indirect block, the primaries and their copies.
    let count = 1 + u64::from(geo.reserved_gdt_blocks) * (1 + backups.len() as u64);
    // As big as a file mapped up to its double-indirect blocks.
    let size = (addrs_per_block * addrs_per_block + addrs_per_block + EXT2_NDIR_BLOCKS) * bs;
    let inode = Inode {
        i_mode: S_IFREG | 0o600,
        i_size: size,
        i_atime: ts,
        i_ctime: ts,
        i_mtime: ts,
        i_crtime: ts,
        i_links_count: 1,
        i_blocks: count * bs / 512,
        i_block,
        ..Default::default()
    };
    ResizeInode { inode, blocks }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::get_u32;
    use crate::options::InodeSpec;

    #[test]
    fn lists_the_reserved_blocks_and_their_copies_as_mke2fs() {
        // 64 MiB, 1 KiB blocks (debugfs stat <7> of mke2fs's): 256 reserved
        // blocks 3-258 after the one GDT block; copies in groups 1, 3, 5, 7.
        let geo = Geometry::new(1024, 65536, InodeSpec::Default, 0, 0, true).unwrap();
        let r = build(&geo, BlockNo(4384), Timestamp::from_secs(1));
        assert_eq!(r.blocks.len(), 257);
        let (dind, d) = &r.blocks[0];
        assert_eq!(*dind, BlockNo(4384));
        // Slot 0 holds the last reserved block: (1 + 255) mod 256.
        assert_eq!(get_u32(d, 0), 258);
        assert_eq!(get_u32(d, 4), 3);
        assert_eq!(get_u32(d, 4 * 255), 257);
        let (b, ind) = &r.blocks[1];
        assert_eq!(*b, BlockNo(3));
        let copies: Vec<u32> = (0..5).map(|k| get_u32(ind, 4 * k)).collect();
        assert_eq!(copies, [8195, 24579, 40963, 57347, 0]);
        assert_eq!(r.inode.i_blocks, 2562);
        assert_eq!(r.inode.i_size, 67_383_296);
        assert_eq!(r.inode.i_mode, 0o100600);
    }
}
