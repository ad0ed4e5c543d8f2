//! Finding the root device named by `root=`: a device path, or `LABEL=` /
//! `UUID=` matched against the ext4 superblocks of the block devices in
//! `/sys/class/block`.

use crate::sys::Sys;
use guest_contract::cmdline::RootSpec;

/// Byte offset of the ext4 superblock on the device.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
/// Bytes of the superblock we read (up to and including `s_volume_name`).
pub const SUPERBLOCK_READ: usize = 0x88;
/// `EXT4_SUPER_MAGIC`.
pub const EXT4_SUPER_MAGIC: u16 = 0xEF53;

/// The identity fields of an ext2/3/4 superblock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuperblockId {
    /// `s_uuid` (offset 0x68).
    pub s_uuid: [u8; 16],
    /// `s_volume_name` (offset 0x78), NUL-trimmed.
    pub s_volume_name: String,
}

/// Reads the identity of an ext4 superblock; `None` if `s_magic` (0x38) is wrong.
pub fn parse_superblock(sb: &[u8]) -> Option<SuperblockId> {
    let magic = u16::from_le_bytes(sb.get(0x38..0x3A)?.try_into().ok()?);
    if magic != EXT4_SUPER_MAGIC {
        return None;
    }
    let s_uuid: [u8; 16] = sb.get(0x68..0x78)?.try_into().ok()?;
    let name = sb.get(0x78..0x88)?;
    let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
    let s_volume_name = String::from_utf8_lossy(name.get(..end)?).into_owned();
    Some(SuperblockId {
        s_uuid,
        s_volume_name,
    })
}

/// The device node for `spec`, if it exists now.
pub fn find<S: Sys>(sys: &S, spec: &RootSpec) -> Option<String> {
    match spec {
        RootSpec::Path(p) => sys.exists(p).then(|| p.clone()),
        RootSpec::Label(_) | RootSpec::Uuid(_) => {
            let names = sys.read_dir("/sys/class/block").ok()?;
            names.into_iter().find_map(|name| {
                let dev = format!("/dev/{name}");
                let sb = sys.read_at(&dev, SUPERBLOCK_OFFSET, SUPERBLOCK_READ).ok()?;
                let id = parse_superblock(&sb)?;
                let hit = match spec {
                    RootSpec::Label(l) => &id.s_volume_name == l,
                    RootSpec::Uuid(u) => &id.s_uuid == u,
                    RootSpec::Path(_) => false,
                };
                hit.then_some(dev)
            })
        }
    }
}

#[cfg(test)]
pub(crate) fn fake_superblock(label: &str, uuid: [u8; 16]) -> Vec<u8> {
    let mut dev = vec![0u8; 4096];
    let sb = &mut dev[1024..2048];
    sb[0x38..0x3A].copy_from_slice(&EXT4_SUPER_MAGIC.to_le_bytes());
    sb[0x68..0x78].copy_from_slice(&uuid);
    sb[0x78..0x78 + label.len()].copy_from_slice(label.as_bytes());
    dev
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;

    #[test]
    fn label_and_uuid_lookup() {
        let mut sys = FakeSys::new();
        sys.paths.insert("/sys/class/block/vda".into());
        sys.paths.insert("/sys/class/block/vdb".into());
        sys.add_file("/dev/vda", &[0u8; 4096]); // not ext4
        sys.add_file("/dev/vdb", &fake_superblock("busybox-root", [7; 16]));
        assert_eq!(
            find(&sys, &RootSpec::Label("busybox-root".into())).as_deref(),
            Some("/dev/vdb")
        );
        assert_eq!(
            find(&sys, &RootSpec::Uuid([7; 16])).as_deref(),
            Some("/dev/vdb")
        );
        assert_eq!(find(&sys, &RootSpec::Uuid([8; 16])), None);
        assert_eq!(find(&sys, &RootSpec::Label("other".into())), None);
        assert_eq!(
            find(&sys, &RootSpec::Path("/dev/vda".into())).as_deref(),
            Some("/dev/vda")
        );
        assert_eq!(find(&sys, &RootSpec::Path("/dev/xvda".into())), None);
    }

    #[test]
    fn superblock_fields() {
        let dev = fake_superblock("r", [1; 16]);
        let id = parse_superblock(&dev[1024..1024 + SUPERBLOCK_READ]).unwrap();
        assert_eq!(id.s_volume_name, "r");
        assert!(parse_superblock(&[0u8; 0x88]).is_none());
        assert!(parse_superblock(&[0u8; 10]).is_none());
    }
}
