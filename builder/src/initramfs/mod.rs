//! The initramfs: a cpio "newc" archive written by us, then gzip.
//!
//! [`Record`]s (name, mode, owner, mtime, device number, link count, data)
//! go into an [`Archive`], which writes them reproducibly: sorted, parents
//! explicit, deduplicated, inodes numbered in order, one fixed mtime, and
//! every header's declared size checked against the bytes written.
//!
//! ```
//! use imgbuild::initramfs::{Archive, Record};
//! let mut a = Archive::new(0);
//! a.add(Record::file("/init", 0o755, b"#!/bin/sh\n".to_vec()))?;
//! a.add(Record::char_dev("/dev/console", 0o600, 5, 1))?;
//! let gz: Vec<u8> = a.write_gzip(Vec::new(), 9)?;
//! assert_eq!(&gz[..2], &[0x1f, 0x8b]);
//! # Ok::<(), imgbuild::initramfs::CpioError>(())
//! ```

pub mod archive;
pub mod newc;
pub mod record;
pub mod writer;

pub use archive::{Archive, Encoding, normalize_name};
pub use record::{Contents, Record};
pub use writer::{CpioError, NewcWriter};
