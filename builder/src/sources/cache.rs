//! The cache directory: where it is, what it holds, and cleaning it.
//!
//! Everything imgbuild writes there:
//!
//! - `name_version_arch.deb`: packages, under apt's file name (`:` written
//!   `%3a`); each is used only while its SHA-256 matches the package lists
//!   ([`mod@super::fetch`]);
//! - `unpacked/<name_version_arch>.<sha>/`: a package unpacked, keyed by the
//!   first 16 hex digits of its SHA-256; `unpacked/local-<stem>.<sha>/`: a
//!   local `.deb` unpacked;
//! - `apt/pkgcache.bin`: apt's binary cache of the package lists, kept here
//!   only when the system's apt keeps none;
//! - `.download-*`, `.unpack-*`: work in progress (left over if a run was
//!   killed).
//!
//! Where it is: `--cache DIR`, else `$IMGBUILD_CACHE`, else
//! `$XDG_CACHE_HOME/imgbuild`, else `$HOME/.cache/imgbuild` ([`locate`]);
//! never the current directory.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::fetch::sha256_file;
use super::spec::parse_deb_file_name;

/// Subdirectory of unpacked trees.
pub const UNPACKED_DIR: &str = "unpacked";
/// Subdirectory of apt's own binary cache (see [`mod@super::fetch`]).
pub const APT_DIR: &str = "apt";
/// Hex digits of the SHA-256 in an unpacked tree's name.
const KEY_LEN: usize = 16;

/// The name of the unpacked tree of the package file `deb` whose SHA-256 is
/// `sha256`: `<file stem>.<first 16 hex digits>`.
pub fn tree_name(deb: &Path, sha256: &str) -> String {
    let stem = deb.file_stem().unwrap_or_default().to_string_lossy();
    format!("{stem}.{}", sha256.get(..KEY_LEN).unwrap_or(sha256))
}

/// The name of the unpacked tree of a local `.deb`: `local-<stem>.<sha>`.
pub fn local_tree_name(deb: &Path, sha256: &str) -> String {
    format!("local-{}", tree_name(deb, sha256))
}

/// Why the cache is where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOrigin {
    /// `--cache DIR`.
    Option,
    /// `$IMGBUILD_CACHE`.
    ImgbuildCache,
    /// `$XDG_CACHE_HOME/imgbuild`.
    XdgCacheHome,
    /// `$HOME/.cache/imgbuild`.
    Home,
}

impl fmt::Display for CacheOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CacheOrigin::Option => "--cache",
            CacheOrigin::ImgbuildCache => "$IMGBUILD_CACHE",
            CacheOrigin::XdgCacheHome => "$XDG_CACHE_HOME/imgbuild",
            CacheOrigin::Home => "$HOME/.cache/imgbuild",
        })
    }
}

/// The cache directory and why it is that one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheDir {
    /// The directory (it need not exist yet).
    pub path: PathBuf,
    /// Which setting chose it.
    pub origin: CacheOrigin,
}

/// No cache directory can be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no cache directory: neither HOME nor XDG_CACHE_HOME is set to an absolute path, and IMGBUILD_CACHE is not set; set one of them or pass --cache DIR (imgbuild does not cache in the current directory)"
)]
pub struct NoCacheDir;

/// The cache directory: `explicit` (`--cache`), else `$IMGBUILD_CACHE`, else
/// `$XDG_CACHE_HOME/imgbuild`, else `$HOME/.cache/imgbuild`. Empty variables
/// count as unset; `XDG_CACHE_HOME` and `HOME` must be absolute (the XDG
/// rule). Never the current directory.
pub fn locate(explicit: Option<&Path>) -> Result<CacheDir, NoCacheDir> {
    locate_with(explicit, |k| std::env::var_os(k))
}

/// [`locate`] with the environment given by `env`.
pub fn locate_with(
    explicit: Option<&Path>,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<CacheDir, NoCacheDir> {
    let found = |path, origin| Ok(CacheDir { path, origin });
    if let Some(p) = explicit {
        return found(p.to_owned(), CacheOrigin::Option);
    }
    let var = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(p) = var("IMGBUILD_CACHE") {
        return found(p, CacheOrigin::ImgbuildCache);
    }
    if let Some(p) = var("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return found(p.join("imgbuild"), CacheOrigin::XdgCacheHome);
    }
    if let Some(p) = var("HOME").filter(|p| p.is_absolute()) {
        return found(p.join(".cache").join("imgbuild"), CacheOrigin::Home);
    }
    Err(NoCacheDir)
}

/// A cached package file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedPackage {
    /// The file.
    pub path: PathBuf,
    /// Package name.
    pub package: String,
    /// Exact version.
    pub version: String,
    /// Architecture.
    pub architecture: String,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

/// What an unpacked tree was unpacked from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeSource {
    /// The cached package with this file name.
    Package(String),
    /// A local `.deb` (outside the cache).
    Local,
    /// Nothing builds use: no cached package has its name and SHA-256 (the
    /// package was removed or replaced, or the tree is named as imgbuild
    /// once named them, without the SHA-256).
    Orphan,
}

/// An unpacked tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackedTree {
    /// The directory.
    pub path: PathBuf,
    /// Bytes of the files in it (hard links counted once).
    pub size: u64,
    /// Where it came from.
    pub source: TreeSource,
}

/// Any other file or directory, with its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The path.
    pub path: PathBuf,
    /// Bytes (of every file below a directory).
    pub size: u64,
}

/// What the cache holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Packages, by file name.
    pub packages: Vec<CachedPackage>,
    /// Unpacked trees, by name.
    pub trees: Vec<UnpackedTree>,
    /// apt's binary cache.
    pub apt: Vec<Entry>,
    /// Leftovers of interrupted downloads or unpacks.
    pub partial: Vec<Entry>,
    /// Files imgbuild did not write (left alone by [`clean`]).
    pub other: Vec<Entry>,
}

impl Listing {
    /// Bytes of everything imgbuild wrote (all but [`Listing::other`]).
    pub fn total(&self) -> u64 {
        self.packages.iter().map(|p| p.size).sum::<u64>()
            + self.trees.iter().map(|t| t.size).sum::<u64>()
            + self
                .apt
                .iter()
                .chain(&self.partial)
                .map(|e| e.size)
                .sum::<u64>()
    }
}

fn is_partial(name: &str) -> bool {
    name.starts_with(".download-") || name.starts_with(".unpack-")
}

fn sorted_entries(dir: &Path) -> io::Result<Vec<fs::DirEntry>> {
    let mut v = fs::read_dir(dir)?.collect::<io::Result<Vec<_>>>()?;
    v.sort_by_key(fs::DirEntry::file_name);
    Ok(v)
}

/// Lists the cache `dir` (a missing directory is empty). Hashes every
/// package file.
pub fn list(dir: &Path) -> io::Result<Listing> {
    let mut l = Listing::default();
    if !dir.exists() {
        return Ok(l);
    }
    let mut unpacked = None;
    for e in sorted_entries(dir)? {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let ty = e.file_type()?;
        if ty.is_file() {
            if let Some((package, version, architecture)) = parse_deb_file_name(&name) {
                l.packages.push(CachedPackage {
                    size: e.metadata()?.len(),
                    sha256: sha256_file(&path)?,
                    path,
                    package,
                    version,
                    architecture,
                });
                continue;
            }
        } else if ty.is_dir() {
            if name == UNPACKED_DIR {
                unpacked = Some(path);
                continue;
            }
            if name == APT_DIR {
                l.apt.push(entry(path)?);
                continue;
            }
            if is_partial(&name) {
                l.partial.push(entry(path)?);
                continue;
            }
        }
        l.other.push(entry(path)?);
    }
    if let Some(u) = unpacked {
        for e in sorted_entries(&u)? {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if is_partial(&name) {
                l.partial.push(entry(path)?);
            } else if e.file_type()?.is_dir() {
                let source = tree_source(&name, &l.packages);
                l.trees.push(UnpackedTree {
                    size: tree_size(&path)?,
                    path,
                    source,
                });
            } else {
                l.other.push(entry(path)?);
            }
        }
    }
    Ok(l)
}

/// Which cached package the tree `name` is of: `<stem>.<sha prefix>` with
/// `<stem>.deb` in the cache and of that SHA-256.
fn tree_source(name: &str, packages: &[CachedPackage]) -> TreeSource {
    if name.starts_with("local-") {
        return TreeSource::Local;
    }
    let Some((stem, key)) = name
        .rsplit_once('.')
        .filter(|(_, k)| k.len() == KEY_LEN && k.bytes().all(|b| b.is_ascii_hexdigit()))
    else {
        return TreeSource::Orphan;
    };
    let file = format!("{stem}.deb");
    packages
        .iter()
        .find(|p| p.path.file_name().is_some_and(|f| *f == *file) && p.sha256.starts_with(key))
        .map_or(TreeSource::Orphan, |_| TreeSource::Package(file))
}

fn entry(path: PathBuf) -> io::Result<Entry> {
    Ok(Entry {
        size: tree_size(&path)?,
        path,
    })
}

/// Bytes of the regular files at or below `path` (not following symbolic
/// links; each inode once).
fn tree_size(path: &Path) -> io::Result<u64> {
    fn walk(p: &Path, seen: &mut HashSet<(u64, u64)>) -> io::Result<u64> {
        let m = fs::symlink_metadata(p)?;
        if m.is_dir() {
            let mut sum = 0;
            for e in fs::read_dir(p)? {
                sum += walk(&e?.path(), seen)?;
            }
            Ok(sum)
        } else if m.is_file() && seen.insert((m.dev(), m.ino())) {
            Ok(m.len())
        } else {
            Ok(0)
        }
    }
    walk(path, &mut HashSet::new())
}

/// What [`clean`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanReport {
    /// Removed, with their sizes.
    pub removed: Vec<Entry>,
    /// Kept (current packages, their trees, apt's cache).
    pub kept: Vec<PathBuf>,
    /// Not imgbuild's, left alone.
    pub left_alone: Vec<PathBuf>,
}

fn remove(path: &Path) -> io::Result<()> {
    if fs::symlink_metadata(path)?.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

/// Removes what imgbuild put in the cache `dir`: packages, unpacked trees,
/// apt's binary cache and leftovers. With `keep` (the packages to keep,
/// e.g. the current candidates), those packages, their unpacked trees and
/// apt's cache stay. Files imgbuild did not write are left alone.
pub fn clean(dir: &Path, keep: Option<&[PathBuf]>) -> io::Result<CleanReport> {
    let l = list(dir)?;
    let mut r = CleanReport {
        left_alone: l.other.iter().map(|e| e.path.clone()).collect(),
        ..CleanReport::default()
    };
    let kept_files: Vec<String> = l
        .packages
        .iter()
        .filter(|p| keep.is_some_and(|k| k.iter().any(|k| same_file(k, &p.path))))
        .filter_map(|p| Some(p.path.file_name()?.to_string_lossy().into_owned()))
        .collect();
    let mut doomed = Vec::new();
    for p in &l.packages {
        let name = p.path.file_name().unwrap_or_default().to_string_lossy();
        if kept_files.iter().any(|k| *k == name) {
            r.kept.push(p.path.clone());
        } else {
            doomed.push(Entry {
                path: p.path.clone(),
                size: p.size,
            });
        }
    }
    for t in &l.trees {
        match &t.source {
            TreeSource::Package(f) if kept_files.contains(f) => r.kept.push(t.path.clone()),
            _ => doomed.push(Entry {
                path: t.path.clone(),
                size: t.size,
            }),
        }
    }
    for a in &l.apt {
        if keep.is_some() {
            r.kept.push(a.path.clone());
        } else {
            doomed.push(a.clone());
        }
    }
    doomed.extend(l.partial.iter().cloned());
    for e in doomed {
        remove(&e.path)?;
        r.removed.push(e);
    }
    let unpacked = dir.join(UNPACKED_DIR);
    if unpacked.is_dir() && fs::read_dir(&unpacked)?.next().is_none() {
        fs::remove_dir(&unpacked)?;
    }
    Ok(r)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn location_order_and_no_current_directory() {
        let all = [
            ("IMGBUILD_CACHE", "/c"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ];
        let at = |explicit: Option<&str>, vars: &[(&str, &str)]| {
            locate_with(explicit.map(Path::new), env(vars)).map(|c| (c.path, c.origin))
        };
        assert_eq!(
            at(Some("d"), &all),
            Ok((PathBuf::from("d"), CacheOrigin::Option))
        );
        assert_eq!(
            at(None, &all),
            Ok((PathBuf::from("/c"), CacheOrigin::ImgbuildCache))
        );
        assert_eq!(
            at(None, &all[1..]),
            Ok((PathBuf::from("/x/imgbuild"), CacheOrigin::XdgCacheHome))
        );
        assert_eq!(
            at(None, &all[2..]),
            Ok((PathBuf::from("/h/.cache/imgbuild"), CacheOrigin::Home))
        );
        // Empty counts as unset; a relative XDG_CACHE_HOME or HOME is ignored.
        assert_eq!(
            at(
                None,
                &[
                    ("IMGBUILD_CACHE", ""),
                    ("XDG_CACHE_HOME", "rel"),
                    ("HOME", "/h")
                ]
            ),
            Ok((PathBuf::from("/h/.cache/imgbuild"), CacheOrigin::Home))
        );
        assert_eq!(at(None, &[]), Err(NoCacheDir));
        assert_eq!(
            at(None, &[("HOME", ""), ("XDG_CACHE_HOME", "")]),
            Err(NoCacheDir)
        );
        assert_eq!(at(None, &[("HOME", ".")]), Err(NoCacheDir));
        let msg = NoCacheDir.to_string();
        for want in ["HOME", "XDG_CACHE_HOME", "IMGBUILD_CACHE", "--cache"] {
            assert!(msg.contains(want), "{msg}");
        }
    }

    #[test]
    fn lists_and_cleans() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        fs::write(d.join("pk_1.0-1_amd64.deb"), b"one").unwrap();
        fs::write(d.join("pk_1%3a2.0-1_all.deb"), b"two!").unwrap();
        fs::write(d.join("notes.txt"), b"mine").unwrap();
        fs::create_dir_all(d.join(".download-abc")).unwrap();
        fs::write(d.join(".download-abc/pk.deb"), b"12").unwrap();
        fs::create_dir_all(d.join("apt")).unwrap();
        fs::write(d.join("apt/pkgcache.bin"), b"cache").unwrap();
        let sha1 = sha256_file(&d.join("pk_1.0-1_amd64.deb")).unwrap();
        let sha2 = sha256_file(&d.join("pk_1%3a2.0-1_all.deb")).unwrap();
        let t1 = d
            .join("unpacked")
            .join(tree_name(Path::new("pk_1.0-1_amd64.deb"), &sha1));
        let t2 = d.join("unpacked/pk_1%3a2.0-1_all"); // the old naming: unused
        let stale = d.join("unpacked/pk_0.9_amd64.0123456789abcdef");
        let local = d.join("unpacked/local-k.0123456789abcdef");
        for t in [&t1, &t2, &stale, &local] {
            fs::create_dir_all(t.join("bin")).unwrap();
            fs::write(t.join("bin/x"), b"12345").unwrap();
        }
        std::os::unix::fs::symlink("x", t1.join("bin/y")).unwrap();
        fs::hard_link(t1.join("bin/x"), t1.join("bin/z")).unwrap();

        let l = list(d).unwrap();
        let pkgs: Vec<_> = l
            .packages
            .iter()
            .map(|p| {
                (
                    p.package.as_str(),
                    p.version.as_str(),
                    p.architecture.as_str(),
                    p.size,
                )
            })
            .collect();
        // By file name: `%` sorts before `.`.
        assert_eq!(
            pkgs,
            [("pk", "1:2.0-1", "all", 4), ("pk", "1.0-1", "amd64", 3)]
        );
        assert_eq!(l.packages[0].sha256, sha2);
        assert_eq!(l.packages[1].sha256, sha1);
        let trees: Vec<_> = l
            .trees
            .iter()
            .map(|t| (t.path.clone(), t.size, t.source.clone()))
            .collect();
        assert_eq!(
            trees,
            [
                (local.clone(), 5, TreeSource::Local),
                (stale.clone(), 5, TreeSource::Orphan),
                (t2.clone(), 5, TreeSource::Orphan),
                (
                    t1.clone(),
                    5,
                    TreeSource::Package("pk_1.0-1_amd64.deb".into())
                ),
            ]
        );
        assert_eq!(
            l.apt,
            [Entry {
                path: d.join("apt"),
                size: 5
            }]
        );
        assert_eq!(
            l.partial,
            [Entry {
                path: d.join(".download-abc"),
                size: 2
            }]
        );
        assert_eq!(
            l.other,
            [Entry {
                path: d.join("notes.txt"),
                size: 4
            }]
        );
        assert_eq!(l.total(), 3 + 4 + 4 * 5 + 5 + 2);

        // Keep one package: it, its tree and apt's cache stay.
        let r = clean(d, Some(&[d.join("pk_1.0-1_amd64.deb")])).unwrap();
        assert_eq!(
            r.kept,
            [d.join("pk_1.0-1_amd64.deb"), t1.clone(), d.join("apt")]
        );
        assert_eq!(r.left_alone, [d.join("notes.txt")]);
        assert_eq!(r.removed.len(), 5, "{r:?}");
        let l = list(d).unwrap();
        assert_eq!(l.packages.len(), 1);
        assert_eq!(l.trees.len(), 1);
        assert!(l.partial.is_empty());

        // Everything.
        clean(d, None).unwrap();
        let l = list(d).unwrap();
        assert_eq!(l.total(), 0);
        assert!(!d.join("unpacked").exists());
        assert_eq!(fs::read(d.join("notes.txt")).unwrap(), b"mine");
        assert_eq!(list(&d.join("missing")).unwrap(), Listing::default());
    }
}
