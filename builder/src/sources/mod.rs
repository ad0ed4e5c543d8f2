//! Inputs: Debian packages (fetched with `apt-get download`, unpacked in
//! Rust) and local files or directories.
//!
//! Which version of a package: the one apt would download now (its
//! candidate, or the pinned version), never "whatever is cached"; the cache
//! holds `.deb`s verified against the package lists' SHA-256 ([`mod@fetch`]),
//! their unpacked trees and nothing else that decides anything ([`cache`]).
//!
//! The cache directory is the caller's choice ([`cache::locate`] is the
//! command line's). The tests that use real packages
//! (`tests/sources_apt.rs`, `tests/kernel_modules.rs`) cache under
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
pub mod cache;
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
pub use fetch::{Apt, Candidate, FetchError, FetchEvent, FetchedDeb, ListHash, fetch, sha256_file};
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

/// Where a materialized input came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A package: what was asked for, and the `.deb` used (a metapackage
    /// resolved to the package it depends on).
    Package {
        /// The spec as given (`linux-image-amd64`).
        requested: PackageSpec,
        /// The verified `.deb`.
        deb: FetchedDeb,
    },
    /// A local `.deb`, unpacked into the cache.
    LocalDeb {
        /// Its absolute path.
        path: PathBuf,
        /// Its SHA-256, lower-case hex.
        sha256: String,
    },
    /// A local file or directory, used where it is.
    Local {
        /// Its absolute path.
        path: PathBuf,
    },
}

/// An input made available on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Materialized {
    /// The unpacked tree, or the local file or directory.
    pub path: PathBuf,
    /// Where it came from.
    pub origin: Origin,
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
    /// Makes the input available on disk: a package (fetched with `apt`,
    /// see [`Apt::fetch_deb`]) or a local `.deb` is unpacked once into
    /// `cache_dir/unpacked/`, keyed by its SHA-256 ([`cache::tree_name`]); a
    /// local file or directory is used where it is.
    pub fn materialize(
        &self,
        base: &Path,
        cache_dir: &Path,
        apt: &Apt,
        progress: &mut dyn FnMut(&FetchEvent),
    ) -> Result<Materialized, SourceError> {
        let unpacked = cache_dir.join(cache::UNPACKED_DIR);
        match self {
            Input::Package(spec) => {
                let deb = apt.fetch_deb(spec, cache_dir, progress)?;
                let tree = unpacked.join(cache::tree_name(&deb.path, &deb.sha256));
                let path = deb::unpack_cached_as(&deb.path, &tree)?;
                Ok(Materialized {
                    path,
                    origin: Origin::Package {
                        requested: spec.clone(),
                        deb,
                    },
                })
            }
            Input::Local(path) => {
                let l = local(path, base)?;
                let abs = std::path::absolute(&l.path).unwrap_or_else(|_| l.path.clone());
                match l.kind {
                    LocalKind::Deb => {
                        let sha256 =
                            sha256_file(&l.path).map_err(|source| LocalError::Missing {
                                path: l.path.clone(),
                                source,
                            })?;
                        let tree = unpacked.join(cache::local_tree_name(&l.path, &sha256));
                        Ok(Materialized {
                            path: deb::unpack_cached_as(&l.path, &tree)?,
                            origin: Origin::LocalDeb { path: abs, sha256 },
                        })
                    }
                    LocalKind::File | LocalKind::Dir => Ok(Materialized {
                        path: l.path,
                        origin: Origin::Local { path: abs },
                    }),
                }
            }
        }
    }
}
