//! Reading and unpacking a `.deb` in Rust, without dpkg or root: the `ar`
//! wrapper, `control.tar.*` and `data.tar.{xz,zst,gz}` (or uncompressed).

use std::collections::HashSet;
use std::convert::Infallible;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use super::ar::{self, ArError, Member};
use super::control::Control;

/// A `.deb` file, opened and its members listed.
#[derive(Debug)]
pub struct Deb {
    path: PathBuf,
    members: Vec<Member>,
}

/// What [`Deb::unpack`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackReport {
    /// Regular files written.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symbolic links created.
    pub symlinks: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// Entries not extracted (device nodes, FIFOs): their paths.
    pub skipped: Vec<PathBuf>,
}

/// A `.deb` could not be read or unpacked; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The `.deb`.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The ar wrapper is malformed.
    #[error("corrupt package {path}: {source}")]
    Ar {
        /// The `.deb`.
        path: PathBuf,
        /// What is wrong with the ar archive.
        source: ArError,
    },
    /// The archive is an ar file but not a Debian binary package.
    #[error("{path} is not a Debian binary package: {reason}")]
    NotADeb {
        /// The file.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// A tarball member is corrupt (bad compression or tar data).
    #[error("corrupt package {path}: {member}: {message}")]
    Corrupt {
        /// The `.deb`.
        path: PathBuf,
        /// The member (`data.tar.xz`, …).
        member: String,
        /// What failed.
        message: String,
    },
    /// An entry would land outside the destination (`..`, absolute path, or
    /// through a symbolic link).
    #[error("package {path}: entry {entry:?} escapes the destination directory")]
    UnsafePath {
        /// The `.deb`.
        path: PathBuf,
        /// The entry path as stored.
        entry: String,
    },
    /// Writing into the destination failed.
    #[error("cannot write {path} (unpacking {deb}): {source}")]
    Write {
        /// The file or directory being written.
        path: PathBuf,
        /// The `.deb`.
        deb: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Directories whose content does not make a package more than a metapackage.
const DOC_DIRS: [&str; 3] = ["usr/share/doc", "usr/share/bug", "usr/share/lintian"];

impl Deb {
    /// Opens `path` and checks it is a Debian binary package (format 2.x with
    /// control and data members).
    pub fn open(path: &Path) -> Result<Deb, DebError> {
        let mut f = File::open(path).map_err(|source| DebError::Read {
            path: path.to_owned(),
            source,
        })?;
        let members = ar::members(&mut f).map_err(|source| DebError::Ar {
            path: path.to_owned(),
            source,
        })?;
        let not_deb = |reason: &str| DebError::NotADeb {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let first = members.first().ok_or_else(|| not_deb("empty archive"))?;
        if first.name != "debian-binary" {
            return Err(not_deb("first member is not debian-binary"));
        }
        let mut version = [0u8; 4];
        f.seek(SeekFrom::Start(first.offset))
            .and_then(|_| f.read_exact(&mut version))
            .map_err(|_| not_deb("debian-binary is truncated"))?;
        if !version.starts_with(b"2.") {
            return Err(not_deb("unsupported format version (want 2.x)"));
        }
        let deb = Deb {
            path: path.to_owned(),
            members,
        };
        deb.member("control.tar")
            .ok_or_else(|| not_deb("no control.tar member"))?;
        deb.member("data.tar")
            .ok_or_else(|| not_deb("no data.tar member"))?;
        Ok(deb)
    }

    /// The `.deb`'s path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn member(&self, prefix: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name.starts_with(prefix))
    }

    /// A decompressing reader over member `prefix*` (`control.tar`, `data.tar`).
    fn tar_reader(&self, prefix: &str) -> Result<(String, Box<dyn Read>), DebError> {
        let m = self.member(prefix).ok_or_else(|| DebError::NotADeb {
            path: self.path.clone(),
            reason: format!("no {prefix} member"),
        })?;
        let mut f = File::open(&self.path).map_err(|source| DebError::Read {
            path: self.path.clone(),
            source,
        })?;
        f.seek(SeekFrom::Start(m.offset))
            .map_err(|source| DebError::Read {
                path: self.path.clone(),
                source,
            })?;
        let raw = f.take(m.size);
        let reader: Box<dyn Read> = match m.name.rsplit('.').next() {
            Some("xz") => Box::new(xz2::read::XzDecoder::new_multi_decoder(raw)),
            Some("gz") => Box::new(flate2::read::MultiGzDecoder::new(raw)),
            Some("zst") => Box::new(
                ruzstd::decoding::StreamingDecoder::new(raw)
                    .map_err(|e| self.corrupt(&m.name, e.to_string()))?,
            ),
            Some("tar") => Box::new(raw),
            _ => {
                return Err(DebError::NotADeb {
                    path: self.path.clone(),
                    reason: format!("unsupported compression of member {}", m.name),
                });
            }
        };
        Ok((m.name.clone(), reader))
    }

    fn corrupt(&self, member: &str, message: impl Into<String>) -> DebError {
        DebError::Corrupt {
            path: self.path.clone(),
            member: member.to_owned(),
            message: message.into(),
        }
    }

    /// Walks the entries of the tar archive `member` read from `reader`,
    /// handing each one's stored path, that path normalised by
    /// [`safe_relative`] (`None` if it is absolute or has a `..` component)
    /// and the entry itself to `f`, until `f` breaks. Reading errors are
    /// [`DebError::Corrupt`] for `member`. Returns what `f` broke with, or
    /// `None` when every entry was seen.
    fn for_each_entry<B>(
        &self,
        member: &str,
        reader: Box<dyn Read>,
        mut f: impl FnMut(
            &Path,
            Option<PathBuf>,
            &mut tar::Entry<'_, Box<dyn Read>>,
        ) -> Result<ControlFlow<B>, DebError>,
    ) -> Result<Option<B>, DebError> {
        let mut archive = tar::Archive::new(reader);
        let entries = archive
            .entries()
            .map_err(|e| self.corrupt(member, e.to_string()))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.corrupt(member, e.to_string()))?;
            let raw = entry
                .path()
                .map_err(|e| self.corrupt(member, e.to_string()))?
                .into_owned();
            let rel = safe_relative(&raw);
            if let ControlFlow::Break(b) = f(&raw, rel, &mut entry)? {
                return Ok(Some(b));
            }
        }
        Ok(None)
    }

    /// Reads the `control` file from `control.tar.*`.
    pub fn control(&self) -> Result<Control, DebError> {
        let (member, reader) = self.tar_reader("control.tar")?;
        let found = self.for_each_entry(&member, reader, |_, rel, entry| {
            if rel.as_deref() != Some(Path::new("control")) {
                return Ok(ControlFlow::Continue(()));
            }
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .map_err(|e| self.corrupt(&member, format!("control: {e}")))?;
            Ok(ControlFlow::Break(Control::parse(&text)))
        })?;
        found.ok_or_else(|| self.corrupt(&member, "no control file"))
    }

    /// True if the data archive has a regular file outside the documentation
    /// directories (`usr/share/{doc,bug,lintian}`); a package without one is a
    /// metapackage. Stops reading at the first such file.
    pub fn has_payload(&self) -> Result<bool, DebError> {
        let (member, reader) = self.tar_reader("data.tar")?;
        let found = self.for_each_entry(&member, reader, |_, rel, entry| {
            if !entry.header().entry_type().is_file() {
                return Ok(ControlFlow::Continue(()));
            }
            let rel = rel.unwrap_or_default();
            Ok(if DOC_DIRS.iter().any(|d| rel.starts_with(d)) {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            })
        })?;
        Ok(found.is_some())
    }

    /// Extracts the data archive into `dest` (created if missing): regular
    /// files (with their permission bits and mtime), directories, symbolic
    /// and hard links. Device nodes and FIFOs are skipped and reported.
    /// Owners are not changed (no root needed). Directories keep at least
    /// `u+rwx` so the tree stays removable. Entries that would escape `dest`
    /// are an error.
    pub fn unpack(&self, dest: &Path) -> Result<UnpackReport, DebError> {
        let (member, reader) = self.tar_reader("data.tar")?;
        let write_err = |path: &Path, source| DebError::Write {
            path: path.to_owned(),
            deb: self.path.clone(),
            source,
        };
        fs::create_dir_all(dest).map_err(|e| write_err(dest, e))?;
        let mut report = UnpackReport::default();
        let mut ok_dirs: HashSet<PathBuf> = HashSet::new();
        let mut dir_modes: Vec<(PathBuf, u32)> = Vec::new();
        self.for_each_entry(&member, reader, |raw, rel, entry| {
            let unsafe_path = || DebError::UnsafePath {
                path: self.path.clone(),
                entry: raw.display().to_string(),
            };
            let rel = rel.ok_or_else(unsafe_path)?;
            let header = entry.header();
            let mode = header.mode().unwrap_or(0o644) & 0o7777;
            let kind = header.entry_type();
            if rel.as_os_str().is_empty() {
                return Ok(ControlFlow::Continue(())); // "./": dest itself
            }
            let target = dest.join(&rel);
            self.ensure_parents(dest, &rel, &mut ok_dirs, raw)?;
            if kind.is_dir() {
                match fs::symlink_metadata(&target) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        remove(&target).map_err(|e| write_err(&target, e))?;
                        fs::create_dir(&target).map_err(|e| write_err(&target, e))?;
                    }
                    Err(_) => fs::create_dir(&target).map_err(|e| write_err(&target, e))?,
                }
                ok_dirs.insert(rel.clone());
                dir_modes.push((target, mode | 0o700));
                report.dirs += 1;
            } else if kind.is_file() {
                remove_non_dir(&target).map_err(|e| write_err(&target, e))?;
                let mut out = File::create(&target).map_err(|e| write_err(&target, e))?;
                copy(entry, &mut out).map_err(|e| match e {
                    CopyError::Read(e) => self.corrupt(&member, format!("{}: {e}", raw.display())),
                    CopyError::Write(e) => write_err(&target, e),
                })?;
                if let Ok(mtime) = entry.header().mtime() {
                    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
                    out.set_modified(t).map_err(|e| write_err(&target, e))?;
                }
                drop(out);
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .map_err(|e| write_err(&target, e))?;
                report.files += 1;
            } else if kind.is_symlink() {
                let link = self.link_target(&member, entry, raw, "symlink")?;
                remove_non_dir(&target).map_err(|e| write_err(&target, e))?;
                std::os::unix::fs::symlink(&link, &target).map_err(|e| write_err(&target, e))?;
                ok_dirs.retain(|d| !d.starts_with(&rel));
                report.symlinks += 1;
            } else if kind.is_hard_link() {
                let link = self.link_target(&member, entry, raw, "hard link")?;
                let link_rel = safe_relative(&link).ok_or_else(unsafe_path)?;
                self.ensure_parents(dest, &link_rel, &mut ok_dirs, raw)?;
                remove_non_dir(&target).map_err(|e| write_err(&target, e))?;
                fs::hard_link(dest.join(&link_rel), &target).map_err(|e| write_err(&target, e))?;
                report.hardlinks += 1;
            } else if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
                report.skipped.push(rel);
            }
            // Other types (PAX/GNU extension headers) are consumed by `tar`.
            Ok(ControlFlow::<Infallible>::Continue(()))
        })?;
        // Directory modes last, deepest first, so read-only dirs do not block
        // their own contents.
        for (dir, mode) in dir_modes.iter().rev() {
            fs::set_permissions(dir, fs::Permissions::from_mode(*mode))
                .map_err(|e| write_err(dir, e))?;
        }
        Ok(report)
    }

    /// The target of link entry `raw` in tar member `member`; a missing target
    /// is corrupt data. `kind` (`symlink`, `hard link`) names the link in
    /// that message.
    fn link_target(
        &self,
        member: &str,
        entry: &tar::Entry<'_, impl Read>,
        raw: &Path,
        kind: &str,
    ) -> Result<PathBuf, DebError> {
        let link = entry
            .link_name()
            .map_err(|e| self.corrupt(member, e.to_string()))?
            .ok_or_else(|| {
                self.corrupt(member, format!("{}: {kind} without target", raw.display()))
            })?;
        Ok(link.into_owned())
    }

    /// Makes sure every ancestor of `rel` below `dest` is a real directory
    /// (creating missing ones), never a symbolic link.
    fn ensure_parents(
        &self,
        dest: &Path,
        rel: &Path,
        ok_dirs: &mut HashSet<PathBuf>,
        raw: &Path,
    ) -> Result<(), DebError> {
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        let mut cur = PathBuf::new();
        for c in parent.components() {
            cur.push(c);
            if ok_dirs.contains(&cur) {
                continue;
            }
            let full = dest.join(&cur);
            match fs::symlink_metadata(&full) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(DebError::UnsafePath {
                        path: self.path.clone(),
                        entry: raw.display().to_string(),
                    });
                }
                Err(_) => fs::create_dir(&full).map_err(|source| DebError::Write {
                    path: full.clone(),
                    deb: self.path.clone(),
                    source,
                })?,
            }
            ok_dirs.insert(cur.clone());
        }
        Ok(())
    }
}

/// Unpacks `deb` into `dest`; see [`Deb::unpack`].
pub fn unpack(deb: &Path, dest: &Path) -> Result<UnpackReport, DebError> {
    Deb::open(deb)?.unpack(dest)
}

/// Unpacks `deb` once into `dir/<deb file stem>/` and returns that path;
/// later calls reuse it. The tree is built in a temporary directory and
/// renamed into place, so an interrupted unpack is never mistaken for a
/// finished one.
pub fn unpack_cached(deb: &Path, dir: &Path) -> Result<PathBuf, DebError> {
    let stem = deb.file_stem().ok_or_else(|| DebError::NotADeb {
        path: deb.to_owned(),
        reason: "no file name".into(),
    })?;
    unpack_cached_as(deb, &dir.join(stem))
}

/// Like [`unpack_cached`] with an explicit target directory.
pub fn unpack_cached_as(deb: &Path, target: &Path) -> Result<PathBuf, DebError> {
    if target.is_dir() {
        return Ok(target.to_owned());
    }
    let dir = target.parent().unwrap_or(Path::new("."));
    let write_err = |path: &Path, source| DebError::Write {
        path: path.to_owned(),
        deb: deb.to_owned(),
        source,
    };
    fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(dir)
        .map_err(|e| write_err(dir, e))?;
    let tree = tmp.path().join("tree");
    unpack(deb, &tree)?;
    match fs::rename(&tree, target) {
        Ok(()) => Ok(target.to_owned()),
        // Someone else finished first: theirs is as good as ours.
        Err(_) if target.is_dir() => Ok(target.to_owned()),
        Err(e) => Err(write_err(target, e)),
    }
}

/// `raw` as a relative path without `.` components; `None` if it is absolute
/// or has a `..` component.
fn safe_relative(raw: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn remove(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => Ok(()),
    }
}

/// Removes a file or symlink at `path` (so that writing never follows an
/// existing link); an existing directory is an error.
fn remove_non_dir(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "a directory is in the way",
        )),
        Ok(_) => fs::remove_file(path),
        Err(_) => Ok(()),
    }
}

enum CopyError {
    Read(std::io::Error),
    Write(std::io::Error),
}

fn copy(from: &mut impl Read, to: &mut impl std::io::Write) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        to.write_all(buf.get(..n).unwrap_or_default())
            .map_err(CopyError::Write)?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::testutil::{self, Item};
    use std::os::unix::fs::MetadataExt;

    fn write_deb(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, bytes).unwrap();
        p
    }

    const ITEMS: &[Item<'static>] = &[
        Item::Dir("./", 0o755),
        Item::Dir("./bin/", 0o755),
        Item::File("./bin/busybox", 0o4755, b"\x7fELF busybox"),
        Item::Symlink("./bin/sh", "busybox"),
        Item::Symlink("./bin/abs", "/bin/busybox"),
        Item::HardLink("./bin/ash", "./bin/busybox"),
        Item::File("./etc/deep/conf", 0o600, b"secret=1\n"), // parent not listed
        Item::Dir("./ro/", 0o555),
        Item::File("./ro/file", 0o444, b"ro"),
        Item::CharDev("./dev/console", 5, 1),
        Item::Fifo("./dev/fifo"),
    ];

    #[test]
    fn unpacks_every_compression() {
        for ext in ["xz", "zst", "gz", "tar"] {
            let tmp = tempfile::tempdir().unwrap();
            let bytes = testutil::deb(
                &testutil::control("busybox-static", "1:1.0-1", None),
                ITEMS,
                ext,
            );
            let path = write_deb(tmp.path(), "busybox-static_1%3a1.0-1_amd64.deb", &bytes);
            let deb = Deb::open(&path).unwrap();
            assert_eq!(deb.control().unwrap().package(), Some("busybox-static"));
            assert!(deb.has_payload().unwrap());
            let dest = tmp.path().join("out");
            let report = deb.unpack(&dest).unwrap();
            assert_eq!(
                (report.files, report.dirs, report.symlinks, report.hardlinks),
                (3, 2, 2, 1),
                "{ext}"
            );
            assert_eq!(
                report.skipped,
                [PathBuf::from("dev/console"), PathBuf::from("dev/fifo")]
            );
            let bb = dest.join("bin/busybox");
            assert_eq!(fs::read(&bb).unwrap(), b"\x7fELF busybox");
            let meta = fs::metadata(&bb).unwrap();
            assert_eq!(meta.mode() & 0o7777, 0o4755);
            assert_eq!(meta.mtime(), 1_700_000_000);
            assert_eq!(
                fs::read_link(dest.join("bin/sh")).unwrap(),
                Path::new("busybox")
            );
            assert_eq!(
                fs::read_link(dest.join("bin/abs")).unwrap(),
                Path::new("/bin/busybox")
            );
            assert_eq!(
                fs::metadata(dest.join("bin/ash")).unwrap().ino(),
                meta.ino()
            );
            assert_eq!(fs::read(dest.join("etc/deep/conf")).unwrap(), b"secret=1\n");
            assert_eq!(
                fs::metadata(dest.join("ro/file")).unwrap().mode() & 0o7777,
                0o444
            );
            // 0555 is kept removable as 0755.
            assert_eq!(
                fs::metadata(dest.join("ro")).unwrap().mode() & 0o7777,
                0o755
            );
            assert!(!dest.join("dev/console").exists());
        }
    }

    #[test]
    fn rejects_escaping_entries() {
        for (items, bad) in [
            (vec![Item::File("../evil", 0o644, b"x")], "../evil"),
            (
                vec![Item::File("./a/../../evil", 0o644, b"x")],
                "./a/../../evil",
            ),
            (vec![Item::File("/etc/evil", 0o644, b"x")], "/etc/evil"),
            (
                vec![
                    Item::Symlink("./lnk", ".."),
                    Item::File("./lnk/evil", 0o644, b"x"),
                ],
                "./lnk/evil",
            ),
            (vec![Item::HardLink("./h", "../../etc/passwd")], "./h"),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let path = write_deb(
                tmp.path(),
                "evil.deb",
                &testutil::deb(&testutil::control("evil", "1", None), &items, "gz"),
            );
            let dest = tmp.path().join("d").join("out");
            let err = unpack(&path, &dest).unwrap_err();
            let DebError::UnsafePath { entry, .. } = &err else {
                panic!("{bad}: {err}")
            };
            assert_eq!(entry, bad);
            assert!(err.to_string().contains("evil.deb"), "{err}");
            assert!(!tmp.path().join("evil").exists());
            assert!(!tmp.path().join("d/evil").exists());
        }
    }

    #[test]
    fn corrupt_archives_name_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let good = testutil::deb(&testutil::control("p", "1", None), ITEMS, "xz");
        // Flip bytes in the middle of data.tar.xz.
        let members = ar::members(&mut std::io::Cursor::new(&good)).unwrap();
        let data = members.iter().find(|m| m.name == "data.tar.xz").unwrap();
        let mut bad = good.clone();
        for i in 0..16 {
            bad[(data.offset + data.size / 2) as usize + i] ^= 0x5a;
        }
        let path = write_deb(tmp.path(), "p_1_amd64.deb", &bad);
        let err = unpack(&path, &tmp.path().join("out")).unwrap_err();
        assert!(
            matches!(err, DebError::Corrupt { ref member, .. } if member == "data.tar.xz"),
            "{err}"
        );
        assert!(err.to_string().contains("p_1_amd64.deb"), "{err}");

        let path = write_deb(tmp.path(), "trunc.deb", &good[..good.len() - 40]);
        let err = Deb::open(&path).unwrap_err();
        assert!(matches!(err, DebError::Ar { .. }), "{err}");
        assert!(err.to_string().contains("trunc.deb"), "{err}");

        let path = write_deb(tmp.path(), "text.deb", b"hello, not a package\n");
        assert!(matches!(Deb::open(&path).unwrap_err(), DebError::Ar { .. }));

        let not_deb = ar::tests::build(&[("readme", b"x")]);
        let path = write_deb(tmp.path(), "plain.deb", &not_deb);
        assert!(matches!(
            Deb::open(&path).unwrap_err(),
            DebError::NotADeb { .. }
        ));

        let err = Deb::open(&tmp.path().join("missing.deb")).unwrap_err();
        assert!(err.to_string().contains("missing.deb"), "{err}");
    }

    #[test]
    fn metapackages_have_no_payload() {
        let tmp = tempfile::tempdir().unwrap();
        let items = [
            Item::Dir("./usr/share/doc/", 0o755),
            Item::File("./usr/share/bug/m/presubj", 0o644, b"x"),
            Item::Symlink("./usr/share/doc/m", "other"),
        ];
        let path = write_deb(
            tmp.path(),
            "m.deb",
            &testutil::deb(
                &testutil::control("m", "1", Some("other (= 2)")),
                &items,
                "xz",
            ),
        );
        assert!(!Deb::open(&path).unwrap().has_payload().unwrap());
    }

    #[test]
    fn cached_unpack_is_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write_deb(
            tmp.path(),
            "p_1_amd64.deb",
            &testutil::deb(&testutil::control("p", "1", None), ITEMS, "zst"),
        );
        let cache = tmp.path().join("unpacked");
        let tree = unpack_cached(&path, &cache).unwrap();
        assert_eq!(tree, cache.join("p_1_amd64"));
        fs::write(tree.join("marker"), b"").unwrap();
        assert_eq!(unpack_cached(&path, &cache).unwrap(), tree);
        assert!(
            tree.join("marker").exists(),
            "second call must not unpack again"
        );
        // No temporary directories are left behind.
        let names: Vec<_> = fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("p_1_amd64")]);
    }
}
