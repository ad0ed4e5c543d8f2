//! The initramfs's contents ([`plan`]), and writing a [`Plan`] with the initramfs writer
//! ([`crate::initramfs`]): cpio newc + gzip, reproducible, through a temp
//! file renamed into place.
//!
//! gzip runs at level 6, not 9: on Debian's modules level 9 costs seven
//! times the CPU for under 1 % smaller output, and this step is most of a
//! cached build's time.

use std::path::Path;

use crate::initramfs::{Archive, CpioError, Encoding, Record};
use crate::kmods::ModuleSet;
use crate::rootfs::{Node, Plan};

/// gzip level for `initrd.img`.
pub const GZIP_LEVEL: u32 = 6;

/// The initramfs could not be written.
#[derive(Debug, thiserror::Error)]
#[error("initrd.img: {0}")]
pub struct InitramfsOutError(#[from] pub CpioError);

/// Writes `plan` as a gzip-compressed cpio newc archive at `path`, every
/// mtime `epoch`; returns its size in bytes.
pub fn write(plan: &Plan, epoch: i64, path: &Path) -> Result<u64, InitramfsOutError> {
    let mut a = Archive::new(u64::try_from(epoch).unwrap_or(0));
    for (name, e) in plan.iter() {
        if name == "/" {
            continue;
        }
        let perm = u32::from(e.mode);
        let mut rec = match &e.node {
            Node::Dir => Record::dir(name, perm),
            Node::Bytes(b) => Record::file(name, perm, b.clone()),
            Node::HostFile(p) => {
                Record::host_file(name, perm, p).map_err(|source| CpioError::Output {
                    path: p.clone(),
                    source,
                })?
            }
            Node::HostTree { src, .. } => {
                a.add(Record::dir(name, perm))?;
                a.add_host_tree(src, name)?;
                continue;
            }
            Node::Symlink(t) => Record::symlink(name, t),
            Node::CharDev(ma, mi) => Record::char_dev(name, perm, *ma, *mi),
            Node::BlockDev(ma, mi) => Record::block_dev(name, perm, *ma, *mi),
            Node::Fifo => Record::fifo(name, perm),
        };
        rec.uid = e.uid;
        rec.gid = e.gid;
        a.add(rec)?;
    }
    Ok(a.write_file(path, Encoding::Gzip(GZIP_LEVEL))?)
}

/// The initramfs contents: `/init`, its config, the block-driver modules
/// with a `modules.dep`, and the directories and console the kernel and
/// stage 1 need.
pub fn plan(init: &[u8], conf: &str, kver: &str, modules: &ModuleSet) -> Plan {
    let mut p = Plan::new();
    for d in ["/dev", "/proc", "/sys", "/newroot", "/etc/imgbuild"] {
        p.add(d, Node::Dir, 0o755);
    }
    p.add("/dev/console", Node::CharDev(5, 1), 0o600);
    p.add("/init", Node::Bytes(init.to_vec()), 0o755);
    p.add(
        "/etc/imgbuild/init.conf",
        Node::Bytes(conf.as_bytes().to_vec()),
        0o644,
    );
    let kdir = format!("/lib/modules/{kver}");
    p.add(&kdir, Node::Dir, 0o755);
    for m in &modules.files {
        p.add(
            &format!("{kdir}/{}", m.rel),
            Node::Bytes(m.bytes.clone()),
            0o644,
        );
    }
    p.add(
        &format!("{kdir}/modules.dep"),
        Node::Bytes(modules.modules_dep.as_bytes().to_vec()),
        0o644,
    );
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initramfs_plan_has_what_stage_1_needs() {
        let p = plan(
            b"ELF",
            "stage = 1\n",
            "6.1.0-9-amd64",
            &ModuleSet::fake(&["kernel/drivers/block/virtio_blk.ko"]),
        );
        assert_eq!(p.get("/init").unwrap().node, Node::Bytes(b"ELF".to_vec()));
        assert_eq!(p.get("/init").unwrap().mode, 0o755);
        assert_eq!(p.get("/dev/console").unwrap().node, Node::CharDev(5, 1));
        assert!(p.get("/etc/imgbuild/init.conf").is_some());
        assert!(
            p.get("/lib/modules/6.1.0-9-amd64/kernel/drivers/block/virtio_blk.ko")
                .is_some()
        );
        assert_eq!(
            p.get("/lib/modules/6.1.0-9-amd64/modules.dep")
                .unwrap()
                .node,
            Node::Bytes(b"kernel/drivers/block/virtio_blk.ko:\n".to_vec())
        );
    }
}
