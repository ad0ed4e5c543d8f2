//! Extended attributes: in the inode body (after the extra fields) and in one xattr block.

use crate::bytes::{put_u16, put_u32};
use crate::checksum::Checksum;
use crate::units::BlockNo;

pub(crate) const EXT4_XATTR_MAGIC: u32 = 0xEA02_0000;
/// Bytes available in a 256-byte inode after 128 + 32.
pub(crate) const IBODY_SPACE: usize = 256 - 128 - 32;
const BLOCK_HEADER: usize = 32;
/// The most inodes sharing one xattr block: the kernel shares a block no
/// further ("to reduce amount of damage caused by single bad block").
pub(crate) const EXT4_XATTR_REFCOUNT_MAX: u32 = 1024;
const ENTRY_HEADER: usize = 16;

/// Name prefixes and their `e_name_index`, longest first so `system.posix_acl_*` wins.
const PREFIXES: [(&str, u8); 6] = [
    ("system.posix_acl_access", 2),
    ("system.posix_acl_default", 3),
    ("user.", 1),
    ("trusted.", 4),
    ("security.", 6),
    ("system.", 7),
];

/// Splits a full attribute name into `(e_name_index, suffix)`.
pub(crate) fn split_name(name: &str) -> Option<(u8, &[u8])> {
    for (p, idx) in PREFIXES {
        if let Some(rest) = name.strip_prefix(p) {
            if (idx == 2 || idx == 3) && !rest.is_empty() {
                continue;
            }
            if (idx != 2 && idx != 3 && rest.is_empty()) || rest.len() > 255 {
                return None;
            }
            return Some((idx, rest.as_bytes()));
        }
    }
    None
}

fn pad4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// One attribute ready for placement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Attr {
    pub index: u8,
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

impl Attr {
    fn entry_size(&self) -> usize {
        pad4(ENTRY_HEADER + self.name.len())
    }
    fn value_size(&self) -> usize {
        pad4(self.value.len())
    }

    /// The full name, e.g. `user.mime_type`, as [`split_name`] took it apart.
    pub fn full_name(&self) -> String {
        let prefix = PREFIXES
            .iter()
            .find(|&&(_, idx)| idx == self.index)
            .map_or("", |&(p, _)| p);
        format!("{prefix}{}", String::from_utf8_lossy(&self.name))
    }
}

/// `ext4_xattr_hash_entry`: name then value words.
pub(crate) fn entry_hash(name: &[u8], value: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &c in name {
        h = (h << 5) ^ (h >> 27) ^ u32::from(c);
    }
    for w in value.chunks(4) {
        let mut word = [0u8; 4];
        word[..w.len()].copy_from_slice(w);
        h = (h << 16) ^ (h >> 16) ^ u32::from_le_bytes(word);
    }
    h
}

/// Converts names and sorts as the kernel does (index, name length, name).
pub(crate) fn prepare(xattrs: &[(String, Vec<u8>)]) -> Vec<Attr> {
    let mut v: Vec<Attr> = xattrs
        .iter()
        .filter_map(|(n, val)| {
            split_name(n).map(|(index, name)| Attr {
                index,
                name: name.to_vec(),
                value: val.clone(),
            })
        })
        .collect();
    v.sort_by(|a, b| (a.index, a.name.len(), &a.name).cmp(&(b.index, b.name.len(), &b.name)));
    v.dedup_by(|a, b| a.index == b.index && a.name == b.name);
    v
}

/// Splits attributes into those that fit in the inode body and the rest (for a block).
pub(crate) fn split_ibody(attrs: Vec<Attr>) -> (Vec<Attr>, Vec<Attr>) {
    // magic + terminating 4 zero bytes
    let mut used = 4 + 4;
    let mut ibody = Vec::new();
    let mut rest = Vec::new();
    for a in attrs {
        let need = a.entry_size() + a.value_size();
        if rest.is_empty() && used + need <= IBODY_SPACE {
            used += need;
            ibody.push(a);
        } else {
            rest.push(a);
        }
    }
    (ibody, rest)
}

/// Writes entries at `entries_off` and values downward from `end`; `base` is the offset
/// `e_value_offs` is measured from. Returns the per-entry hashes. In-inode entries get
/// `e_hash` 0 as libext2fs writes them (e2fsck and the kernel accept 0 there).
fn place(
    buf: &mut [u8],
    attrs: &[Attr],
    entries_off: usize,
    end: usize,
    base: usize,
    hash: bool,
) -> Vec<u32> {
    let mut e = entries_off;
    let mut v = end;
    let mut hashes = Vec::new();
    for a in attrs {
        v -= a.value_size();
        buf[v..v + a.value.len()].copy_from_slice(&a.value);
        let h = if hash {
            entry_hash(&a.name, &a.value)
        } else {
            0
        };
        buf[e] = a.name.len() as u8; // e_name_len
        buf[e + 1] = a.index; // e_name_index
        let offs = if a.value.is_empty() { 0 } else { v - base };
        put_u16(buf, e + 2, offs as u16); // e_value_offs
        put_u32(buf, e + 4, 0); // e_value_inum
        put_u32(buf, e + 8, a.value.len() as u32); // e_value_size
        put_u32(buf, e + 12, h); // e_hash
        buf[e + ENTRY_HEADER..e + ENTRY_HEADER + a.name.len()].copy_from_slice(&a.name);
        e += a.entry_size();
        hashes.push(h);
    }
    hashes
}

/// The in-inode area (`IBODY_SPACE` bytes) or empty when there is nothing to store.
pub(crate) fn ibody_bytes(attrs: &[Attr]) -> Vec<u8> {
    if attrs.is_empty() {
        return Vec::new();
    }
    let mut b = vec![0u8; IBODY_SPACE];
    put_u32(&mut b, 0, EXT4_XATTR_MAGIC);
    place(&mut b, attrs, 4, IBODY_SPACE, 4, false);
    b
}

/// The attribute that does not fit in one xattr block with those before it
/// (or alone, if one is that big), if any does not.
pub(crate) fn overflowing(attrs: &[Attr], block_size: u32) -> Option<&Attr> {
    let room = (block_size as usize).saturating_sub(BLOCK_HEADER + 4);
    let size = |a: &Attr| a.entry_size() + a.value_size();
    if let Some(a) = attrs.iter().find(|a| size(a) > room) {
        return Some(a);
    }
    let mut used = 0;
    attrs.iter().find(|a| {
        used += size(a);
        used > room
    })
}

/// An xattr block at block number `blk`, shared by `refcount` inodes, with
/// hash and checksum (which covers the block number, not an inode: the same
/// for every user).
pub(crate) fn block_bytes(
    attrs: &[Attr],
    block_size: u32,
    blk: BlockNo,
    csum_seed: u32,
    refcount: u32,
) -> Vec<u8> {
    let bs = block_size as usize;
    let mut b = vec![0u8; bs];
    put_u32(&mut b, 0, EXT4_XATTR_MAGIC); // h_magic
    put_u32(&mut b, 4, refcount); // h_refcount
    put_u32(&mut b, 8, 1); // h_blocks
    let hashes = place(&mut b, attrs, BLOCK_HEADER, bs, 0, true);
    let mut h: u32 = 0;
    for eh in hashes {
        h = (h << 16) ^ (h >> 16) ^ eh;
    }
    put_u32(&mut b, 12, h); // h_hash
    let c = Checksum::with_seed(csum_seed)
        .update(&blk.0.to_le_bytes())
        .update(&b)
        .value();
    put_u32(&mut b, 16, c); // h_checksum
    b
}

/// Converts the VFS `system.posix_acl_*` value (version 2, 8-byte entries) to the ext4
/// on-disk form (version 1, 4-byte entries for *_OBJ/MASK/OTHER). Unknown input is kept.
pub(crate) fn acl_to_disk(v: &[u8]) -> Vec<u8> {
    if v.len() < 4 || (v.len() - 4) % 8 != 0 || v[..4] != 2u32.to_le_bytes() {
        return v.to_vec();
    }
    let mut out = 1u32.to_le_bytes().to_vec();
    for e in v[4..].chunks(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        out.extend_from_slice(&e[..4]);
        if tag == 0x02 || tag == 0x08 {
            out.extend_from_slice(&e[4..8]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::get_u32;

    #[test]
    fn names_split() {
        assert_eq!(split_name("user.x"), Some((1, &b"x"[..])));
        assert_eq!(
            split_name("security.capability"),
            Some((6, &b"capability"[..]))
        );
        assert_eq!(split_name("system.posix_acl_access"), Some((2, &b""[..])));
        assert_eq!(split_name("bogus.x"), None);
        assert_eq!(split_name("user."), None);
    }

    #[test]
    fn ibody_then_block() {
        let attrs = prepare(&[
            ("user.a".into(), vec![1; 10]),
            ("user.big".into(), vec![2; 200]),
        ]);
        let (ib, rest) = split_ibody(attrs);
        assert_eq!(ib.len(), 1);
        assert_eq!(rest.len(), 1);
        let body = ibody_bytes(&ib);
        assert_eq!(get_u32(&body, 0), EXT4_XATTR_MAGIC);
        assert_eq!(body[4], 1);
        let blk = block_bytes(&rest, 1024, BlockNo(77), 5, 3);
        assert_eq!(get_u32(&blk, 4), 3);
        let mut tmp = blk.clone();
        tmp[16..20].fill(0);
        let c = Checksum::with_seed(5)
            .update(&77u64.to_le_bytes())
            .update(&tmp)
            .value();
        assert_eq!(get_u32(&blk, 16), c);
        assert_eq!(get_u32(&blk, 32 + 12), entry_hash(b"big", &[2; 200]));
    }

    #[test]
    fn the_attribute_that_overflows() {
        let attrs = prepare(&[
            ("user.a".into(), vec![1; 400]),
            ("user.b".into(), vec![2; 400]),
            ("user.c".into(), vec![3; 400]),
        ]);
        assert_eq!(overflowing(&attrs, 4096), None);
        let at = overflowing(&attrs, 1024).map(Attr::full_name);
        assert_eq!(at.as_deref(), Some("user.c"));
        let big = prepare(&[
            ("user.a".into(), vec![1; 10]),
            ("trusted.z".into(), vec![2; 2000]),
        ]);
        let at = overflowing(&big, 1024).map(Attr::full_name);
        assert_eq!(at.as_deref(), Some("trusted.z"));
        let acl = prepare(&[("system.posix_acl_access".into(), vec![0; 2000])]);
        let at = overflowing(&acl, 1024).map(Attr::full_name);
        assert_eq!(at.as_deref(), Some("system.posix_acl_access"));
    }

    #[test]
    fn acl_conversion() {
        let mut v = 2u32.to_le_bytes().to_vec();
        v.extend_from_slice(&[1, 0, 6, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
        v.extend_from_slice(&[2, 0, 4, 0, 0xE8, 3, 0, 0]);
        assert_eq!(
            acl_to_disk(&v),
            vec![1, 0, 0, 0, 1, 0, 6, 0, 2, 0, 4, 0, 0xE8, 3, 0, 0]
        );
    }
}
