//! The "new ASCII" (newc) cpio header, as the kernel reads it
//! (init/initramfs.c, Documentation/driver-api/early-userspace/buffer-format.rst):
//! magic `070701`, then thirteen 8-digit hexadecimal fields, then the name
//! with its NUL, padded to a multiple of 4; then the data, padded to 4.

/// The magic of newc headers without checksums.
pub const MAGIC: &[u8; 6] = b"070701";
/// Header length before the name.
pub const HEADER_LEN: usize = 110;
/// Name of the record that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";

/// The header fields, with the kernel's names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// Inode number (records sharing one are hard links).
    pub c_ino: u32,
    /// Type and permission bits.
    pub c_mode: u32,
    /// Owner.
    pub c_uid: u32,
    /// Group.
    pub c_gid: u32,
    /// Link count.
    pub c_nlink: u32,
    /// Modification time, seconds since the epoch.
    pub c_mtime: u32,
    /// Number of data bytes that follow the name.
    pub c_filesize: u32,
    /// Device holding the file (major).
    pub c_devmajor: u32,
    /// Device holding the file (minor).
    pub c_devminor: u32,
    /// Device number of a device node (major).
    pub c_rdevmajor: u32,
    /// Device number of a device node (minor).
    pub c_rdevminor: u32,
    /// Length of the name including its NUL.
    pub c_namesize: u32,
    /// Checksum (0 for `070701`).
    pub c_check: u32,
}

impl Header {
    /// The 110 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let fields = [
            self.c_ino,
            self.c_mode,
            self.c_uid,
            self.c_gid,
            self.c_nlink,
            self.c_mtime,
            self.c_filesize,
            self.c_devmajor,
            self.c_devminor,
            self.c_rdevmajor,
            self.c_rdevminor,
            self.c_namesize,
            self.c_check,
        ];
        let mut out = [0u8; HEADER_LEN];
        out[..6].copy_from_slice(MAGIC);
        for (i, f) in fields.iter().enumerate() {
            let text = format!("{f:08X}");
            out[6 + i * 8..6 + (i + 1) * 8].copy_from_slice(text.as_bytes());
        }
        out
    }
}

/// Bytes of padding that bring `offset` to a multiple of 4.
pub fn pad4(offset: u64) -> usize {
    ((4 - offset % 4) % 4) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_fields_in_order_as_hex() {
        let h = Header {
            c_ino: 1,
            c_mode: 0o100_644,
            c_nlink: 1,
            c_mtime: 0x1234_abcd,
            c_filesize: 5,
            c_rdevmajor: 5,
            c_rdevminor: 1,
            c_namesize: 5,
            ..Header::default()
        };
        let text = String::from_utf8(h.encode().to_vec()).unwrap();
        assert_eq!(
            text,
            "070701\
             00000001000081A4000000000000000000000001\
             1234ABCD00000005000000000000000000000005\
             000000010000000500000000"
        );
        assert_eq!(pad4(110 + 5), 1);
        assert_eq!(pad4(8), 0);
        assert_eq!(pad4(3), 1);
    }
}
