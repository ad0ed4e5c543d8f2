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
    /// [`crate::Options::inodes`] is out of range whatever the size.
    #[error("invalid inode setting ({spec}): {reason}")]
    BadInodeSpec {
        /// The setting.
        spec: crate::InodeSpec,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A file does not fit the ext4 limits.
    #[error("file {path:?} is too large for ext4 with this block size")]
    FileTooLarge {
        /// The file's image path.
        path: String,
    },

    // ---- capacity ----
    /// The contents need more space than the fixed size gives.
    #[error(
        "contents do not fit in {size_bytes} bytes: at least {needed_bytes} bytes are needed{}",
        no_journal_note(*.no_journal_below)
    )]
    TooSmall {
        /// The size asked for.
        size_bytes: u64,
        /// The smallest size from `size_bytes` up that fits, in whole
        /// blocks: it builds, one block less does not.
        needed_bytes: u64,
        /// `Some(n)` when a journal was asked for but an image of
        /// `needed_bytes` has none: it is under `n` bytes, too small for one
        /// (fewer than 2048 blocks, as mke2fs).
        no_journal_below: Option<u64>,
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
    #[error(
        "filesystem of {size_bytes} bytes is beyond ext4's limits: with this block size at most {max_bytes} bytes"
    )]
    FsTooLarge {
        /// The size asked for.
        size_bytes: u64,
        /// The biggest filesystem of this block size: as many groups as
        /// there can be (one inode-table block each, 2^32 inodes in all).
        max_bytes: u64,
    },
    /// A size that cannot be laid out, whatever the contents: not a
    /// [`Error::TooSmall`], whose bigger size would be no remedy.
    #[error("a filesystem of {size_bytes} bytes cannot be laid out: {reason}")]
    CannotLayOut {
        /// The size asked for.
        size_bytes: u64,
        /// Why.
        reason: &'static str,
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
    /// A tar archive is corrupt, truncated, or of a kind that is not read.
    #[error("tar archive, {}at byte {offset}: {reason}", member_text(.member))]
    BadTar {
        /// The member concerned (its name as far as it was read), if known.
        member: Option<String>,
        /// Byte offset in the (uncompressed) archive of the header or data concerned.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Reading a tar archive failed.
    #[error("cannot read tar archive at byte {offset}: {source}")]
    TarRead {
        /// Bytes read before the error.
        offset: u64,
        /// The I/O error.
        source: io::Error,
    },
    /// The temporary file holding a tar archive's contents could not be made or written.
    #[error("cannot spool tar contents to a temporary file in {dir:?}: {source}")]
    Spool {
        /// The temporary directory.
        dir: PathBuf,
        /// The I/O error.
        source: io::Error,
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

/// The end of [`Error::TooSmall`]'s message: that the image will have no journal.
fn no_journal_note(no_journal_below: Option<u64>) -> String {
    match no_journal_below {
        Some(n) => format!(" (and will have no journal: that needs at least {n} bytes)"),
        None => String::new(),
    }
}

/// `member "x" ` for a [`Error::BadTar`] message, or nothing.
fn member_text(member: &Option<String>) -> String {
    match member {
        Some(m) => format!("member {m:?} "),
        None => String::new(),
    }
}
