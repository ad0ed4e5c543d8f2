//! The runner's cache of boot files derived from a guest's outputs (the
//! unpacked PVH kernel, the uncompressed initramfs), each named by the
//! sha256 of the file it comes from. A cached file only ever appears whole;
//! each directory keeps the [`KEEP`] files used last (a rebuilt guest's old
//! initramfs does not pile up).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Hex sha256 of `bytes`.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The cache directory from the environment's values (read by the
/// binaries): `$IMGRUN_CACHE`, else `$XDG_CACHE_HOME/imgrun`, else
/// `$HOME/.cache/imgrun`; empty values count as unset.
pub fn default_dir(
    imgrun_cache: Option<OsString>,
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    set(imgrun_cache)
        .or_else(|| set(xdg_cache_home).map(|d| d.join("imgrun")))
        .or_else(|| set(home).map(|h| h.join(".cache/imgrun")))
}

/// [`default_dir`] of this process's environment.
pub fn dir_from_env() -> Option<PathBuf> {
    default_dir(
        std::env::var_os("IMGRUN_CACHE"),
        std::env::var_os("XDG_CACHE_HOME"),
        std::env::var_os("HOME"),
    )
}

/// How many files each cache directory keeps.
pub const KEEP: usize = 4;

/// `dir/name` if it is already there (marked as used now).
fn lookup(dir: &Path, name: &str) -> Option<PathBuf> {
    let p = dir.join(name);
    if !p.is_file() {
        return None;
    }
    // A read-only cache still serves; it is only not pruned by use.
    if let Ok(f) = std::fs::File::options().append(true).open(&p) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
    Some(p)
}

/// Removes all but the `keep` files of `dir` used last (hidden part files
/// aside).
fn prune(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    for (_, p) in files.into_iter().skip(keep) {
        let _ = std::fs::remove_file(p);
    }
}

/// The file derived from `source` by `make`, kept as
/// `dir/<sha256 of source>.<ext>`: taken from the cache when it is there,
/// else made and stored (`cache_err` says why it could not be).
pub fn derived<E>(
    dir: &Path,
    source: &[u8],
    ext: &str,
    make: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
    cache_err: impl FnOnce(PathBuf, std::io::Error) -> E,
) -> Result<PathBuf, E> {
    let name = format!("{}.{ext}", sha256_hex(source));
    if let Some(cached) = lookup(dir, &name) {
        return Ok(cached);
    }
    let bytes = make(source)?;
    store(dir, &name, &bytes).map_err(|e| cache_err(dir.join(&name), e))
}

/// Writes `bytes` as `dir/name`: aside first, then renamed into place.
fn store(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    remove_stale_parts(dir);
    let path = dir.join(name);
    let part = dir.join(format!(".{}.part", std::process::id()));
    let written = std::fs::write(&part, bytes).and_then(|()| std::fs::rename(&part, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    prune(dir, KEEP);
    Ok(path)
}

/// Removes `.<pid>.part` files of runs that are gone (killed mid-write).
fn remove_stale_parts(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(".part"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_dir_precedence() {
        let s = |v: &str| Some(OsString::from(v));
        assert_eq!(default_dir(s("/c"), s("/x"), s("/h")), Some("/c".into()));
        assert_eq!(
            default_dir(s(""), s("/x"), s("/h")),
            Some("/x/imgrun".into())
        );
        assert_eq!(
            default_dir(None, None, s("/h")),
            Some("/h/.cache/imgrun".into())
        );
        assert_eq!(default_dir(None, s(""), None), None);
    }

    #[test]
    fn stores_whole_and_sweeps_dead_parts() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("x");
        std::fs::create_dir_all(&dir).unwrap();
        // A part file of a run that no longer exists goes; one of ours stays
        // until its rename.
        std::fs::write(dir.join(".999999999.part"), b"x").unwrap();
        std::fs::write(dir.join(".notapid.part"), b"x").unwrap();
        assert_eq!(lookup(&dir, "a"), None);
        let p = store(&dir, "a", b"bytes").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"bytes");
        assert_eq!(lookup(&dir, "a"), Some(p));
        assert!(!dir.join(".999999999.part").exists());
        assert!(dir.join(".notapid.part").exists());
        assert!(!dir.join(format!(".{}.part", std::process::id())).exists());
        // Only the KEEP files used last stay.
        for i in 0..KEEP + 2 {
            store(&dir, &format!("f{i}"), b"x").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(lookup(&dir, "a").is_none(), "the oldest went");
        assert!(lookup(&dir, "f1").is_none());
        assert!(lookup(&dir, "f2").is_some());
        std::thread::sleep(std::time::Duration::from_millis(20));
        store(&dir, "g", b"x").unwrap();
        assert!(lookup(&dir, "f2").is_some(), "used just now: kept");
        assert!(lookup(&dir, "f3").is_none(), "least recently used: gone");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
