//! Compressed module files: `.ko.xz`, `.ko.zst` and `.ko.gz` to plain ELF bytes.
//!
//! The compression is recognised by its magic bytes, so a file whose name and
//! contents disagree is still read correctly; the name is only a fallback for
//! the error message.

use std::io::Read;
use std::path::{Path, PathBuf};

/// How a module file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain ELF object (`.ko`).
    None,
    /// xz (`.ko.xz`, `CONFIG_MODULE_COMPRESS_XZ`).
    Xz,
    /// Zstandard (`.ko.zst`, `CONFIG_MODULE_COMPRESS_ZSTD`).
    Zstd,
    /// gzip (`.ko.gz`, `CONFIG_MODULE_COMPRESS_GZIP`).
    Gzip,
}

const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];

impl Compression {
    /// Recognises the compression from the first bytes of a file.
    pub fn detect(bytes: &[u8]) -> Compression {
        if bytes.starts_with(XZ_MAGIC) {
            Compression::Xz
        } else if bytes.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else if bytes.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else {
            Compression::None
        }
    }

    /// The compression a file name's suffix announces (`.xz`, `.zst`, `.gz`).
    pub fn from_path(path: &Path) -> Compression {
        match path.extension().and_then(|e| e.to_str()) {
            Some("xz") => Compression::Xz,
            Some("zst") => Compression::Zstd,
            Some("gz") => Compression::Gzip,
            _ => Compression::None,
        }
    }
}

/// A module file could not be read or decompressed.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    /// The file could not be read.
    #[error("cannot read module {path}: {source}")]
    Read {
        /// The module file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The compressed stream is corrupt or truncated.
    #[error("cannot decompress {what} ({compression:?}): {message}")]
    Corrupt {
        /// The module file (or `<memory>`).
        what: String,
        /// The compression that was tried.
        compression: Compression,
        /// What the decompressor said.
        message: String,
    },
}

/// Decompresses `bytes` (any of the supported formats, recognised by magic;
/// plain ELF is returned unchanged). `what` names the data in errors.
pub fn decompress(bytes: &[u8], what: &str) -> Result<Vec<u8>, DecompressError> {
    let compression = Compression::detect(bytes);
    let corrupt = |e: std::io::Error| DecompressError::Corrupt {
        what: what.to_owned(),
        compression,
        message: e.to_string(),
    };
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(3));
    match compression {
        Compression::None => return Ok(bytes.to_vec()),
        Compression::Xz => {
            xz2::read::XzDecoder::new_multi_decoder(bytes)
                .read_to_end(&mut out)
                .map_err(corrupt)?;
        }
        Compression::Gzip => {
            flate2::read::MultiGzDecoder::new(bytes)
                .read_to_end(&mut out)
                .map_err(corrupt)?;
        }
        Compression::Zstd => {
            let mut dec = ruzstd::decoding::StreamingDecoder::new(bytes).map_err(|e| {
                DecompressError::Corrupt {
                    what: what.to_owned(),
                    compression,
                    message: e.to_string(),
                }
            })?;
            dec.read_to_end(&mut out).map_err(corrupt)?;
        }
    }
    Ok(out)
}

/// Reads a module file and returns its plain ELF bytes.
pub fn read_module(path: &Path) -> Result<Vec<u8>, DecompressError> {
    let bytes = std::fs::read(path).map_err(|source| DecompressError::Read {
        path: path.to_owned(),
        source,
    })?;
    decompress(&bytes, &path.display().to_string())
}

/// The file name a module gets once decompressed: `a.ko.xz` → `a.ko`.
pub fn plain_name(path: &str) -> &str {
    [".xz", ".zst", ".gz"]
        .iter()
        .find_map(|s| path.strip_suffix(s).filter(|p| p.ends_with(".ko")))
        .unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const PLAIN: &[u8] = b"\x7fELF pretend module body, repeated repeated repeated";

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut enc = xz2::write::XzEncoder::new(Vec::new(), 6);
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn zst(data: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
    }

    #[test]
    fn every_format_round_trips() {
        for (packed, c) in [
            (xz(PLAIN), Compression::Xz),
            (gz(PLAIN), Compression::Gzip),
            (zst(PLAIN), Compression::Zstd),
            (PLAIN.to_vec(), Compression::None),
        ] {
            assert_eq!(Compression::detect(&packed), c);
            assert_eq!(decompress(&packed, "m").unwrap(), PLAIN, "{c:?}");
        }
    }

    #[test]
    fn files_are_read_by_magic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("virtio_net.ko.zst");
        std::fs::write(&p, zst(PLAIN)).unwrap();
        assert_eq!(Compression::from_path(&p), Compression::Zstd);
        assert_eq!(read_module(&p).unwrap(), PLAIN);
    }

    #[test]
    fn truncated_stream_is_an_error_naming_the_file() {
        let mut packed = xz(PLAIN);
        packed.truncate(packed.len() / 2);
        let err = decompress(&packed, "kernel/x.ko.xz").unwrap_err();
        assert!(err.to_string().contains("kernel/x.ko.xz"), "{err}");
        assert!(matches!(
            err,
            DecompressError::Corrupt {
                compression: Compression::Xz,
                ..
            }
        ));
        let err = read_module(Path::new("/nonexistent/y.ko")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/y.ko"), "{err}");
    }

    #[test]
    fn plain_names() {
        assert_eq!(plain_name("kernel/a.ko.xz"), "kernel/a.ko");
        assert_eq!(plain_name("a.ko.zst"), "a.ko");
        assert_eq!(plain_name("a.ko"), "a.ko");
        assert_eq!(plain_name("notes.gz"), "notes.gz");
    }
}
