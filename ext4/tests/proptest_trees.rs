//! Random trees (UTF-8 and 255-byte names, deep nesting, empty, holey and multi-group
//! files, big directories, hard links, every file type, xattrs, any block size), each
//! image checked by e2fsck and read back with ext4-view and debugfs.
//! PROPTEST_CASES raises the case count (default 256).
mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use common::{Expect, Scratch, verify};
use ext4fs_builder::{
    BlockSize, EntryKind, FileData, FsBuilder, Metadata, Options, TimePolicy, Timestamp,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Kind {
    Bytes(usize, u8),
    Holey(Vec<(u64, u16)>, u64),
    Dir,
    BigDir(usize),
    Symlink(String),
    Link(usize),
    Chr(u32, u32),
    Blk(u32, u32),
    Fifo,
    Socket,
}

#[derive(Debug, Clone)]
struct Item {
    parent: usize,
    name: String,
    kind: Kind,
    mode: u16,
    uid: u32,
    time: (i64, u32),
    xattrs: BTreeMap<String, Vec<u8>>,
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-zA-Z0-9_.-]{1,24}",
        2 => "[α-ωа-я一-龥ä-ü]{1,12}",
        1 => Just("n".repeat(255)),
        1 => Just(format!("{}a", "é".repeat(127))),
    ]
    .prop_filter("not . or ..", |n| n != "." && n != "..")
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        8 => (0usize..20_000, any::<u8>()).prop_map(|(n, b)| Kind::Bytes(n, b)),
        1 => (0usize..3, any::<u8>()).prop_map(|(n, b)| Kind::Bytes(n, b)),
        2 => (prop::collection::vec((0u64..4000, 1u16..3000), 1..12), 0u64..200_000).prop_map(|(r, t)| Kind::Holey(r, t)),
        6 => Just(Kind::Dir),
        1 => (100usize..700).prop_map(Kind::BigDir),
        2 => "[a-z/.]{1,120}".prop_map(Kind::Symlink),
        2 => any::<usize>().prop_map(Kind::Link),
        1 => (0u32..4096, 0u32..1_000_000).prop_map(|(a, b)| Kind::Chr(a, b)),
        1 => (0u32..300, 0u32..300).prop_map(|(a, b)| Kind::Blk(a, b)),
        1 => Just(Kind::Fifo),
        1 => Just(Kind::Socket),
    ]
}

fn item() -> impl Strategy<Value = Item> {
    (
        any::<usize>(),
        name(),
        kind(),
        0u16..0o7777,
        prop_oneof![Just(0u32), 1u32..70_000],
        (0i64..1_700_000_000, 0u32..1_000_000_000),
        prop::collection::btree_map(
            "user\\.[a-z]{1,12}|security\\.[a-z]{1,8}",
            prop::collection::vec(any::<u8>(), 0..300),
            0..3,
        ),
    )
        .prop_map(|(parent, name, kind, mode, uid, time, xattrs)| Item {
            parent,
            name,
            kind,
            mode,
            uid,
            time,
            xattrs,
        })
}

fn case() -> impl Strategy<Value = (BlockSize, bool, Vec<Item>)> {
    (
        prop_oneof![3 => Just(BlockSize::B1024), 1 => Just(BlockSize::B2048), 1 => Just(BlockSize::B4096)],
        any::<bool>(),
        prop::collection::vec(item(), 0..40),
        prop::option::weighted(0.04, 8_400_000usize..9_000_000),
    )
        .prop_map(|(bs, j, mut items, big)| {
            if let Some(n) = big {
                // A file larger than one 8 MiB group of 1 KiB blocks.
                items.push(Item {
                    parent: 0,
                    name: "multi-group".into(),
                    kind: Kind::Bytes(n, 3),
                    mode: 0o644,
                    uid: 0,
                    time: (5, 5),
                    xattrs: BTreeMap::new(),
                });
            }
            (bs, j, items)
        })
}

fn run((bs, journal, items): (BlockSize, bool, Vec<Item>)) {
    let scratch = Scratch::new("prop");
    let ts = 1_600_000_000;
    let mut b = FsBuilder::new(Options {
        block_size: bs,
        journal,
        times: TimePolicy::Clamp(ts),
        seed: Some(9),
        ..Options::default()
    });
    let mut ex: BTreeMap<String, Expect> = BTreeMap::new();
    let root_meta = Metadata::new(0o755, Timestamp::from_secs(ts));
    ex.insert(
        "/".into(),
        Expect {
            kind: EntryKind::Dir,
            meta: root_meta,
        },
    );
    ex.insert(
        "/lost+found".into(),
        Expect {
            kind: EntryKind::Dir,
            meta: Metadata::new(0o700, Timestamp::from_secs(ts)),
        },
    );
    let mut dirs = vec!["/".to_owned()];
    let mut files: Vec<String> = Vec::new();
    for (n, it) in items.into_iter().enumerate() {
        let parent = &dirs[it.parent % dirs.len()];
        let path = if parent == "/" {
            format!("/{}", it.name)
        } else {
            format!("{parent}/{}", it.name)
        };
        if ex.contains_key(&path) {
            continue;
        }
        let mut meta = Metadata::new(
            it.mode,
            Timestamp {
                sec: it.time.0,
                nsec: it.time.1,
            },
        );
        meta.uid = it.uid;
        meta.gid = it.uid / 2;
        meta.atime = Timestamp {
            sec: it.time.0 / 2,
            nsec: 7,
        };
        meta.xattrs = it.xattrs.into_iter().collect();
        let kind = match it.kind {
            Kind::Bytes(len, seed) => EntryKind::File(FileData::Bytes(
                (0..len)
                    .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                    .collect(),
            )),
            Kind::Holey(runs, tail) => {
                let host = scratch.path(&format!("holey{n}"));
                let f = std::fs::File::create(&host).unwrap();
                let mut end = 0;
                for (blk, len) in runs {
                    let off = blk * 4096;
                    f.write_all_at(&vec![(blk % 251) as u8 + 1; usize::from(len)], off)
                        .unwrap();
                    end = end.max(off + u64::from(len));
                }
                f.set_len(end + tail).unwrap();
                EntryKind::File(FileData::Path(host))
            }
            Kind::Dir => EntryKind::Dir,
            Kind::BigDir(count) => {
                b.add(&path, EntryKind::Dir, meta.clone()).unwrap();
                TimePolicy::Clamp(ts).apply_meta(&mut meta);
                ex.insert(
                    path.clone(),
                    Expect {
                        kind: EntryKind::Dir,
                        meta: meta.clone(),
                    },
                );
                for i in 0..count {
                    let p = format!("{path}/entry-{i:04}");
                    let m = Metadata::new(0o600, Timestamp::from_secs(i64::try_from(i).unwrap()));
                    b.add(&p, EntryKind::Fifo, m.clone()).unwrap();
                    ex.insert(
                        p,
                        Expect {
                            kind: EntryKind::Fifo,
                            meta: m,
                        },
                    );
                }
                dirs.push(path);
                continue;
            }
            Kind::Symlink(t) => EntryKind::Symlink(PathBuf::from(t)),
            Kind::Link(k) => {
                if files.is_empty() {
                    continue;
                }
                EntryKind::HardLink(files[k % files.len()].clone())
            }
            Kind::Chr(a, c) => EntryKind::CharDev { major: a, minor: c },
            Kind::Blk(a, c) => EntryKind::BlockDev { major: a, minor: c },
            Kind::Fifo => EntryKind::Fifo,
            Kind::Socket => EntryKind::Socket,
        };
        b.add(&path, kind.clone(), meta.clone()).unwrap();
        // Times after the build time are clamped to it, as every time is.
        TimePolicy::Clamp(ts).apply_meta(&mut meta);
        match kind {
            EntryKind::Dir => dirs.push(path.clone()),
            EntryKind::HardLink(_) => {}
            _ => files.push(path.clone()),
        }
        ex.insert(path, Expect { kind, meta });
    }
    let img = scratch.path("img");
    b.write(&img).unwrap();
    verify(&img, &ex);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256),
        max_shrink_iters: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_trees_are_valid_and_read_back(c in case()) {
        run(c);
    }
}
