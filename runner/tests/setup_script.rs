//! `scripts/setup` takes bookworm-backports (for QEMU 10) from the Debian
//! mirror the machine already uses: `APT_ETC=<dir> bash scripts/setup
//! --print-backports-source` prints the source it would add, reading fake apt
//! configurations written here. Nothing outside the temporary directory is
//! read or written (the real /etc/apt is not touched).

use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("scripts/setup")
}

/// `APT_ETC=<apt_etc> bash scripts/setup --print-backports-source`: stdout.
fn print_source(apt_etc: &Path) -> String {
    let text = std::fs::read_to_string(script()).unwrap();
    // Without the option the script would run the whole setup (apt-get
    // install ...) on this machine: refuse to run it at all.
    assert!(
        text.contains("--print-backports-source"),
        "scripts/setup has no --print-backports-source"
    );
    let out = Command::new("bash")
        .arg(script())
        .arg("--print-backports-source")
        .env("APT_ETC", apt_etc)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", out.status);
    let stdout = String::from_utf8(out.stdout).unwrap();
    // Printing writes nothing.
    assert!(
        !apt_etc
            .join("sources.list.d/imgbuild-backports.sources")
            .exists(),
        "--print-backports-source wrote the file"
    );
    stdout
}

/// The source's fields (comments dropped), as `(key, value)`.
fn fields(source: &str) -> Vec<(String, String)> {
    source
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("not a field: {l:?} in\n{source}"));
            (k.to_string(), v.trim().to_string())
        })
        .collect()
}

fn field<'a>(f: &'a [(String, String)], key: &str) -> Option<&'a str> {
    f.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn apt_etc(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("sources.list.d")).unwrap();
    for (name, text) in files {
        std::fs::write(d.path().join(name), text).unwrap();
    }
    d
}

fn assert_backports(source: &str, uris: &str, signed_by: Option<&str>) {
    let f = fields(source);
    assert_eq!(field(&f, "Types"), Some("deb"), "{source}");
    assert_eq!(field(&f, "URIs"), Some(uris), "{source}");
    assert_eq!(field(&f, "Suites"), Some("bookworm-backports"), "{source}");
    assert_eq!(field(&f, "Components"), Some("main"), "{source}");
    assert_eq!(field(&f, "Signed-By"), signed_by, "{source}");
}

#[test]
fn one_line_sources_list_mirror_and_keyring_are_kept() {
    let d = apt_etc(&[(
        "sources.list",
        "# deb cdrom:[Debian GNU/Linux 12.5.0 _Bookworm_ - Official amd64 DVD Binary-1]/ bookworm main\n\
         deb http://mirror.example.internal/debian bookworm-updates main\n\
         deb-src [signed-by=/usr/share/keyrings/wrong.gpg] http://src.example/debian bookworm main\n\
         deb http://security.example.internal/debian-security bookworm-security main\n\
         deb [arch=amd64 signed-by=/usr/share/keyrings/corp-debian.gpg] http://mirror.example.internal/debian bookworm main contrib non-free-firmware # our mirror\n\
         deb http://second.example/debian bookworm main\n",
    )]);
    let s = print_source(d.path());
    assert_backports(
        &s,
        "http://mirror.example.internal/debian",
        Some("/usr/share/keyrings/corp-debian.gpg"),
    );
    assert!(!s.contains("deb.debian.org"), "{s}");
    // It says where it came from.
    let from = d.path().join("sources.list");
    assert!(s.contains(&*from.to_string_lossy()), "{s}");
}

#[test]
fn deb822_proxy_uri_and_keyring_are_kept() {
    let d = apt_etc(&[
        ("sources.list", "# See sources.list.d/debian.sources\n"),
        (
            "sources.list.d/debian.sources",
            "Types: deb\n\
             URIs: http://old.example/debian\n\
             Suites: bookworm\n\
             Components: main\n\
             Enabled: no\n\
             \n\
             Types: deb deb-src\n\
             # http://snapshot.debian.org/archive/debian/20250520T000000Z\n\
             URIs: http://apt-proxy.example:3142/deb.debian.org/debian\n\
             Suites: bookworm bookworm-updates\n\
             Components: main non-free-firmware\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\
             \n\
             Types: deb\n\
             URIs: http://apt-proxy.example:3142/security.debian.org/debian-security\n\
             Suites: bookworm-security\n\
             Components: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
        ),
    ]);
    let s = print_source(d.path());
    assert_backports(
        &s,
        "http://apt-proxy.example:3142/deb.debian.org/debian",
        Some("/usr/share/keyrings/debian-archive-keyring.gpg"),
    );
    let from = d.path().join("sources.list.d/debian.sources");
    assert!(s.contains(&*from.to_string_lossy()), "{s}");
}

#[test]
fn a_list_file_in_sources_list_d_counts_too() {
    let d = apt_etc(&[(
        "sources.list.d/mirror.list",
        "deb [ signed-by=/etc/apt/keyrings/mirror.asc ] https://mirror.example/debian/ bookworm main\n",
    )]);
    let s = print_source(d.path());
    assert_backports(
        &s,
        "https://mirror.example/debian/",
        Some("/etc/apt/keyrings/mirror.asc"),
    );
}

#[test]
fn an_entry_without_signed_by_gets_none() {
    // The machine's entry trusts apt's global keyrings; so does backports.
    let d = apt_etc(&[(
        "sources.list",
        "deb http://mirror.example/debian bookworm main\n",
    )]);
    let s = print_source(d.path());
    assert_backports(&s, "http://mirror.example/debian", None);
}

#[test]
fn nothing_found_falls_back_to_deb_debian_org_and_says_so() {
    let d = apt_etc(&[(
        "sources.list",
        "# only comments\ndeb http://security.example/debian-security bookworm-security main\n",
    )]);
    let s = print_source(d.path());
    assert_backports(
        &s,
        "http://deb.debian.org/debian",
        Some("/usr/share/keyrings/debian-archive-keyring.gpg"),
    );
    assert!(s.contains("no Debian source"), "{s}");
    // No apt directory at all: the same.
    let empty = tempfile::tempdir().unwrap();
    let s = print_source(&empty.path().join("absent"));
    assert_backports(
        &s,
        "http://deb.debian.org/debian",
        Some("/usr/share/keyrings/debian-archive-keyring.gpg"),
    );
}
