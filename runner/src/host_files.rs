//! The guest's files on a host the runner reaches by ssh (or this
//! machine): each must be at the path the domain config names, with the
//! local size; the kernel, ramdisk and config are copied when missing, a
//! disk never is (it must be on storage both hosts share). Used by every
//! backend that starts the guest from a config on remote hosts (xl.cfg,
//! libvirt domain XML).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cancel::Cancel;
use crate::xen::host::{HostError, XenHost};

/// A file that is not (and could not be made) what the host needs.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("on {host}: {path}: {why}")]
    Artifact {
        host: String,
        path: PathBuf,
        why: String,
    },
}

/// What [`ensure`] may do about a file that is missing or differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Kernel, ramdisk, config: copied from here when allowed.
    Copyable,
    /// A disk image: must already be there (shared storage), never copied.
    Disk,
}

const STAT_TIMEOUT: Duration = Duration::from_secs(60);

/// Makes sure `path` is on `host` with the size it has here, copying it
/// there (through a temporary name, so a half copy is never used) when it
/// is missing or differs, `kind` allows and `may_copy`. Returns a note
/// when it copied.
pub fn ensure(
    host: &XenHost,
    path: &Path,
    kind: FileKind,
    may_copy: bool,
    cancel: &Cancel,
) -> Result<Option<String>, FileError> {
    let p = path.to_string_lossy().into_owned();
    let local = std::fs::metadata(path).ok().map(|md| md.len());
    let out = host.run(
        &["stat", "-L", "-c", "%s", p.as_str()],
        STAT_TIMEOUT,
        cancel,
    )?;
    let remote: Option<u64> = out
        .success
        .then(|| out.stdout.trim().parse().ok())
        .flatten();
    if remote.is_some() && (local.is_none() || remote == local) {
        return Ok(None);
    }
    let why = match remote {
        None => "missing".to_string(),
        Some(r) => format!("{r} bytes there, {} here", local.unwrap_or(0)),
    };
    let artifact = |why: String| FileError::Artifact {
        host: host.name().to_string(),
        path: path.to_path_buf(),
        why,
    };
    if kind == FileKind::Disk {
        return Err(artifact(format!(
            "{why}; the disk must be at this path on storage both hosts share"
        )));
    }
    if !may_copy || local.is_none() || *host == XenHost::Local {
        return Err(artifact(why));
    }
    let script =
        "mkdir -p \"$(dirname \"$1\")\" && cat >\"$1.imgrun-tmp\" && mv \"$1.imgrun-tmp\" \"$1\"";
    let argv = ["sh", "-c", script, "sh", p.as_str()];
    let out = host.run_with(&argv, Some(path), Duration::from_secs(600), cancel)?;
    if !out.success {
        return Err(artifact(format!("copy failed: {}", out.tail(500))));
    }
    Ok(Some(format!(
        "copied {} to {}",
        path.display(),
        host.name()
    )))
}
