//! Inputs: Debian packages (fetched with `apt-get download`, unpacked in
//! Rust) and local files or directories.
//!
//! The cache directory is the caller's choice. The tests that use real
//! packages (`tests/sources_apt.rs`, `tests/kernel_modules.rs`) cache under
//! `$IMGBUILD_CACHE` when it is set (to share downloads across runs and
//! checkouts), else under Cargo's target tmp directory.
//!
//! ```no_run
//! use imgbuild::sources::{self, PackageSpec};
//! let spec: PackageSpec = "busybox-static".parse()?;
//! let cache = std::path::Path::new("/tmp/imgbuild-cache");
//! let deb = sources::fetch(&spec, cache, &mut |_event| {})?;
//! let tree = sources::unpack_cached(&deb, &cache.join("unpacked"))?;
//! assert!(tree.join("bin/busybox").exists());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod ar;
pub mod control;
pub mod deb;
pub mod fetch;
pub mod local;
pub mod spec;
pub mod version;

#[cfg(test)]
pub(crate) mod testutil;

use std::path::{Path, PathBuf};

pub use control::{Control, Dependency};
pub use deb::{Deb, DebError, UnpackReport, unpack, unpack_cached};
pub use fetch::{Apt, FetchError, FetchEvent, fetch};
pub use local::{LocalError, LocalKind, LocalSource, local};
pub use spec::{PackageSpec, SpecError};

/// One input of a recipe: a Debian package or a local path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A Debian package, fetched into the cache.
    Package(PackageSpec),
    /// A file, directory or `.deb` on the build host (relative to the recipe).
    Local(PathBuf),
}

/// An input could not be made available.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Fetching the package failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// Unpacking a `.deb` failed.
    #[error(transparent)]
    Deb(#[from] DebError),
    /// A local path is unusable.
    #[error(transparent)]
    Local(#[from] LocalError),
}

impl Input {
    /// Makes the input available on disk and returns its path: for a package
    /// (or a local `.deb`), the directory it is unpacked into under
    /// `cache_dir/unpacked/`; for a local file or directory, its path.
    pub fn materialize(
        &self,
        base: &Path,
        cache_dir: &Path,
        progress: &mut dyn FnMut(&FetchEvent),
    ) -> Result<PathBuf, SourceError> {
        let unpacked = cache_dir.join("unpacked");
        match self {
            Input::Package(spec) => {
                let deb = fetch(spec, cache_dir, progress)?;
                Ok(unpack_cached(&deb, &unpacked)?)
            }
            Input::Local(path) => {
                let l = local(path, base)?;
                match l.kind {
                    LocalKind::Deb => {
                        // Keyed by size and mtime too: an edited local .deb is unpacked again.
                        let meta =
                            std::fs::metadata(&l.path).map_err(|source| LocalError::Missing {
                                path: l.path.clone(),
                                source,
                            })?;
                        let mtime = meta
                            .modified()
                            .ok()
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                            .map_or(0, |d| d.as_nanos());
                        let stem = l.path.file_stem().unwrap_or_default().to_string_lossy();
                        let key = format!("local-{stem}-{}-{mtime}", meta.len());
                        Ok(deb::unpack_cached_as(&l.path, &unpacked.join(key))?)
                    }
                    LocalKind::File | LocalKind::Dir => Ok(l.path),
                }
            }
        }
    }
}
