//! The jbd2 journal superblock (version 2, big-endian) of an internal journal.

/// `JBD2_MAGIC_NUMBER`.
pub(crate) const JBD2_MAGIC: u32 = 0xC03B_3998;
/// `JBD2_SUPERBLOCK_V2`.
const JBD2_SUPERBLOCK_V2: u32 = 4;

fn be32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

/// Journal length as mke2fs picks it for a filesystem of `blocks` blocks; None = too small.
pub(crate) fn default_journal_blocks(blocks: u64) -> Option<u64> {
    Some(match blocks {
        0..2048 => return None,
        2048..32768 => 1024,
        32768..262_144 => 4096,
        262_144..524_288 => 8192,
        524_288..4_194_304 => 16384,
        4_194_304..8_388_608 => 32768,
        8_388_608..16_777_216 => 65536,
        16_777_216..33_554_432 => 131_072,
        _ => 262_144,
    })
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
    }
}
