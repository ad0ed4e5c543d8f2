//! Tar headers: the 512-byte ustar/GNU header block (octal and base-256
//! numbers, checksum, GNU sparse maps) and pax extended header records.

use crate::options::Timestamp;

/// One 512-byte header block.
pub(crate) struct Header(pub [u8; 512]);

/// Which header layout a block has (`magic`/`version` at 257).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// POSIX ustar (and pax): `prefix` at 345.
    Ustar,
    /// Old GNU: `atime`, `ctime` and a sparse map where ustar has `prefix`.
    Gnu,
    /// Version 7: no magic, no owner names, no devices.
    V7,
}

/// Field ranges, named as in GNU tar's `tar.h`.
pub(crate) const NAME: std::ops::Range<usize> = 0..100;
const MODE: std::ops::Range<usize> = 100..108;
const UID: std::ops::Range<usize> = 108..116;
const GID: std::ops::Range<usize> = 116..124;
const SIZE: std::ops::Range<usize> = 124..136;
const MTIME: std::ops::Range<usize> = 136..148;
const CHKSUM: std::ops::Range<usize> = 148..156;
pub(crate) const TYPEFLAG: usize = 156;
const LINKNAME: std::ops::Range<usize> = 157..257;
const DEVMAJOR: std::ops::Range<usize> = 329..337;
const DEVMINOR: std::ops::Range<usize> = 337..345;
const PREFIX: std::ops::Range<usize> = 345..500;
// Old GNU header (oldgnu_header).
const GNU_ATIME: std::ops::Range<usize> = 345..357;
const GNU_CTIME: std::ops::Range<usize> = 357..369;
const GNU_SPARSE: usize = 386;
const GNU_ISEXTENDED: usize = 482;
const GNU_REALSIZE: std::ops::Range<usize> = 483..495;

/// Bytes up to the first NUL.
fn text(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

/// A numeric field: octal digits (leading spaces or NULs, ending at a space or
/// NUL), or GNU base-256 (first byte 0x80 positive, 0xff negative).
pub(crate) fn number(b: &[u8]) -> Result<i64, &'static str> {
    match b.first() {
        Some(&f) if f & 0x80 != 0 => {
            let negative = f == 0xff;
            let mut v: i64 = if negative { -1 } else { i64::from(f & 0x3f) };
            for &c in &b[1..] {
                v = v
                    .checked_mul(256)
                    .and_then(|v| v.checked_add(i64::from(c)))
                    .filter(|_| negative || v >= 0)
                    .ok_or("a base-256 number is too large")?;
            }
            Ok(v)
        }
        _ => {
            let digits = b.iter().skip_while(|&&c| c == b' ' || c == 0);
            let mut v: i64 = 0;
            for &c in digits.take_while(|&&c| c != b' ' && c != 0) {
                if !(b'0'..=b'7').contains(&c) {
                    return Err("a numeric field holds something other than octal digits");
                }
                v = v
                    .checked_mul(8)
                    .and_then(|v| v.checked_add(i64::from(c - b'0')))
                    .ok_or("an octal number is too large")?;
            }
            Ok(v)
        }
    }
}

fn unsigned(b: &[u8]) -> Result<u64, &'static str> {
    u64::try_from(number(b)?).map_err(|_| "a size or id is negative")
}

impl Header {
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
    }

    /// The stored checksum matches the block (summed unsigned, or signed as
    /// some old tars did), with the checksum field counted as spaces.
    pub fn checksum_ok(&self) -> bool {
        let Ok(want) = number(&self.0[CHKSUM]) else {
            return false;
        };
        let (mut u, mut s) = (0i64, 0i64);
        for (i, &b) in self.0.iter().enumerate() {
            let b = if CHKSUM.contains(&i) { b' ' } else { b };
            u += i64::from(b);
            s += i64::from(i8::from_ne_bytes([b]));
        }
        want == u || want == s
    }

    pub fn format(&self) -> Format {
        match &self.0[257..265] {
            b"ustar\x0000" | [b'u', b's', b't', b'a', b'r', 0, _, _] => Format::Ustar,
            b"ustar  \0" => Format::Gnu,
            _ => Format::V7,
        }
    }

    pub fn typeflag(&self) -> u8 {
        self.0[TYPEFLAG]
    }

    /// The name, with ustar's prefix in front.
    pub fn name(&self) -> Vec<u8> {
        let name = text(&self.0[NAME]);
        let prefix = text(&self.0[PREFIX]);
        if self.format() == Format::Ustar && !prefix.is_empty() {
            let mut p = prefix.to_vec();
            p.push(b'/');
            p.extend_from_slice(name);
            p
        } else {
            name.to_vec()
        }
    }

    pub fn linkname(&self) -> Vec<u8> {
        text(&self.0[LINKNAME]).to_vec()
    }

    pub fn mode(&self) -> Result<u16, &'static str> {
        Ok((unsigned(&self.0[MODE])? & 0o7777) as u16)
    }

    pub fn uid(&self) -> Result<u32, &'static str> {
        u32::try_from(unsigned(&self.0[UID])?).map_err(|_| "uid out of range")
    }

    pub fn gid(&self) -> Result<u32, &'static str> {
        u32::try_from(unsigned(&self.0[GID])?).map_err(|_| "gid out of range")
    }

    pub fn size(&self) -> Result<u64, &'static str> {
        unsigned(&self.0[SIZE])
    }

    pub fn mtime(&self) -> Result<Timestamp, &'static str> {
        Ok(Timestamp::from_secs(number(&self.0[MTIME])?))
    }

    /// Old GNU atime and ctime, when set.
    pub fn gnu_times(&self) -> (Option<Timestamp>, Option<Timestamp>) {
        if self.format() != Format::Gnu {
            return (None, None);
        }
        let t = |r: std::ops::Range<usize>| match number(&self.0[r]) {
            Ok(0) | Err(_) => None,
            Ok(s) => Some(Timestamp::from_secs(s)),
        };
        (t(GNU_ATIME), t(GNU_CTIME))
    }

    pub fn device(&self) -> Result<(u32, u32), &'static str> {
        if self.format() == Format::V7 {
            return Ok((0, 0));
        }
        let n = |r| u32::try_from(unsigned(&self.0[r])?).map_err(|_| "device number out of range");
        Ok((n(DEVMAJOR)?, n(DEVMINOR)?))
    }

    /// Old GNU sparse member (`S`): the header's map entries, whether extension
    /// blocks follow, and the real size.
    pub fn gnu_sparse(&self) -> Result<GnuSparse, &'static str> {
        Ok(GnuSparse {
            map: sparse_entries(&self.0[GNU_SPARSE..GNU_SPARSE + 4 * 24])?,
            extended: self.0[GNU_ISEXTENDED] != 0,
            real_size: unsigned(&self.0[GNU_REALSIZE])?,
        })
    }
}

/// An old GNU sparse header's map.
pub(crate) struct GnuSparse {
    /// (offset, numbytes) of the data stretches in the header.
    pub map: Vec<(u64, u64)>,
    /// More entries follow in extension blocks.
    pub extended: bool,
    /// The file's size.
    pub real_size: u64,
}

/// Entries of a GNU sparse map: (offset, numbytes) pairs of 12-byte numbers;
/// an all-NUL entry ends the list.
pub(crate) fn sparse_entries(b: &[u8]) -> Result<Vec<(u64, u64)>, &'static str> {
    let mut out = Vec::new();
    for e in b.chunks_exact(24) {
        if e[0] == 0 {
            break;
        }
        out.push((unsigned(&e[..12])?, unsigned(&e[12..])?));
    }
    Ok(out)
}

/// Pax records (`"<len> <key>=<value>\n"`), in order, values as bytes.
pub(crate) fn pax_records(data: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let sp = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or("a pax record has no length")?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("a pax record's length is not a number")?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err("a pax record's length does not match its text".into());
        }
        let rec = &rest[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&b| b == b'=')
            .ok_or("a pax record has no `=`")?;
        let key = String::from_utf8(rec[..eq].to_vec())
            .map_err(|_| "a pax record's key is not UTF-8".to_owned())?;
        out.push((key, rec[eq + 1..].to_vec()));
        rest = &rest[len..];
    }
    Ok(out)
}

/// A pax time: decimal seconds with an optional fraction (`-1.25` is 1.25 s
/// before the epoch).
pub(crate) fn pax_time(v: &[u8]) -> Option<Timestamp> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sec: i64 = int.parse().ok()?;
    let mut nsec: u32 = 0;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nsec += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
    }
    Some(match (neg, nsec) {
        (false, _) => Timestamp { sec, nsec },
        (true, 0) => Timestamp { sec: -sec, nsec: 0 },
        (true, n) => Timestamp {
            sec: -sec - 1,
            nsec: 1_000_000_000 - n,
        },
    })
}

/// A decimal pax number.
pub(crate) fn pax_u64(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(number(b"0000644\0"), Ok(0o644));
        assert_eq!(number(b"   755 \0"), Ok(0o755));
        assert_eq!(number(b"\0\0\0\0"), Ok(0));
        assert_eq!(number(&[0x80, 0, 0, 1, 0]), Ok(256));
        assert_eq!(number(&[0xff, 0xff, 0xff, 0xfe]), Ok(-2));
        assert!(number(b"12x4").is_err());
    }

    #[test]
    fn pax() {
        let r = pax_records(b"30 mtime=1700000000.123456789\n20 SCHILY.xattr.a=b\n").unwrap();
        assert_eq!(r[0].0, "mtime");
        assert_eq!(
            pax_time(&r[0].1),
            Some(Timestamp {
                sec: 1_700_000_000,
                nsec: 123_456_789
            })
        );
        assert_eq!(
            (r[1].0.as_str(), r[1].1.as_slice()),
            ("SCHILY.xattr.a", &b"b"[..])
        );
        assert!(pax_records(b"99 x=y\n").is_err());
        assert_eq!(
            pax_time(b"-1.25"),
            Some(Timestamp {
                sec: -2,
                nsec: 750_000_000
            })
        );
        assert_eq!(pax_time(b"5"), Some(Timestamp::from_secs(5)));
        assert_eq!(pax_time(b"x"), None);
    }
}
