//! Times under each `TimePolicy`, read back with ext4-view and debugfs: `Keep`
//! keeps every source time (atime, mtime, ctime with nanoseconds; crtime = mtime),
//! `Clamp(T)` turns only the later ones into T, `Force(T)` makes every time T
//! (root, lost+found and the superblock included).
mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{Scratch, debugfs};
use ext4fs_builder::{EntryKind, FileData, FsBuilder, Metadata, Options, TimePolicy, Timestamp};
use rustix::fs::{AtFlags, Timespec, Timestamps};

fn ts(sec: i64, nsec: i64) -> Timestamp {
    Timestamp {
        sec,
        nsec: nsec as u32,
    }
}

/// A host tree whose files have set atimes and mtimes (with nanoseconds): `old`
/// (2001), `mixed` (atime 2001, mtime 2030) and a directory `d` (2010).
fn tree(d: &Scratch) -> std::path::PathBuf {
    let src = d.path("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("old"), b"old").unwrap();
    std::fs::write(src.join("mixed"), b"mixed").unwrap();
    std::os::unix::fs::symlink("old", src.join("d/link")).unwrap();
    let set = |p: &str, a: (i64, i64), m: (i64, i64)| {
        let t = Timestamps {
            last_access: Timespec {
                tv_sec: a.0,
                tv_nsec: a.1,
            },
            last_modification: Timespec {
                tv_sec: m.0,
                tv_nsec: m.1,
            },
        };
        rustix::fs::utimensat(rustix::fs::CWD, src.join(p), &t, AtFlags::SYMLINK_NOFOLLOW).unwrap();
    };
    set("old", (1_000_000_001, 111), (1_000_000_002, 222_222_222));
    set("mixed", (1_000_000_003, 333), (1_900_000_000, 999_999_999));
    set("d/link", (1_100_000_000, 5), (1_100_000_001, 6));
    set("d", (1_200_000_000, 7), (1_200_000_001, 8));
    src
}

/// (atime, mtime, ctime) of a host path, not following symlinks.
fn host_times(p: &Path) -> (Timestamp, Timestamp, Timestamp) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (
        ts(m.atime(), m.atime_nsec()),
        ts(m.mtime(), m.mtime_nsec()),
        ts(m.ctime(), m.ctime_nsec()),
    )
}

/// (atime, mtime, ctime, crtime) of an image path, by debugfs (raw seconds and nsec).
fn image_times(img: &Path, paths: &[&str]) -> Vec<[Timestamp; 4]> {
    let cmds: Vec<String> = paths.iter().map(|p| format!("stat {p}")).collect();
    debugfs(img, &cmds)
        .iter()
        .map(|out| {
            let get = |key: &str| {
                let raw = out
                    .lines()
                    .find_map(|l| l.trim_start().strip_prefix(key))
                    .and_then(|r| r.split_whitespace().next())
                    .unwrap_or_else(|| panic!("no {key} in {out}"));
                let (lo, extra) = raw.split_once(':').unwrap();
                let lo = u32::from_str_radix(lo.trim_start_matches("0x"), 16).unwrap();
                let extra = u32::from_str_radix(extra, 16).unwrap();
                let sec =
                    i64::from(i32::from_ne_bytes(lo.to_ne_bytes())) + (i64::from(extra & 3) << 32);
                ts(sec, i64::from(extra >> 2))
            };
            [get("atime:"), get("mtime:"), get("ctime:"), get("crtime:")]
        })
        .collect()
}

/// The superblock's s_wtime.
fn s_wtime(img: &Path) -> u32 {
    let b = std::fs::read(img).unwrap();
    u32::from_le_bytes(b[1024 + 0x30..1024 + 0x34].try_into().unwrap())
}

fn build(src: &Path, img: &Path, times: TimePolicy) -> Timestamp {
    let mut b = FsBuilder::new(Options {
        times,
        seed: Some(3),
        ..Options::default()
    });
    b.add_tree(src, "/").unwrap();
    // An entry given with its own times goes through the policy too.
    let mut m = Metadata::new(0o644, ts(1_950_000_000, 42));
    m.atime = ts(1_000_000_000, 1);
    b.add("/given", EntryKind::File(FileData::Bytes(b"g".to_vec())), m)
        .unwrap();
    let built = b.build_time();
    b.write(img).unwrap();
    common::e2fsck(img);
    built
}

const PATHS: [&str; 6] = ["/", "/old", "/mixed", "/d", "/d/link", "/lost+found"];

#[test]
fn keep_is_the_default_and_keeps_every_source_time() {
    let d = Scratch::new("keep");
    let src = tree(&d);
    assert_eq!(Options::default().times, TimePolicy::Keep);
    // Before the build: reading a symlink (readlink) sets its atime.
    let host: Vec<_> = ["", "old", "mixed", "d", "d/link"]
        .iter()
        .map(|p| host_times(&src.join(p)))
        .collect();
    let before = Timestamp::now();
    let img = d.path("keep.img");
    let built = build(&src, &img, Options::default().times);
    assert!(built >= before && built <= Timestamp::now(), "{built:?}");
    let got = image_times(&img, &PATHS);
    for (i, (a, m, c)) in host.into_iter().enumerate() {
        assert_eq!(got[i], [a, m, c, m], "times of {}", PATHS[i]);
    }
    assert_eq!(got[5], [built; 4], "lost+found at the build time");
    assert_eq!(i64::from(s_wtime(&img)), built.sec);
    // ext4-view agrees, with nanoseconds.
    let fs = ext4_view::Ext4::load_from_path(&img).unwrap();
    let m = fs.symlink_metadata("/mixed").unwrap();
    assert_eq!(
        (m.modified().seconds(), m.modified().nanoseconds()),
        (1_900_000_000, 999_999_999)
    );
    assert_eq!(
        (m.accessed().seconds(), m.accessed().nanoseconds()),
        (1_000_000_003, 333)
    );
    let g = fs.metadata("/given").unwrap();
    assert_eq!(
        (g.modified().seconds(), g.modified().nanoseconds()),
        (1_950_000_000, 42)
    );
}

#[test]
fn clamp_turns_only_later_times_into_the_epoch() {
    let d = Scratch::new("clamp");
    let src = tree(&d);
    let epoch = 1_500_000_000;
    let e = Timestamp::from_secs(epoch);
    let img = d.path("clamp.img");
    let link = host_times(&src.join("d/link"));
    assert_eq!(build(&src, &img, TimePolicy::Clamp(epoch)), e);
    let got = image_times(&img, &PATHS);
    // Source ctimes are now: clamped. Older atimes and mtimes stay, with nsec.
    let (a, m, _) = host_times(&src.join("old"));
    assert_eq!(got[1], [a, m, e, m], "/old");
    let (a, _, _) = host_times(&src.join("mixed"));
    assert_eq!(got[2], [a, e, e, e], "/mixed");
    let (a, m, _) = link;
    assert_eq!(got[4], [a, m, e, m], "/d/link");
    assert_eq!(got[5], [e; 4], "lost+found at the epoch");
    assert_eq!(i64::from(s_wtime(&img)), epoch);
    let fs = ext4_view::Ext4::load_from_path(&img).unwrap();
    let g = fs.metadata("/given").unwrap();
    assert_eq!(
        (g.modified().seconds(), g.modified().nanoseconds()),
        (epoch, 0)
    );
    assert_eq!(
        (g.accessed().seconds(), g.accessed().nanoseconds()),
        (1_000_000_000, 1)
    );
}

#[test]
fn force_makes_every_time_the_one_given() {
    let d = Scratch::new("force");
    let src = tree(&d);
    let t = Timestamp::from_secs(1_234_567_890);
    let img = d.path("force.img");
    assert_eq!(build(&src, &img, TimePolicy::Force(t.sec)), t);
    let mut paths = PATHS.to_vec();
    paths.push("/given");
    for (p, got) in paths.iter().zip(image_times(&img, &paths)) {
        assert_eq!(got, [t; 4], "{p}");
    }
    assert_eq!(i64::from(s_wtime(&img)), t.sec);
}

#[test]
fn times_after_2038_keep_their_epoch_bits() {
    let d = Scratch::new("y2038");
    let src = d.path("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("future"), b"f").unwrap();
    let t = Timestamps {
        // 2096 and 2049: epoch bits 0b01 (and, for 2096, the sign bit of the low half).
        last_access: Timespec {
            tv_sec: 4_000_000_000,
            tv_nsec: 5,
        },
        last_modification: Timespec {
            tv_sec: 2_500_000_000,
            tv_nsec: 999_999_999,
        },
    };
    rustix::fs::utimensat(rustix::fs::CWD, src.join("future"), &t, AtFlags::empty()).unwrap();
    let (a, m, c) = host_times(&src.join("future"));
    let img = d.path("y2038.img");
    build(&src, &img, TimePolicy::Keep);
    let got = image_times(&img, &["/future"]);
    assert_eq!(got[0], [a, m, c, m]);
    assert_eq!(a, ts(4_000_000_000, 5));
    assert_eq!(m, ts(2_500_000_000, 999_999_999));
}
