//! Our superblock advertises what `mke2fs -t ext4` does (dumpe2fs -h), resize_inode
//! and its reserved GDT blocks included, and our image of a tree allocates no more
//! than `mke2fs -d` of the same tree.
mod common;

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use common::{Scratch, tool};
use ext4fs_builder::{BlockSize, FsBuilder, Options, SizeSpec};

fn dumpe2fs(img: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    let out = Command::new(tool("dumpe2fs"))
        .arg("-h")
        .arg(img)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

#[test]
fn same_features_and_layout_parameters_as_mke2fs() {
    let d = Scratch::new("parity");
    let src = d.path("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..50 {
        std::fs::write(src.join(format!("sub/f{i}")), vec![i as u8; i * 1000]).unwrap();
    }
    let theirs = d.path("mke2fs.img");
    std::fs::File::create(&theirs)
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let st = Command::new(tool("mke2fs"))
        .args(["-q", "-F", "-t", "ext4", "-b", "4096", "-d"])
        .arg(&src)
        .arg(&theirs)
        .status()
        .unwrap();
    assert!(st.success());
    let ours = d.path("ours.img");
    let mut b = FsBuilder::new(Options {
        size: SizeSpec::Fixed(256 << 20),
        seed: Some(3),
        ..Options::default()
    });
    b.add_tree(&src, "/").unwrap();
    b.write(&ours).unwrap();
    common::e2fsck(&ours);

    let (t, o) = (dumpe2fs(&theirs), dumpe2fs(&ours));
    let feats = |m: &std::collections::BTreeMap<String, String>| {
        let mut v: Vec<String> = m["Filesystem features"]
            .split_whitespace()
            .filter(|f| !matches!(*f, "orphan_file" | "metadata_csum_seed"))
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    };
    assert_eq!(feats(&o), feats(&t));
    for key in [
        "Filesystem flags",
        "Default mount options",
        "Filesystem state",
        "Errors behavior",
        "Filesystem OS type",
        "Block count",
        "Reserved GDT blocks",
        "Block size",
        "Group descriptor size",
        "Blocks per group",
        "Flex block group size",
        "First inode",
        "Inode size",
        "Required extra isize",
        "Desired extra isize",
        "Journal inode",
        "Default directory hash",
        "Journal backup",
        "Checksum type",
        "Total journal size",
        "Journal sequence",
        "Journal start",
        "Maximum mount count",
    ] {
        assert_eq!(o.get(key), t.get(key), "{key}");
    }
    // Sparse: we allocate no more disk than mke2fs does for the same tree.
    let (ma, oa) = (
        std::fs::metadata(&theirs).unwrap().blocks(),
        std::fs::metadata(&ours).unwrap().blocks(),
    );
    assert!(oa <= ma, "ours allocates {oa} sectors, mke2fs {ma}");
}

/// `dumpe2fs -h` of `mke2fs -t ext4 -F -b BS <extra>` on an empty file of `size` bytes.
fn mke2fs_empty(
    d: &Scratch,
    size: u64,
    bs: u32,
    extra: &[&str],
) -> std::collections::BTreeMap<String, String> {
    let img = d.path(&format!("mke2fs-{size}-{bs}-{}.img", extra.join("_")));
    std::fs::File::create(&img).unwrap().set_len(size).unwrap();
    let bs_arg = bs.to_string();
    let out = Command::new(tool("mke2fs"))
        .args(["-q", "-F", "-t", "ext4", "-b", &bs_arg])
        .args(extra)
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = dumpe2fs(&img);
    std::fs::remove_file(&img).unwrap();
    m
}

/// `dumpe2fs -h` of our empty image of `size` bytes under `opts`, checked by e2fsck.
fn ours_empty(d: &Scratch, size: u64, opts: Options) -> std::collections::BTreeMap<String, String> {
    let img = d.path(&format!("ours-{size}.img"));
    let b = FsBuilder::new(Options {
        size: SizeSpec::Fixed(size),
        seed: Some(3),
        ..opts
    });
    b.write(&img).unwrap();
    common::e2fsck(&img);
    let m = dumpe2fs(&img);
    std::fs::remove_file(&img).unwrap();
    m
}

const GEOMETRY_KEYS: [&str; 4] = [
    "Inode count",
    "Inodes per group",
    "Block count",
    "Blocks per group",
];

#[test]
fn inode_count_follows_mke2fs_size_classes() {
    // mke2fs.conf: floppy (< 3 MiB) 8192 bytes per inode, small (< 512 MiB)
    // 4096, default 16384.
    let d = Scratch::new("classes");
    for (size, bs) in [
        (2u64 << 20, BlockSize::B1024),
        (2 << 20, BlockSize::B4096),
        (3 << 20, BlockSize::B4096),
        (64 << 20, BlockSize::B1024),
        (64 << 20, BlockSize::B4096),
        (511 << 20, BlockSize::B1024),
        (511 << 20, BlockSize::B2048),
        (511 << 20, BlockSize::B4096),
        (512 << 20, BlockSize::B4096),
        (1 << 30, BlockSize::B1024),
        (1 << 30, BlockSize::B4096),
        ((1 << 30) + (1 << 20), BlockSize::B4096),
    ] {
        let theirs = mke2fs_empty(&d, size, bs.bytes(), &[]);
        let ours = ours_empty(
            &d,
            size,
            Options {
                block_size: bs,
                ..Options::default()
            },
        );
        for key in GEOMETRY_KEYS {
            assert_eq!(
                ours.get(key),
                theirs.get(key),
                "{key} of {size} bytes, {bs:?}"
            );
        }
    }
}

#[test]
fn inode_ratio_and_count_give_what_mke2fs_gives() {
    use ext4fs_builder::InodeSpec::{BytesPerInode, Count};
    let d = Scratch::new("inodeflags");
    for (size, bs, spec, flags) in [
        (
            64u64 << 20,
            BlockSize::B4096,
            BytesPerInode(4096),
            ["-i", "4096"],
        ),
        (
            64 << 20,
            BlockSize::B4096,
            BytesPerInode(65536),
            ["-i", "65536"],
        ),
        (
            64 << 20,
            BlockSize::B1024,
            BytesPerInode(1024),
            ["-i", "1024"],
        ),
        // More inodes than 32768 a group: smaller groups, as mke2fs makes them.
        (
            64 << 20,
            BlockSize::B4096,
            BytesPerInode(1024),
            ["-i", "1024"],
        ),
        (64 << 20, BlockSize::B4096, Count(1000), ["-N", "1000"]),
        (64 << 20, BlockSize::B4096, Count(100_000), ["-N", "100000"]),
        (64 << 20, BlockSize::B1024, Count(5), ["-N", "5"]),
        (
            1 << 30,
            BlockSize::B4096,
            Count(1_000_000),
            ["-N", "1000000"],
        ),
        (2 << 20, BlockSize::B1024, Count(300), ["-N", "300"]),
        (
            511 << 20,
            BlockSize::B2048,
            BytesPerInode(8192),
            ["-i", "8192"],
        ),
    ] {
        let theirs = mke2fs_empty(&d, size, bs.bytes(), &flags);
        let ours = ours_empty(
            &d,
            size,
            Options {
                block_size: bs,
                inodes: spec,
                ..Options::default()
            },
        );
        for key in GEOMETRY_KEYS {
            assert_eq!(
                ours.get(key),
                theirs.get(key),
                "{key}: {flags:?} on {size}, {bs:?}"
            );
        }
    }
}
