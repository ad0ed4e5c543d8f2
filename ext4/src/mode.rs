//! The file-type bits of `i_mode` (`S_IF*`, as in the kernel's `stat.h`) and which
//! node kind each stands for.

use crate::tree::NodeKind;

pub(crate) const S_IFIFO: u16 = 0o010000;
pub(crate) const S_IFCHR: u16 = 0o020000;
pub(crate) const S_IFDIR: u16 = 0o040000;
pub(crate) const S_IFBLK: u16 = 0o060000;
pub(crate) const S_IFREG: u16 = 0o100000;
pub(crate) const S_IFLNK: u16 = 0o120000;
pub(crate) const S_IFSOCK: u16 = 0o140000;

/// File-type bits for a node.
pub(crate) fn type_bits(kind: &NodeKind) -> u16 {
    match kind {
        NodeKind::File { .. } => S_IFREG,
        NodeKind::Dir { .. } => S_IFDIR,
        NodeKind::Symlink(_) => S_IFLNK,
        NodeKind::CharDev { .. } => S_IFCHR,
        NodeKind::BlockDev { .. } => S_IFBLK,
        NodeKind::Fifo => S_IFIFO,
        NodeKind::Socket => S_IFSOCK,
    }
}
