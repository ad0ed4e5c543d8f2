//! The library never reads `SOURCE_DATE_EPOCH`: with it set (to a number or to junk)
//! in the environment, `Options::default()` (`TimePolicy::Keep`) still builds at the
//! wall clock's time and `add_tree` keeps source times unclamped. Setting the variable inside a test would
//! race with other tests of the same process, so this file runs its check in a child
//! process of its own test binary with the variable set there.
mod common;

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use common::Scratch;
use ext4fs_builder::{FsBuilder, Options, Timestamp};

const CHILD: &str = "child_builds_ignoring_the_environment";

#[test]
fn source_date_epoch_in_the_environment_is_ignored() {
    for value in ["1000", "not-a-number"] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([CHILD, "--exact", "--ignored", "--nocapture"])
            .env("SOURCE_DATE_EPOCH", value)
            .output()
            .expect("run this test binary");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "SOURCE_DATE_EPOCH={value}: {}\n{stdout}\n{stderr}",
            out.status
        );
    }
}

#[test]
#[ignore = "run by source_date_epoch_in_the_environment_is_ignored, with SOURCE_DATE_EPOCH set"]
fn child_builds_ignoring_the_environment() {
    let env = std::env::var("SOURCE_DATE_EPOCH").expect("started with SOURCE_DATE_EPOCH set");
    let d = Scratch::new("sde");
    let src = d.path("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    let m = std::fs::metadata(src.join("f")).unwrap();
    assert!(m.mtime() > 1000, "host clock: mtime {}", m.mtime());

    let before = Timestamp::now();
    let mut b = FsBuilder::new(Options {
        seed: Some(1),
        ..Options::default()
    });
    let built = b.build_time();
    assert!(
        built >= before && built <= Timestamp::now(),
        "build time {built:?} is not now (SOURCE_DATE_EPOCH={env})"
    );
    b.add_tree(&src, "/").unwrap();
    let img = d.path("sde.img");
    b.write(&img).unwrap();
    common::e2fsck(&img);

    let fs = ext4_view::Ext4::load_from_path(&img).unwrap();
    let t = fs.metadata("/f").unwrap().modified();
    assert_eq!(
        (t.seconds(), t.nanoseconds()),
        (m.mtime(), m.mtime_nsec() as u32),
        "/f keeps its source mtime (SOURCE_DATE_EPOCH={env})"
    );
    let t = fs.metadata("/lost+found").unwrap().modified();
    assert_eq!(
        (t.seconds(), t.nanoseconds()),
        (built.sec, built.nsec),
        "lost+found at the build time"
    );
}
