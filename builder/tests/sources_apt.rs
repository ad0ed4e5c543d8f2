//! `sources` against the real `apt-get`: downloads `busybox-static` into a
//! fresh cache, checks the version and hash against apt's own tools
//! (`apt-cache policy`, `apt-cache show`), the cache's verification and
//! `--offline`, and unpacks it in Rust.
//!
//! Skips (with a message) only when `apt-get` is not installed.

mod common;

use std::path::Path;
use std::process::Command;

use common::{have, tool};
use imgbuild::sources::{self, Apt, Deb, FetchError, FetchEvent, PackageSpec};

fn have_apt() -> bool {
    let found = have("apt-get");
    if !found {
        eprintln!("SKIPPED: apt-get is not installed; the real-apt fetch test needs it");
    }
    found
}

/// `apt-cache policy PKG`'s `Candidate:`.
fn policy_candidate(pkg: &str) -> String {
    let out = tool("apt-cache", &["policy", pkg]);
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Candidate: "))
        .unwrap_or_else(|| panic!("no candidate in {out}"))
        .to_owned()
}

/// The `SHA256:` of `apt-cache show PKG=VERSION`.
fn lists_sha256(pkg: &str, version: &str) -> String {
    let out = tool("apt-cache", &["show", &format!("{pkg}={version}")]);
    out.lines()
        .find_map(|l| l.strip_prefix("SHA256: "))
        .unwrap_or_else(|| panic!("no SHA256 in {out}"))
        .to_owned()
}

#[test]
fn fetches_apts_candidate_verified_and_unpacks_busybox_static() {
    if !have_apt() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    // A higher version in the cache (as a backports build would leave) is
    // not what an unpinned name means.
    let higher = cache.join("busybox-static_1%3a9.9.9-1_amd64.deb");
    std::fs::write(&higher, b"not the candidate").unwrap();
    let spec: PackageSpec = "busybox-static".parse().unwrap();
    let apt = Apt::default();
    let mut events = Vec::new();
    let fetched = apt
        .fetch_deb(&spec, &cache, &mut |e| events.push(e.clone()))
        .unwrap();
    let deb = fetched.path.clone();
    let candidate = policy_candidate("busybox-static");
    assert_eq!(fetched.package, "busybox-static");
    assert_eq!(fetched.version, candidate);
    assert_eq!(fetched.architecture, "amd64");
    assert_eq!(fetched.sha256, lists_sha256("busybox-static", &candidate));
    assert_eq!(fetched.sha256, common::sha256(&deb));
    assert_eq!(
        deb.file_name().unwrap().to_str().unwrap(),
        format!("busybox-static_{}_amd64.deb", candidate.replace(':', "%3a"))
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
    assert_eq!(control.version(), Some(candidate.as_str()));
    // Unpinned or pinned, online or offline: the verified cached file.
    let pinned = PackageSpec {
        name: "busybox-static".into(),
        version: Some(candidate.clone()),
    };
    let offline = Apt::default().offline(true);
    for (apt, spec) in [(&apt, &spec), (&apt, &pinned), (&offline, &spec)] {
        let mut events = Vec::new();
        let again = apt
            .fetch(spec, &cache, &mut |e| events.push(e.clone()))
            .unwrap();
        assert_eq!(again, deb);
        assert!(
            matches!(events.as_slice(), [FetchEvent::Cached { .. }]),
            "{events:?}"
        );
    }

    // A cached file that is not the lists' package: offline an error,
    // online downloaded again.
    let good = std::fs::read(&deb).unwrap();
    std::fs::write(&deb, b"!<arch>\nnot busybox").unwrap();
    let err = offline.fetch(&spec, &cache, &mut |_| {}).unwrap_err();
    assert!(matches!(err, FetchError::CacheMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&candidate), "{err}");
    let mut events = Vec::new();
    let again = apt
        .fetch(&spec, &cache, &mut |e| events.push(e.clone()))
        .unwrap();
    assert_eq!(again, deb);
    assert!(
        matches!(events.last(), Some(FetchEvent::Downloaded { .. })),
        "{events:?}"
    );
    assert_eq!(std::fs::read(&deb).unwrap(), good);
    // Not cached at all: offline says which version it lacks.
    std::fs::rename(&deb, tmp.path().join("aside.deb")).unwrap();
    let err = offline.fetch(&spec, &cache, &mut |_| {}).unwrap_err();
    assert!(
        matches!(err, FetchError::NotCached { ref version, .. } if *version == candidate),
        "{err}"
    );
    std::fs::rename(tmp.path().join("aside.deb"), &deb).unwrap();
    assert_eq!(std::fs::read(&higher).unwrap(), b"not the candidate");

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
        msg.contains("imgbuild-no-such-package-xyz")
            && msg.contains("package lists do not have it"),
        "{msg}"
    );
    // Nothing left behind in the cache (apt's own package-list cache aside,
    // which is kept there when the system keeps none).
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "apt")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
