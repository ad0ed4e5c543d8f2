//! Filesystems whose group descriptor table does not fit in a group (1 KiB
//! blocks from ~768 GiB, 2 KiB from ~12 TiB) get `meta_bg`, as mke2fs gives
//! them: descriptors in the first, second and last group of each meta group,
//! no resize inode. Checked by e2fsck, dumpe2fs (against mke2fs) and debugfs
//! (ext4-view does not read meta_bg). A size that cannot be laid out says
//! what the limit is, never "at least <one block more>".
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Scratch, tool};
use ext4fs_builder::{
    BlockSize, EntryKind, Error, FileData, FsBuilder, Metadata, Options, SizeSpec, TimePolicy,
    Timestamp,
};

const TIB: u64 = 1 << 40;

fn dumpe2fs_h(img: &Path) -> BTreeMap<String, String> {
    let out = Command::new(tool("dumpe2fs"))
        .arg("-h")
        .arg(img)
        .output()
        .unwrap();
    assert!(out.status.success(), "dumpe2fs -h {}", img.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// From a full `dumpe2fs`: each listed group's "superblock at / Group
/// descriptor at" line (where its superblock and descriptor copies are).
fn copies(img: &Path, groups: &[u64]) -> BTreeMap<u64, String> {
    let out = Command::new(tool("dumpe2fs")).arg(img).output().unwrap();
    assert!(out.status.success(), "dumpe2fs {}", img.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut found = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        let Some(rest) = l.strip_prefix("Group ") else {
            continue;
        };
        let Some(g) = rest.split(':').next().and_then(|g| g.parse::<u64>().ok()) else {
            continue;
        };
        if groups.contains(&g) {
            let next = lines.next().unwrap_or("").trim();
            let line = if next.contains("superblock") || next.contains("Group descriptor") {
                next.to_owned()
            } else {
                "(none)".to_owned()
            };
            found.insert(g, line);
        }
    }
    found
}

fn opts(bs: BlockSize, size: u64) -> Options {
    Options {
        block_size: bs,
        size: SizeSpec::Fixed(size),
        seed: Some(11),
        times: TimePolicy::Force(1_700_000_000),
        ..Options::default()
    }
}

fn small_tree(b: &mut FsBuilder) -> Vec<(String, Vec<u8>)> {
    let files: Vec<(String, Vec<u8>)> = vec![
        ("/etc/hostname".into(), b"meta\n".to_vec()),
        ("/d/e/deep".into(), b"deep file\n".repeat(100)),
        (
            "/big".into(),
            (0..3u32 << 20).map(|i| (i % 253) as u8).collect(),
        ),
    ];
    for (p, data) in &files {
        let meta = Metadata::new(0o644, Timestamp::from_secs(1_700_000_000));
        b.add(p, EntryKind::File(FileData::Bytes(data.clone())), meta)
            .unwrap();
    }
    files
}

/// Builds a small tree at `size`, checks it with e2fsck, and
/// compares superblock facts and where the descriptor copies are with
/// mke2fs's for the same size (`theirs`: a mke2fs image of it, or none).
fn build_and_check(dir: &Path, bs: BlockSize, size: u64, theirs: Option<&Path>, groups: &[u64]) {
    let t = theirs.map(|t| (dumpe2fs_h(t), copies(t, groups)));
    // One image, with files (an empty one is the same geometry and copies, and each
    // e2fsck of a TiB image costs a minute here).
    let img = dir.join("ours.img");
    let mut b = FsBuilder::new(opts(bs, size));
    let files = small_tree(&mut b);
    let started = std::time::Instant::now();
    b.write(&img).unwrap();
    eprintln!("{size} bytes, {bs:?}: written in {:?}", started.elapsed());
    common::e2fsck(&img);
    let o = dumpe2fs_h(&img);
    let feats: Vec<&str> = o["Filesystem features"].split_whitespace().collect();
    assert!(feats.contains(&"meta_bg"), "{feats:?}");
    assert!(!feats.contains(&"resize_inode"), "{feats:?}");
    assert_eq!(o.get("Reserved GDT blocks"), None);
    if let Some((th, tc)) = &t {
        for key in [
            "Filesystem features",
            "Block count",
            "Inode count",
            "Blocks per group",
            "Inodes per group",
            "First meta block group",
        ] {
            assert_eq!(o.get(key), th.get(key), "{key} of {size} bytes, {bs:?}");
        }
        assert_eq!(&copies(&img, groups), tc, "{size} bytes, {bs:?}");
    }
    common::contents_intact(&img, &files);
    eprintln!(
        "{size} bytes, {bs:?}, {} files: e2fsck, dumpe2fs, debugfs agree",
        files.len()
    );
    std::fs::remove_file(&img).unwrap();
}

#[test]
fn one_tib_with_1k_blocks_is_meta_bg_as_mke2fs_makes_it() {
    let d = Scratch::new("meta1k");
    let size = TIB;
    let theirs = d.path("mke2fs.img");
    std::fs::File::create(&theirs)
        .unwrap()
        .set_len(size)
        .unwrap();
    let st = Command::new(tool("mke2fs"))
        .args(["-q", "-F", "-t", "ext4", "-b", "1024"])
        .arg(&theirs)
        .status()
        .unwrap();
    assert!(st.success());
    // Meta groups of 16: copies in groups 16m, 16m + 1 and 16m + 15, after
    // the superblock where there is one (group 81 = 5 * 16 + 1 = 3^4).
    let last = size / 1024 / 8192 - 1;
    let groups = [
        0,
        1,
        2,
        3,
        14,
        15,
        16,
        17,
        31,
        32,
        49,
        80,
        81,
        243,
        last - 1,
        last,
    ];
    build_and_check(&d.0, BlockSize::B1024, size, Some(&theirs), &groups);
}

/// A directory where a file of `size` bytes can be made (sparse): the
/// scratch directory's filesystem, else tmpfs, which holds any size.
fn room_for(size: u64, scratch: &Path) -> Option<PathBuf> {
    let candidates = [scratch.to_path_buf(), PathBuf::from("/dev/shm")];
    candidates.into_iter().find(|dir| {
        let probe = dir.join(format!("probe-{}", std::process::id()));
        let ok = std::fs::File::create(&probe)
            .and_then(|f| f.set_len(size))
            .is_ok();
        let _ = std::fs::remove_file(&probe);
        ok
    })
}

#[test]
fn seventeen_tib_with_2k_blocks_is_meta_bg() {
    let size = 17 * TIB;
    let bs = BlockSize::B2048;
    // The geometry, whatever the host can hold: mke2fs -b 2048 on 17 TiB
    // makes 9126805504 blocks and 285212672 inodes.
    let mut b = FsBuilder::new(opts(bs, size));
    let fit = b.check().unwrap();
    assert_eq!(
        (fit.blocks_count, fit.inodes_count),
        (9_126_805_504, 285_212_672)
    );
    if std::env::var_os("IMGBUILD_BIG_TESTS").is_none() {
        eprintln!("17 TiB: geometry checked; the write needs IMGBUILD_BIG_TESTS=1");
        return;
    }
    let d = Scratch::new("meta2k");
    let Some(dir) = room_for(size, &d.0) else {
        panic!("no filesystem here holds a sparse 17 TiB file (not even /dev/shm)");
    };
    let work = Scratch(dir.join(format!("ext4t-meta2k-{}", std::process::id())));
    std::fs::create_dir_all(&work.0).unwrap();
    let theirs = work.path("mke2fs.img");
    std::fs::File::create(&theirs)
        .unwrap()
        .set_len(size)
        .unwrap();
    let st = Command::new(tool("mke2fs"))
        .args(["-q", "-F", "-t", "ext4", "-b", "2048"])
        .arg(&theirs)
        .status()
        .unwrap();
    assert!(st.success());
    let last = size / 2048 / 16384 - 1;
    let groups = [0, 1, 2, 3, 30, 31, 32, 33, 63, 81, 97, 2187, last - 1, last];
    build_and_check(&work.0, bs, size, Some(&theirs), &groups);
}

#[test]
fn sizes_around_the_old_limit_build() {
    // Where the 1 KiB-block descriptor table outgrew group 0 (refused before,
    // as "too many inodes" or "at least <size + 1> bytes are needed").
    for size in [
        800u64 << 30,
        1010 << 30,
        1_099_386_122_240,
        TIB,
        TIB + (1 << 20),
        3 * TIB / 2,
    ] {
        let fit = FsBuilder::new(opts(BlockSize::B1024, size))
            .check()
            .unwrap_or_else(|e| panic!("{size} bytes, 1 KiB blocks: {e}"));
        assert!(fit.size_bytes == size, "{size}: {fit:?}");
    }
}

#[test]
fn a_size_beyond_the_limit_says_the_limit() {
    for (bs, size) in [
        (BlockSize::B4096, u64::MAX - 4095),
        (BlockSize::B4096, 1 << 60),
        (BlockSize::B1024, 1 << 60),
        (BlockSize::B2048, 1 << 60),
    ] {
        let err = FsBuilder::new(opts(bs, size)).check().unwrap_err();
        let msg = err.to_string();
        match err {
            Error::FsTooLarge {
                size_bytes,
                max_bytes,
            } => {
                assert_eq!(size_bytes, size);
                assert!(max_bytes < size, "{msg}");
                assert!(msg.contains(&format!("at most {max_bytes} bytes")), "{msg}");
                // The limit itself is a size the geometry accepts.
                let at_max = FsBuilder::new(Options {
                    size: SizeSpec::Fixed(max_bytes + u64::from(bs.bytes())),
                    ..opts(bs, size)
                })
                .check();
                assert!(
                    matches!(at_max, Err(Error::FsTooLarge { .. })),
                    "one block beyond {max_bytes}: {at_max:?}"
                );
            }
            e => panic!("{size} bytes, {bs:?}: {e}"),
        }
    }
}
