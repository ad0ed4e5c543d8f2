//! Random host trees read by the directory walker: source times with nanoseconds
//! under every `TimePolicy`, paths past PATH_MAX (a chain of 200-byte names),
//! hard links, symlinks, fifos and owners. Each image is checked by e2fsck and
//! read back with debugfs (every entry) and ext4-view (every entry whose path
//! fits its 4096-byte limit, and every listing). PROPTEST_CASES raises the case count (default 48).
mod common;

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use common::{Expect, Scratch, e2fsck, verify_debugfs, verify_ext4_view};
use ext4fs_builder::{
    EntryKind, FileData, FsBuilder, Metadata, Options, OwnerPolicy, TimePolicy, Timestamp,
};
use proptest::prelude::*;
use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};

#[derive(Debug, Clone)]
enum Kind {
    Bytes(usize, u8),
    Dir,
    Symlink(String),
    Link(usize),
    Fifo,
}

#[derive(Debug, Clone)]
struct Item {
    parent: usize,
    name: String,
    kind: Kind,
    mode: u16,
    owner: u32,
    atime: (i64, u32),
    mtime: (i64, u32),
}

/// Times from 1970 to 2100, some after the clamp time, with any nanoseconds.
fn time() -> impl Strategy<Value = (i64, u32)> {
    (0i64..4_100_000_000, 0u32..1_000_000_000)
}

fn item() -> impl Strategy<Value = Item> {
    let kind = prop_oneof![
        6 => (0usize..9000, any::<u8>()).prop_map(|(n, b)| Kind::Bytes(n, b)),
        4 => Just(Kind::Dir),
        2 => "[a-z/.]{1,90}".prop_map(Kind::Symlink),
        2 => any::<usize>().prop_map(Kind::Link),
        1 => Just(Kind::Fifo),
    ];
    (
        any::<usize>(),
        prop_oneof![3 => "[a-zA-Z0-9_.-]{1,20}", 1 => Just("L".repeat(255))],
        kind,
        0u16..0o7777,
        prop_oneof![Just(0u32), 1u32..70_000],
        time(),
        time(),
    )
        .prop_filter("not . or ..", |t| t.1 != "." && t.1 != "..")
        .prop_map(|(parent, name, kind, mode, owner, atime, mtime)| Item {
            parent,
            name,
            kind,
            mode,
            owner,
            atime,
            mtime,
        })
}

#[derive(Debug, Clone, Copy)]
enum Policy {
    Keep,
    Clamp,
    Force,
}

const T: i64 = 1_600_000_000;

fn case() -> impl Strategy<Value = (Policy, usize, Vec<Item>)> {
    (
        prop_oneof![Just(Policy::Keep), Just(Policy::Clamp), Just(Policy::Force)],
        // 0: no deep chain; 21 or 24 names of 200 bytes: 4,221 or 4,824 bytes.
        prop_oneof![Just(0usize), Just(21), Just(24)],
        prop::collection::vec(item(), 0..30),
    )
}

fn stamps(a: (i64, u32), m: (i64, u32)) -> Timestamps {
    let ts = |(s, n): (i64, u32)| Timespec {
        tv_sec: s,
        tv_nsec: i64::from(n),
    };
    Timestamps {
        last_access: ts(a),
        last_modification: ts(m),
    }
}

/// One directory made on the host: its descriptor and its image path.
struct HostDir {
    fd: OwnedFd,
    path: String,
    /// The parent's index and this directory's name in it (none for the top).
    name: Option<(usize, String)>,
    times: ((i64, u32), (i64, u32)),
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The times of `name` in `dir` as the host has them now.
fn host_meta(dir: &OwnedFd, name: &str) -> Metadata {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).unwrap();
    let t = |s: i64, n: u64| Timestamp {
        sec: s,
        nsec: u32::try_from(n).unwrap(),
    };
    let mut m = Metadata::new(
        (st.st_mode & 0o7777) as u16,
        t(st.st_mtime, st.st_mtime_nsec),
    );
    m.atime = t(st.st_atime, st.st_atime_nsec);
    m.ctime = t(st.st_ctime, st.st_ctime_nsec);
    m.uid = st.st_uid;
    m.gid = st.st_gid;
    m
}

/// ext4-view 1.0 refuses an inode whose 32-bit seconds field has its top bit
/// set (any time from 2038 on; the kernel and e2fsprogs read it as the low half
/// of a 34-bit time), and every path through it. Times that `Keep` would keep
/// stay before 2038 here; `times.rs` checks later ones with debugfs.
fn before_2038(t: (i64, u32)) -> (i64, u32) {
    (t.0 % 0x8000_0000, t.1)
}

fn run((policy, depth, mut items): (Policy, usize, Vec<Item>)) {
    if matches!(policy, Policy::Keep) {
        for it in &mut items {
            it.atime = before_2038(it.atime);
            it.mtime = before_2038(it.mtime);
        }
    }
    let scratch = Scratch::new("hostprop");
    let src = scratch.path("src");
    std::fs::create_dir(&src).unwrap();
    let root = rustix::process::geteuid().is_root();
    let top = rustix::fs::open(&src, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    let mut dirs = vec![HostDir {
        fd: top,
        path: "/".into(),
        name: None,
        times: ((1_000_000_000, 1), (1_000_000_000, 2)),
    }];
    // The deep chain, each level below the one before.
    for level in 0..u32::try_from(depth).unwrap() {
        let name = format!("{level:02}{}", "d".repeat(198));
        let up = dirs.len() - 1;
        let parent = &dirs[up];
        rustix::fs::mkdirat(&parent.fd, name.as_str(), Mode::from_raw_mode(0o750)).unwrap();
        let fd = rustix::fs::openat(
            &parent.fd,
            name.as_str(),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        let path = join(&parent.path, &name);
        let t = (1_500_000_000 + i64::from(level), level);
        dirs.push(HostDir {
            fd,
            path,
            name: Some((up, name)),
            times: (t, (t.0 + 1, t.1 + 1)),
        });
    }
    if depth > 0 {
        assert!(dirs.last().unwrap().path.len() > 4096);
    }

    // Entries: (dir index, name, item); files kept for hard links.
    let mut made: BTreeMap<String, (usize, String, Item)> = BTreeMap::new();
    let mut files: Vec<(usize, String)> = Vec::new();
    for it in items {
        // Half the entries go into the deepest directory when there is a chain.
        let d = if depth > 0 && it.parent % 2 == 0 {
            dirs.len() - 1
        } else {
            it.parent % dirs.len()
        };
        let path = join(&dirs[d].path, &it.name);
        if made.contains_key(&path) || dirs.iter().any(|x| x.path == path) {
            continue;
        }
        let fd = &dirs[d].fd;
        let name = it.name.as_str();
        let mut new_dir = None;
        // Not root: keep what the test itself must read and enter.
        let mode = match (&it.kind, root) {
            (_, true) => it.mode,
            (Kind::Dir, false) => it.mode | 0o700,
            (_, false) => it.mode | 0o600,
        };
        let mode = Mode::from_raw_mode(u32::from(mode));
        match &it.kind {
            Kind::Bytes(n, b) => {
                let f =
                    rustix::fs::openat(fd, name, OFlags::WRONLY | OFlags::CREATE, mode).unwrap();
                rustix::io::write(&f, &vec![*b; *n]).unwrap();
                files.push((d, it.name.clone()));
            }
            Kind::Dir => {
                rustix::fs::mkdirat(fd, name, Mode::from_raw_mode(0o700)).unwrap();
                let sub =
                    rustix::fs::openat(fd, name, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
                        .unwrap();
                new_dir = Some(HostDir {
                    fd: sub,
                    path: path.clone(),
                    name: Some((d, it.name.clone())),
                    times: (it.atime, it.mtime),
                });
            }
            Kind::Symlink(t) => rustix::fs::symlinkat(t.as_str(), fd, name).unwrap(),
            Kind::Link(i) => {
                if files.is_empty() {
                    continue;
                }
                let (td, tn) = &files[i % files.len()];
                rustix::fs::linkat(&dirs[*td].fd, tn.as_str(), fd, name, AtFlags::empty()).unwrap();
            }
            Kind::Fifo => {
                rustix::fs::mknodat(fd, name, rustix::fs::FileType::Fifo, mode, 0).unwrap()
            }
        }
        if !matches!(it.kind, Kind::Symlink(_) | Kind::Link(_)) {
            rustix::fs::chmodat(fd, name, mode, AtFlags::empty()).unwrap();
        }
        if root && !matches!(it.kind, Kind::Link(_)) {
            let id = rustix::process::Uid::from_raw(it.owner);
            let gid = rustix::process::Gid::from_raw(it.owner / 2);
            rustix::fs::chownat(fd, name, Some(id), Some(gid), AtFlags::SYMLINK_NOFOLLOW).unwrap();
        }
        dirs.extend(new_dir);
        made.insert(path, (d, it.name.clone(), it));
    }
    // Times last, leaves first, so no later change moves them.
    for (d, name, it) in made.values() {
        if !matches!(it.kind, Kind::Dir | Kind::Link(_)) {
            let t = stamps(it.atime, it.mtime);
            rustix::fs::utimensat(&dirs[*d].fd, name.as_str(), &t, AtFlags::SYMLINK_NOFOLLOW)
                .unwrap();
        }
    }
    for d in dirs.iter().rev() {
        let (a, m) = d.times;
        rustix::fs::utimensat(&d.fd, "", &stamps(a, m), AtFlags::EMPTY_PATH).unwrap();
    }

    // What the image must hold, read from the host before the build reads it.
    let times = match policy {
        Policy::Keep => TimePolicy::Keep,
        Policy::Clamp => TimePolicy::Clamp(T),
        Policy::Force => TimePolicy::Force(T),
    };
    let mut ex: BTreeMap<String, Expect> = BTreeMap::new();
    let finish = |mut m: Metadata| {
        m.crtime = m.mtime;
        times.apply_meta(&mut m);
        m
    };
    for d in &dirs {
        let m = match &d.name {
            Some((up, name)) => host_meta(&dirs[*up].fd, name),
            None => host_meta(&d.fd, "."),
        };
        ex.insert(
            d.path.clone(),
            Expect {
                kind: EntryKind::Dir,
                meta: finish(m),
            },
        );
    }
    let mut first_name: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for (path, (d, name, it)) in &made {
        if matches!(it.kind, Kind::Dir) {
            continue;
        }
        let fd = &dirs[*d].fd;
        let st = rustix::fs::statat(fd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW).unwrap();
        let meta = finish(host_meta(fd, name));
        let key = (st.st_dev, st.st_ino);
        let kind = if let Some(first) = first_name.get(&key) {
            EntryKind::HardLink(first.clone())
        } else {
            first_name.insert(key, path.clone());
            match rustix::fs::FileType::from_raw_mode(st.st_mode) {
                rustix::fs::FileType::RegularFile => {
                    let f = rustix::fs::openat(fd, name.as_str(), OFlags::RDONLY, Mode::empty())
                        .unwrap();
                    let mut buf = vec![0u8; st.st_size as usize];
                    let n = rustix::io::read(&f, &mut buf).unwrap();
                    assert_eq!(n, buf.len());
                    EntryKind::File(FileData::Bytes(buf))
                }
                rustix::fs::FileType::Symlink => {
                    let t = rustix::fs::readlinkat(fd, name.as_str(), Vec::new()).unwrap();
                    EntryKind::Symlink(PathBuf::from(t.to_str().unwrap()))
                }
                _ => EntryKind::Fifo,
            }
        };
        ex.insert(path.clone(), Expect { kind, meta });
    }
    // Reading a file or a link above may have moved its atime (relatime): the
    // expected times were taken before, the build's stat comes after. Put the
    // host's times back so the walker sees what the map says.
    for (d, name, it) in made.values() {
        if !matches!(it.kind, Kind::Dir | Kind::Link(_)) {
            let t = stamps(it.atime, it.mtime);
            rustix::fs::utimensat(&dirs[*d].fd, name.as_str(), &t, AtFlags::SYMLINK_NOFOLLOW)
                .unwrap();
        }
    }
    // utimensat moved every ctime: take them again.
    for (path, (d, name, it)) in &made {
        if !matches!(it.kind, Kind::Dir) {
            let c = host_meta(&dirs[*d].fd, name).ctime;
            let e = ex.get_mut(path).unwrap();
            let target = match &e.kind {
                EntryKind::HardLink(t) => t.clone(),
                _ => path.clone(),
            };
            ex.get_mut(&target).unwrap().meta.ctime = times.apply(c);
        }
    }

    let mut b = FsBuilder::new(Options {
        times,
        owner: OwnerPolicy::Keep,
        seed: Some(5),
        ..Options::default()
    });
    b.add_tree(&src, "/").unwrap();
    let built = b.build_time();
    ex.insert(
        "/lost+found".into(),
        Expect {
            kind: EntryKind::Dir,
            meta: Metadata::new(0o700, built),
        },
    );
    let img = scratch.path("img");
    b.write(&img).unwrap();
    drop(dirs);

    e2fsck(&img);
    verify_debugfs(&img, &ex);
    verify_ext4_view(&img, &ex);
    remove_deep(&src);
}

/// `remove_dir_all` stops at PATH_MAX: unlink the deep chain a level at a time.
fn remove_deep(dir: &Path) {
    fn clear(fd: &OwnedFd) {
        let entries: Vec<(String, bool)> = {
            let d = rustix::fs::Dir::read_from(fd).unwrap();
            d.filter_map(Result::ok)
                .map(|e| {
                    (
                        e.file_name().to_str().unwrap().to_owned(),
                        e.file_type() == rustix::fs::FileType::Directory,
                    )
                })
                .filter(|(n, _)| n != "." && n != "..")
                .collect()
        };
        for (name, is_dir) in entries {
            if is_dir {
                let sub = rustix::fs::openat(
                    fd,
                    name.as_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY,
                    Mode::empty(),
                )
                .unwrap();
                clear(&sub);
                rustix::fs::unlinkat(fd, name.as_str(), AtFlags::REMOVEDIR).unwrap();
            } else {
                rustix::fs::unlinkat(fd, name.as_str(), AtFlags::empty()).unwrap();
            }
        }
    }
    let fd = rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    clear(&fd);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(48),
        max_shrink_iters: 100,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_host_trees_keep_times_and_long_paths(c in case()) {
        run(c);
    }
}
