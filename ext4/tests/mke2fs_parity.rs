//! Our superblock advertises what `mke2fs -t ext4` does (dumpe2fs -h), minus
//! resize_inode (we reserve no GDT blocks for online growth), and our image of a tree
//! allocates no more than `mke2fs -d` of the same tree.
mod common;

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use common::{Scratch, tool};
use ext4fs_builder::{FsBuilder, Options, SizeSpec};

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
            .filter(|f| !matches!(*f, "resize_inode" | "orphan_file" | "metadata_csum_seed"))
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
