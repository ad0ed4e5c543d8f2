//! Tar archives as `imgbuild mkfs` and a recipe's `[rootfs] base` take them:
//! plain, gzip, xz or zstd, told apart by their first bytes (not by the file
//! name), decompressed as a stream for `ext4fs_builder::FsBuilder::add_tar`.

use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::Path;

/// How an archive is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not at all.
    None,
    /// gzip (`.tar.gz`, `.tgz`).
    Gzip,
    /// xz (`.tar.xz`).
    Xz,
    /// zstd (`.tar.zst`).
    Zstd,
}

/// Why a file is not a tar archive imgbuild reads.
#[derive(Debug, thiserror::Error)]
pub enum TarballError {
    /// The file could not be opened or read.
    #[error("cannot read {what}: {source}")]
    Read {
        /// The file, or "standard input".
        what: String,
        /// The I/O error.
        source: io::Error,
    },
    /// Compressed in a way imgbuild does not decompress.
    #[error(
        "{what} is {kind}-compressed, which imgbuild does not read: decompress it, or recompress it with gzip, xz or zstd"
    )]
    Unsupported {
        /// The file.
        what: String,
        /// The compression.
        kind: &'static str,
    },
    /// No tar header where one must be.
    #[error("{what} is not a tar archive{}", inside(*.compression))]
    NotTar {
        /// The file.
        what: String,
        /// What it was compressed with.
        compression: Compression,
    },
}

fn inside(c: Compression) -> &'static str {
    match c {
        Compression::None => " (nor gzip, xz or zstd data)",
        Compression::Gzip => " (it is gzip data, but what it holds is not a tar archive)",
        Compression::Xz => " (it is xz data, but what it holds is not a tar archive)",
        Compression::Zstd => " (it is zstd data, but what it holds is not a tar archive)",
    }
}

/// The compression `head` (the first bytes of a file) starts with.
pub fn sniff(head: &[u8]) -> Result<Compression, &'static str> {
    Ok(match head {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => Compression::Xz,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        [b'B', b'Z', b'h', ..] => return Err("bzip2"),
        [0x04, 0x22, 0x4d, 0x18, ..] => return Err("lz4"),
        [0x5d, 0, 0, ..] => return Err("lzma"),
        _ => Compression::None,
    })
}

/// True if a 512-byte block is a tar header: ustar magic, or a valid checksum
/// (old v7 archives have no magic), or all zeros (an empty archive).
fn is_tar_header(b: &[u8]) -> bool {
    if b.len() < 512 {
        return false;
    }
    if b[..512].iter().all(|&c| c == 0) || &b[257..262] == b"ustar" {
        return true;
    }
    let stored = std::str::from_utf8(&b[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == ' ' || c == '\0'))
        .and_then(|s| u32::from_str_radix(s, 8).ok());
    let sum: u32 = b[..512]
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(c)
            }
        })
        .sum();
    stored == Some(sum)
}

/// Reads up to `n` bytes from `r` (fewer only at its end).
fn head(r: &mut dyn Read, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The uncompressed tar stream of `input` (a file, or standard input when
/// `path` is `-`), checked to start with a tar header; and its compression.
pub fn open(path: &Path) -> Result<(Box<dyn Read>, Compression), TarballError> {
    let (what, input): (String, Box<dyn Read>) = if path == Path::new("-") {
        ("standard input".to_owned(), Box::new(io::stdin().lock()))
    } else {
        let what = path.display().to_string();
        let f = File::open(path).map_err(|source| TarballError::Read {
            what: what.clone(),
            source,
        })?;
        (what, Box::new(f))
    };
    from_reader(input, &what)
}

/// [`open`] for a stream already open; `what` names it in errors.
pub fn from_reader(
    mut input: Box<dyn Read>,
    what: &str,
) -> Result<(Box<dyn Read>, Compression), TarballError> {
    let read_err = |source| TarballError::Read {
        what: what.to_owned(),
        source,
    };
    let start = head(&mut input, 512).map_err(read_err)?;
    let compression = sniff(&start).map_err(|kind| TarballError::Unsupported {
        what: what.to_owned(),
        kind,
    })?;
    let raw: Box<dyn Read> = Box::new(Cursor::new(start).chain(input));
    let mut plain: Box<dyn Read> = match compression {
        Compression::None => raw,
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Compression::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(raw)),
        Compression::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(raw)
                .map_err(|e| read_err(io::Error::new(io::ErrorKind::InvalidData, e)))?,
        ),
    };
    let first = head(&mut plain, 512).map_err(read_err)?;
    if !is_tar_header(&first) {
        return Err(TarballError::NotTar {
            what: what.to_owned(),
            compression,
        });
    }
    Ok((Box::new(Cursor::new(first).chain(plain)), compression))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_bytes() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_path("hello").unwrap();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &b"hi\n"[..]).unwrap();
        b.into_inner().unwrap()
    }

    fn read_all(data: Vec<u8>) -> Result<(Vec<u8>, Compression), TarballError> {
        let (mut r, c) = from_reader(Box::new(Cursor::new(data)), "x")?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        Ok((out, c))
    }

    #[test]
    fn told_by_content() {
        let plain = tar_bytes();
        assert_eq!(
            read_all(plain.clone()).unwrap(),
            (plain.clone(), Compression::None)
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &plain).unwrap();
        assert_eq!(read_all(gz.finish().unwrap()).unwrap().1, Compression::Gzip);
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
        io::Write::write_all(&mut xz, &plain).unwrap();
        let (out, c) = read_all(xz.finish().unwrap()).unwrap();
        assert_eq!((out == plain, c), (true, Compression::Xz));
        let zst = ruzstd::encoding::compress_to_vec(
            &plain[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let (out, c) = read_all(zst).unwrap();
        assert_eq!((out == plain, c), (true, Compression::Zstd));
    }

    #[test]
    fn refusals_say_what_the_file_is() {
        let e = read_all(b"hello, not a tar".to_vec())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("x is not a tar archive (nor gzip, xz or zstd data)"),
            "{e}"
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &[7u8; 2000]).unwrap();
        let e = read_all(gz.finish().unwrap()).unwrap_err().to_string();
        assert!(
            e.contains("it is gzip data, but what it holds is not a tar archive"),
            "{e}"
        );
        let e = read_all(b"BZh91AY&SY".to_vec()).unwrap_err().to_string();
        assert!(e.contains("bzip2-compressed"), "{e}");
    }
}
