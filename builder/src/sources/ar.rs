//! The `ar` archive format a `.deb` is wrapped in (deb(5)): an 8-byte magic
//! `!<arch>\n`, then members each with a 60-byte header (`ar_name[16]`,
//! `ar_date[12]`, `ar_uid[6]`, `ar_gid[6]`, `ar_mode[8]`, `ar_size[10]`,
//! `ar_fmag[2]` = "`\n") followed by the data, padded to an even offset.

use std::io::{Read, Seek, SeekFrom};

/// The global header of every ar archive.
pub const AR_MAGIC: &[u8; 8] = b"!<arch>\n";
const HEADER_LEN: u64 = 60;

/// One member of an archive: where its data is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member name (`debian-binary`, `control.tar.xz`, …), trailing
    /// spaces and the GNU `/` terminator removed.
    pub name: String,
    /// Offset of the data from the start of the archive.
    pub offset: u64,
    /// Size of the data in bytes (`ar_size`).
    pub size: u64,
}

/// An ar archive is malformed.
#[derive(Debug, thiserror::Error)]
pub enum ArError {
    /// The file does not start with `!<arch>\n`.
    #[error("not an ar archive (bad magic)")]
    BadMagic,
    /// A member header is cut short or its data runs past the end of the file.
    #[error("truncated ar archive at offset {0}")]
    Truncated(u64),
    /// A header field does not parse.
    #[error("bad ar member header at offset {offset}: {what}")]
    BadHeader {
        /// Offset of the header.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// Reading failed.
    #[error("I/O error reading the ar archive: {0}")]
    Io(#[from] std::io::Error),
}

/// Lists the members of an ar archive.
pub fn members<R: Read + Seek>(r: &mut R) -> Result<Vec<Member>, ArError> {
    let len = r.seek(SeekFrom::End(0))?;
    r.seek(SeekFrom::Start(0))?;
    let mut magic = [0u8; 8];
    if r.read_exact(&mut magic).is_err() || &magic != AR_MAGIC {
        return Err(ArError::BadMagic);
    }
    let mut out = Vec::new();
    let mut pos = AR_MAGIC.len() as u64;
    while pos < len {
        let mut h = [0u8; HEADER_LEN as usize];
        r.seek(SeekFrom::Start(pos))?;
        r.read_exact(&mut h).map_err(|_| ArError::Truncated(pos))?;
        let bad = |what: &str| ArError::BadHeader {
            offset: pos,
            what: what.to_owned(),
        };
        if &h[58..60] != b"`\n" {
            return Err(bad("missing `\\n terminator"));
        }
        let name = std::str::from_utf8(&h[0..16]).map_err(|_| bad("name is not UTF-8"))?;
        let name = name.trim_end_matches(' ');
        let name = name.strip_suffix('/').unwrap_or(name).to_owned();
        let size = std::str::from_utf8(&h[48..58])
            .ok()
            .and_then(|s| s.trim_end_matches(' ').parse::<u64>().ok())
            .ok_or_else(|| bad("ar_size is not a decimal number"))?;
        let offset = pos + HEADER_LEN;
        let end = offset
            .checked_add(size)
            .filter(|e| *e <= len)
            .ok_or(ArError::Truncated(pos))?;
        out.push(Member { name, offset, size });
        pos = end + (end % 2);
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Cursor;

    /// Builds an ar archive from (name, data) pairs.
    pub(crate) fn build(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = AR_MAGIC.to_vec();
        for (name, data) in members {
            let header = format!(
                "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                name,
                0,
                0,
                0,
                100644,
                data.len()
            );
            assert_eq!(header.len(), 60);
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(data);
            if data.len() % 2 == 1 {
                out.push(b'\n');
            }
        }
        out
    }

    #[test]
    fn lists_members_with_padding() {
        let ar = build(&[("debian-binary", b"2.0\n"), ("odd/", b"abc"), ("x", b"yz")]);
        let m = members(&mut Cursor::new(&ar)).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].name, "debian-binary");
        assert_eq!(m[1].name, "odd");
        let slice = |m: &Member| &ar[m.offset as usize..(m.offset + m.size) as usize];
        assert_eq!(slice(&m[0]), b"2.0\n");
        assert_eq!(slice(&m[1]), b"abc");
        assert_eq!(slice(&m[2]), b"yz");
    }

    #[test]
    fn malformed_archives() {
        assert!(matches!(
            members(&mut Cursor::new(b"garbage!")),
            Err(ArError::BadMagic)
        ));
        let mut ar = build(&[("a", b"hello")]);
        ar.truncate(ar.len() - 3);
        assert!(matches!(
            members(&mut Cursor::new(&ar)),
            Err(ArError::Truncated(8))
        ));
        let mut ar = build(&[("a", b"hello")]);
        ar[8 + 48] = b'x';
        assert!(matches!(
            members(&mut Cursor::new(&ar)),
            Err(ArError::BadHeader { offset: 8, .. })
        ));
    }
}
