//! Local inputs: a file or directory on the build host, given relative to
//! the recipe's directory.

use std::path::{Path, PathBuf};

/// What a local input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalKind {
    /// A regular file (or a symlink to one).
    File,
    /// A directory (or a symlink to one).
    Dir,
    /// A `.deb` file, to be unpacked like a fetched package.
    Deb,
}

/// A checked local input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSource {
    /// Absolute path (`base` joined with the given path; not canonicalised,
    /// so symlinks in it are kept as the user wrote them).
    pub path: PathBuf,
    /// File, directory or `.deb`.
    pub kind: LocalKind,
}

/// A local input is unusable.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The path does not exist or cannot be examined.
    #[error("input {path}: {source}")]
    Missing {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The path is neither a regular file nor a directory.
    #[error("input {0} is neither a regular file nor a directory")]
    NotFileOrDir(PathBuf),
}

/// Checks the input `path` (relative paths are relative to `base`, the
/// recipe's directory).
pub fn local(path: &Path, base: &Path) -> Result<LocalSource, LocalError> {
    let full = if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    };
    let meta = std::fs::metadata(&full).map_err(|source| LocalError::Missing {
        path: full.clone(),
        source,
    })?;
    let kind = if meta.is_dir() {
        LocalKind::Dir
    } else if meta.is_file() {
        if full.extension().is_some_and(|e| e == "deb") {
            LocalKind::Deb
        } else {
            LocalKind::File
        }
    } else {
        return Err(LocalError::NotFileOrDir(full));
    };
    Ok(LocalSource { path: full, kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_errors() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("vmlinuz"), b"k").unwrap();
        std::fs::write(tmp.path().join("x.deb"), b"d").unwrap();
        std::fs::create_dir(tmp.path().join("tree")).unwrap();
        let l = local(Path::new("vmlinuz"), tmp.path()).unwrap();
        assert_eq!(l.kind, LocalKind::File);
        assert_eq!(l.path, tmp.path().join("vmlinuz"));
        assert_eq!(
            local(Path::new("tree"), tmp.path()).unwrap().kind,
            LocalKind::Dir
        );
        assert_eq!(
            local(Path::new("x.deb"), tmp.path()).unwrap().kind,
            LocalKind::Deb
        );
        let abs = tmp.path().join("tree");
        assert_eq!(local(&abs, Path::new("/elsewhere")).unwrap().path, abs);
        let err = local(Path::new("nope"), tmp.path()).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        let err = local(Path::new("/dev/null"), tmp.path()).unwrap_err();
        assert!(matches!(err, LocalError::NotFileOrDir(_)), "{err}");
    }
}
