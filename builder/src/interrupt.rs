//! What a signal, or a killed run, must not leave behind: the directories
//! a run writes into before its outputs are complete — the staging
//! directory next to the outputs (`.<name>.staging-<pid>`, also used by
//! `imgbuild mkfs` next to its image) and a check's directory in `$TMPDIR`
//! (`.imgbuild-check-<name>-<pid>`).
//!
//! Each is a [`WorkDir`], registered while it exists. The binary's signal
//! handler calls [`clean_up`], which removes them all and keeps any new one
//! from being made, or one from being committed, until the process exits:
//! a signal lands before a commit or after it, never in the middle. After
//! SIGKILL nothing runs, so the next run removes such directories whose
//! process is gone ([`remove_stale`]).

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// The work directories that exist now. Locked while one is made,
/// committed or removed, and by [`clean_up`] for good.
static WORK: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn work() -> MutexGuard<'static, Vec<PathBuf>> {
    WORK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// True once [`clean_up`] ran: a signal is ending the process, and
/// errors caused by the removal are not worth reporting.
pub fn is_set() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The two kinds of work directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `.<target>.staging-<pid>`, next to the outputs (or the image).
    Staging,
    /// `.imgbuild-check-<guest>-<pid>`, in `$TMPDIR`.
    Check,
}

/// `.<target>.staging-<pid>`: where a build of `target` (a guest name,
/// or an image's file name) is staged, next to it.
pub fn staging_name(target: &str, pid: u32) -> String {
    format!(".{target}.staging-{pid}")
}

/// `.imgbuild-check-<guest>-<pid>`: a check's directory in `$TMPDIR`.
pub fn check_name(guest: &str, pid: u32) -> String {
    format!(".imgbuild-check-{guest}-{pid}")
}

/// The target and process id in a name of `kind` ([`staging_name`],
/// [`check_name`]); `None` for any other name.
pub fn parse_name(kind: Kind, name: &str) -> Option<(&str, u32)> {
    let (target, pid) = match kind {
        Kind::Check => name.strip_prefix(".imgbuild-check-")?.rsplit_once('-')?,
        Kind::Staging => name.strip_prefix('.')?.rsplit_once(".staging-")?,
    };
    let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    if target.is_empty() || !digits {
        return None;
    }
    Some((target, pid.parse().ok()?))
}

/// A directory a run writes into: removed when dropped, or by
/// [`clean_up`] when a signal arrives.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    /// Makes `path`, a new empty directory (one left under that name
    /// is removed first), and registers it.
    pub fn create(path: PathBuf) -> io::Result<WorkDir> {
        let mut w = work();
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path)?;
        w.push(path.clone());
        Ok(WorkDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f`, which moves the finished files out of the directory,
    /// with signals held off: a signal's cleanup happens before it
    /// (and `f` never runs) or after it.
    pub fn commit<T>(&self, f: impl FnOnce(&Path) -> T) -> T {
        let _w = work();
        f(&self.path)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let mut w = work();
        remove_tree(&self.path);
        w.retain(|p| p != &self.path);
    }
}

/// Runs `f` with signals held off (for a file made and removed again
/// within `f`, such as a size probe).
pub fn hold_off<T>(f: impl FnOnce() -> T) -> T {
    let _w = work();
    f()
}

/// For a signal handler: marks the run interrupted and removes every
/// work directory. Returns the lock that keeps new ones from being made
/// and old ones committed: hold it until the process exits.
pub fn clean_up() -> MutexGuard<'static, Vec<PathBuf>> {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let w = work();
    for p in w.iter() {
        remove_tree(p);
    }
    w
}

/// Removes the tree at `p`, again if the running build put a file in
/// it meanwhile.
fn remove_tree(p: &Path) {
    for _ in 0..100 {
        match fs::remove_dir_all(p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => continue,
            _ => return,
        }
    }
}

/// Removes from `dir` the work directories of `kind` ([`parse_name`];
/// of `target` only, if given) left by runs that were killed: whose
/// process is gone (no `/proc/<pid>`) and that belong to this user.
/// Nothing when `/proc` is not mounted. Returns what it removed.
pub fn remove_stale(dir: &Path, kind: Kind, target: Option<&str>) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let proc = Path::new("/proc");
    let (Ok(entries), true) = (fs::read_dir(dir), proc.join("self").is_dir()) else {
        return removed;
    };
    let uid = rustix::process::geteuid().as_raw();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some((t, pid)) = name.to_str().and_then(|n| parse_name(kind, n)) else {
            continue;
        };
        let ours = e.metadata().is_ok_and(|m| m.is_dir() && m.uid() == uid);
        let alive = pid == std::process::id() || proc.join(pid.to_string()).exists();
        if ours && !alive && target.is_none_or(|want| want == t) {
            let p = e.path();
            if fs::remove_dir_all(&p).is_ok() {
                removed.push(p);
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(
            parse_name(Kind::Staging, &staging_name("busy.box", 42)),
            Some(("busy.box", 42))
        );
        assert_eq!(
            parse_name(Kind::Check, &check_name("a-b-c", 7)),
            Some(("a-b-c", 7))
        );
        assert_eq!(parse_name(Kind::Check, &staging_name("x", 7)), None);
        assert_eq!(parse_name(Kind::Staging, &check_name("x", 7)), None);
        for other in [
            "busybox.staging-1",
            ".busybox.staging-",
            ".busybox.staging-1x",
            "..staging-1",
            ".imgbuild-check-1",
            ".imgbuild-check--1",
            ".imgbuild-check-x-",
            ".rootfs.img.tmp-1-0",
        ] {
            for kind in [Kind::Staging, Kind::Check] {
                assert_eq!(parse_name(kind, other), None, "{other}");
            }
        }
    }

    #[test]
    fn stale_directories_of_dead_processes_go() {
        let d = tempfile::tempdir().unwrap();
        // A process that has exited: its pid is free.
        let mut c = std::process::Command::new("true").spawn().unwrap();
        c.wait().unwrap();
        let dead = c.id();
        let mk = |n: String| {
            let p = d.path().join(n);
            fs::create_dir_all(p.join("x")).unwrap();
            p
        };
        let staging = mk(staging_name("g", dead));
        let check = mk(check_name("g", dead));
        let other = mk(staging_name("other", dead));
        let kept = [
            mk(staging_name("g", std::process::id())),
            mk(staging_name("g", 1)),
            mk(format!("g.staging-{dead}")),
        ];
        let file = d.path().join(staging_name("f", dead));
        fs::write(&file, "").unwrap();
        assert_eq!(
            remove_stale(d.path(), Kind::Staging, Some("other")),
            [other]
        );
        assert_eq!(remove_stale(d.path(), Kind::Check, None), [check]);
        assert_eq!(remove_stale(d.path(), Kind::Staging, None), [staging]);
        assert!(kept.iter().all(|k| k.is_dir()) && file.is_file());
    }

    #[test]
    fn a_work_dir_goes_when_dropped_but_what_was_committed_stays() {
        let d = tempfile::tempdir().unwrap();
        let w = WorkDir::create(d.path().join("w")).unwrap();
        fs::write(w.path().join("f"), "x").unwrap();
        w.commit(|p| fs::rename(p.join("f"), d.path().join("f")))
            .unwrap();
        drop(w);
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
        assert!(d.path().join("f").is_file());
    }
}
