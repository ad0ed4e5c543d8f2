//! The jbd2 journal superblock (version 2, big-endian) of an internal journal.

/// `JBD2_MAGIC_NUMBER`.
pub(crate) const JBD2_MAGIC: u32 = 0xC03B_3998;
/// `JBD2_SUPERBLOCK_V2`.
const JBD2_SUPERBLOCK_V2: u32 = 4;

fn be32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

/// mke2fs's journal length by filesystem size (`ext2fs_default_journal_size`):
/// from this many blocks up, a journal of that many blocks.
const JOURNAL_SIZES: [(u64, u64); 8] = [
    (2048, 1024),
    (32768, 4096),
    (262_144, 8192),
    (524_288, 16384),
    (4_194_304, 32768),
    (8_388_608, 65536),
    (16_777_216, 131_072),
    (33_554_432, 262_144),
];

/// The fewest blocks a filesystem with a journal has; a smaller one has none
/// (mke2fs: "Filesystem too small for a journal").
pub(crate) const MIN_JOURNAL_FS_BLOCKS: u64 = JOURNAL_SIZES[0].0;

/// Journal length as mke2fs picks it for a filesystem of `blocks` blocks; None = too small.
pub(crate) fn default_journal_blocks(blocks: u64) -> Option<u64> {
    JOURNAL_SIZES
        .iter()
        .rev()
        .find(|&&(from, _)| blocks >= from)
        .map(|&(_, len)| len)
}

/// The filesystem sizes (in blocks) at which the journal's length changes.
pub(crate) fn journal_size_steps() -> impl Iterator<Item = u64> {
    JOURNAL_SIZES.iter().map(|&(from, _)| from)
}

/// The first journal block: a clean, empty v2 journal.
pub(crate) fn superblock(block_size: u32, maxlen: u32, uuid: &[u8; 16]) -> Vec<u8> {
    let mut b = vec![0u8; block_size as usize];
    be32(&mut b, 0x0, JBD2_MAGIC); // h_magic
    be32(&mut b, 0x4, JBD2_SUPERBLOCK_V2); // h_blocktype
    be32(&mut b, 0xC, block_size); // s_blocksize
    be32(&mut b, 0x10, maxlen); // s_maxlen
    be32(&mut b, 0x14, 1); // s_first
    be32(&mut b, 0x18, 1); // s_sequence
    // s_start = 0: nothing to replay.
    b[0x30..0x40].copy_from_slice(uuid); // s_uuid
    be32(&mut b, 0x40, 1); // s_nr_users
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_big_endian() {
        let b = superblock(4096, 4096, &[7; 16]);
        assert_eq!(&b[0..4], &[0xC0, 0x3B, 0x39, 0x98]);
        assert_eq!(&b[0x10..0x14], &[0, 0, 0x10, 0]);
        assert_eq!(default_journal_blocks(65536), Some(4096));
        assert_eq!(default_journal_blocks(1000), None);
        assert_eq!(default_journal_blocks(2047), None);
        assert_eq!(default_journal_blocks(2048), Some(1024));
        assert_eq!(default_journal_blocks(32767), Some(1024));
        assert_eq!(default_journal_blocks(1 << 40), Some(262_144));
    }
}
