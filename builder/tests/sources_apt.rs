//! `sources::fetch` + `sources::unpack` against the real `apt-get`: downloads
//! `busybox-static` into a fresh cache and unpacks it in Rust.
//!
//! Skips (with a message) only when `apt-get` is not installed.

mod common;

use std::path::Path;
use std::process::Command;

use common::have;
use imgbuild::sources::{self, Deb, FetchError, FetchEvent, PackageSpec};

fn have_apt() -> bool {
    let found = have("apt-get");
    if !found {
        eprintln!("SKIPPED: apt-get is not installed; the real-apt fetch test needs it");
    }
    found
}

#[test]
fn fetches_and_unpacks_busybox_static() {
    if !have_apt() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let spec: PackageSpec = "busybox-static".parse().unwrap();
    let mut events = Vec::new();
    let deb = sources::fetch(&spec, &cache, &mut |e| events.push(e.clone())).unwrap();
    let name = deb.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        name.starts_with("busybox-static_") && name.ends_with(".deb"),
        "{name}"
    );
    assert!(
        matches!(events.last(), Some(FetchEvent::Downloaded { .. })),
        "{events:?}"
    );
    let total = events.iter().find_map(|e| match e {
        FetchEvent::Started { total, .. } => *total,
        _ => None,
    });
    assert_eq!(total, Some(std::fs::metadata(&deb).unwrap().len()));

    let control = Deb::open(&deb).unwrap().control().unwrap();
    assert_eq!(control.package(), Some("busybox-static"));
    // The cached file is named for the exact version: pinning it hits the cache.
    let pinned = PackageSpec {
        name: "busybox-static".into(),
        version: control.version().map(str::to_owned),
    };
    let mut events = Vec::new();
    let again = sources::fetch(&pinned, &cache, &mut |e| events.push(e.clone())).unwrap();
    assert_eq!(again, deb);
    assert!(
        matches!(events.as_slice(), [FetchEvent::Cached { .. }]),
        "{events:?}"
    );

    let dest = tmp.path().join("root");
    let report = sources::unpack(&deb, &dest).unwrap();
    assert!(report.files >= 2, "{report:?}");
    let busybox = dest.join("bin/busybox");
    let bytes = std::fs::read(&busybox).unwrap();
    assert!(bytes.starts_with(b"\x7fELF"), "bin/busybox is not ELF");
    // It is the real static busybox: it runs and knows its applets.
    let out = Command::new(&busybox).arg("--list").output().unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        list.lines().any(|l| l == "sh") && list.lines().any(|l| l == "mount"),
        "{list}"
    );
    assert!(Path::new(&dest.join("usr/share/doc/busybox-static")).exists());
}

#[test]
fn missing_package_is_a_clear_error() {
    if !have_apt() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let spec: PackageSpec = "imgbuild-no-such-package-xyz".parse().unwrap();
    let err = sources::fetch(&spec, tmp.path(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, FetchError::NotFound { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("imgbuild-no-such-package-xyz") && msg.contains("Unable to locate package"),
        "{msg}"
    );
    // Nothing left behind in the cache.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
