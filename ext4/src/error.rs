//! Errors, grouped by who is at fault.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while planning or writing an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- the caller asked for something impossible ----
    /// An image path is malformed.
    #[error("invalid image path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A name component is longer than 255 bytes.
    #[error("name too long ({len} bytes, max 255) at {path:?}")]
    NameTooLong {
        /// The full path.
        path: String,
        /// Length of the offending component.
        len: usize,
    },
    /// A hard link points at nothing or at a directory.
    #[error("hard link {path:?} -> {target:?}: {reason}")]
    BadHardLink {
        /// The link's path.
        path: String,
        /// Its target.
        target: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An extended attribute name has no known prefix or is too long.
    #[error("extended attribute {name:?} on {path:?}: {reason}")]
    BadXattr {
        /// The entry's path.
        path: String,
        /// The attribute name.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A symlink target is longer than one block.
    #[error("symlink target of {path:?} is {len} bytes, more than one block")]
    SymlinkTooLong {
        /// The link's path.
        path: String,
        /// Target length.
        len: usize,
    },
    /// The volume label is longer than 16 bytes.
    #[error("volume label {label:?} is longer than 16 bytes")]
    BadLabel {
        /// The label.
        label: String,
    },
    /// A file does not fit the ext4 limits.
    #[error("file {path:?} is too large for ext4 with this block size")]
    FileTooLarge {
        /// The file's image path.
        path: String,
    },

    // ---- capacity ----
    /// The contents need more space than the fixed size gives.
    #[error("contents do not fit in {size_bytes} bytes: at least {needed_bytes} bytes are needed")]
    TooSmall {
        /// The size asked for.
        size_bytes: u64,
        /// The smallest size that fits.
        needed_bytes: u64,
    },
    /// More inodes are needed than the size can hold.
    #[error(
        "too many inodes: {needed} needed but a {size_bytes}-byte filesystem holds at most {max}"
    )]
    TooManyInodes {
        /// Inodes needed.
        needed: u64,
        /// Inodes possible.
        max: u64,
        /// The filesystem size.
        size_bytes: u64,
    },
    /// The filesystem would exceed ext4's limits.
    #[error("filesystem of {size_bytes} bytes is beyond ext4 limits")]
    FsTooLarge {
        /// The size asked for.
        size_bytes: u64,
    },

    // ---- the source tree ----
    /// A source file or directory could not be read.
    #[error("cannot read source {path:?}: {source}")]
    SourceRead {
        /// The host path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A source changed between planning and writing.
    #[error("source {path:?} changed while being read: planned {expected} bytes, found {actual}")]
    SourceChanged {
        /// The host path.
        path: PathBuf,
        /// Size when planned.
        expected: u64,
        /// Size seen while copying.
        actual: u64,
    },
    /// A source is of a type that cannot be stored.
    #[error("source {path:?} has an unsupported file type")]
    UnsupportedSource {
        /// The host path.
        path: PathBuf,
    },

    // ---- the output ----
    /// Writing the image failed.
    #[error("cannot write image {path:?}: {source}")]
    Output {
        /// The image (or temp) path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}
