//! Fetching Debian packages with `apt-get download` into a cache directory.
//!
//! **Which version is apt's decision, not the cache's.** For a package
//! without a version the builder asks apt for its candidate,
//! `apt-cache policy NAME` (`Candidate:`): the version `apt-get install`
//! and `apt-get download` would take now under the system's apt
//! configuration (sources, pins, priorities). Then `apt-cache show NAME`
//! gives that version's record of the package lists (architecture, size,
//! `SHA256:`). An unpinned name therefore follows the lists: a security
//! update is picked up after `apt-get update`, and a backports package in
//! the cache is not taken unless apt's policy prefers it. Downloading is
//! `apt-get download -q NAME=VERSION`, pinned to what was resolved.
//!
//! **The cache is only a cache.** A `.deb` is kept under apt's file name
//! (`name_version_arch.deb`, `:` written `%3a`) and used only while its
//! SHA-256 equals the lists' record; otherwise it is downloaded again or,
//! offline ([`Apt::offline`]), that is an error. Offline, only `apt-cache`
//! runs (local lists, no network).
//!
//! The apt tools run with an argv (never through a shell), unprivileged or
//! as root (as root `apt-get download` prints a harmless "Download is
//! performed unsandboxed" warning, which is ignored). Downloads land in a
//! temporary directory inside the cache and are renamed into place once
//! complete and verified, so the cache never holds a partial file.
//!
//! When the system's apt keeps no binary cache of its lists
//! (`Dir::Cache::pkgcache ""`, as Debian's container images configure),
//! every apt call would parse all the package lists again (half a second
//! each); then the tools get `-o Dir::Cache::pkgcache=<cache>/apt/pkgcache.bin`,
//! a cache apt itself keeps and checks against the lists (about 10 ms per
//! call after the first). Nothing that chooses versions changes.

use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use sha2::{Digest, Sha256, Sha512};

use super::cache::APT_DIR;
use super::control::Control;
use super::deb::{Deb, DebError};
use super::spec::PackageSpec;
use crate::manifest::hex;

/// Progress of a fetch, for progress bars and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchEvent {
    /// The package was found in the cache, verified; nothing downloaded.
    Cached {
        /// `name=version`.
        package: String,
        /// The cached file.
        path: PathBuf,
    },
    /// A download starts.
    Started {
        /// `name=version`.
        package: String,
        /// Expected size in bytes, if apt announced it.
        total: Option<u64>,
    },
    /// Bytes received so far.
    Progress {
        /// `name=version`.
        package: String,
        /// Bytes on disk so far.
        downloaded: u64,
        /// Expected size in bytes, if known.
        total: Option<u64>,
    },
    /// A download finished and the file is in the cache.
    Downloaded {
        /// `name=version`.
        package: String,
        /// The file in the cache.
        path: PathBuf,
    },
    /// A metapackage was replaced by the package it depends on.
    Resolved {
        /// The metapackage (`linux-image-amd64=6.1.192-3`).
        from: String,
        /// The concrete package (`linux-image-6.1.0-57-amd64=6.1.192-3`).
        to: String,
    },
}

/// A package could not be fetched; every variant names the package.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// An apt tool cannot be run, so the package lists cannot be asked.
    #[error(
        "package {package}: apt (apt-cache, apt-get) is needed to read the package lists but {program:?} cannot be run: {source}"
    )]
    AptMissing {
        /// The package.
        package: String,
        /// The program tried.
        program: OsString,
        /// Why it could not run.
        source: std::io::Error,
    },
    /// apt does not know the package.
    #[error(
        "package {package} not found: the package lists do not have it (is the name right? run apt-get update?)"
    )]
    NotFound {
        /// The package.
        package: String,
    },
    /// apt knows the package but not this version.
    #[error("package {package}: version {version} not found ({message})")]
    VersionNotFound {
        /// The package name.
        package: String,
        /// The version asked for.
        version: String,
        /// apt's message.
        message: String,
    },
    /// The package is virtual or has no downloadable candidate.
    #[error("package {package} has no installation candidate ({message})")]
    NoCandidate {
        /// The package.
        package: String,
        /// apt's message.
        message: String,
    },
    /// apt-get failed for another reason (network, repository, disk).
    #[error("downloading package {package} failed: {message}")]
    Download {
        /// The package.
        package: String,
        /// apt's error lines, or what went wrong.
        message: String,
    },
    /// The package lists give no usable hash for the file.
    #[error(
        "package {package}: apt gives no SHA-256 for {file} (it printed {hash:?}), so a cached copy cannot be verified"
    )]
    NoHash {
        /// The package.
        package: String,
        /// apt's file name.
        file: String,
        /// What apt printed instead.
        hash: String,
    },
    /// Offline: the package is not in the cache.
    #[error(
        "package {package} version {version} ({file}) is not in the cache {cache}, and --offline downloads nothing"
    )]
    NotCached {
        /// The package name.
        package: String,
        /// Its version (the candidate, or the pinned one).
        version: String,
        /// apt's file name.
        file: String,
        /// The cache directory.
        cache: PathBuf,
    },
    /// Offline: the cached file is not what the package lists describe.
    #[error(
        "package {package}: the cached {path} is not the package the lists describe (it has {actual}, the lists say {expected}), and --offline downloads nothing"
    )]
    CacheMismatch {
        /// `name=version`.
        package: String,
        /// The cached file.
        path: PathBuf,
        /// The lists' hash, `SHA256:hex` (or `SHA512:hex`).
        expected: String,
        /// The file's hash, the same way.
        actual: String,
    },
    /// The cache directory could not be used.
    #[error("package {package}: cache directory {path}: {source}")]
    Cache {
        /// The package.
        package: String,
        /// The path concerned.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The downloaded or cached file is not a usable `.deb`.
    #[error("package {package}: {source}")]
    Deb {
        /// The package.
        package: String,
        /// What is wrong with the file.
        source: DebError,
    },
    /// A metapackage has no dependency to resolve to, or the chain is too long.
    #[error("package {package} is a metapackage with no usable dependency to resolve to")]
    Metapackage {
        /// The package.
        package: String,
    },
}

/// A hash of a package file as the package lists give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListHash {
    /// `SHA256:` (what Debian's lists give), lower-case hex.
    Sha256(String),
    /// `SHA512:`, lower-case hex.
    Sha512(String),
}

impl ListHash {
    /// Parses apt's `SHA256:hex` (or `SHA512:hex`); other hashes are `None`.
    pub fn parse(s: &str) -> Option<ListHash> {
        let (algorithm, hex) = s.split_once(':')?;
        let hex = hex.to_ascii_lowercase();
        let digits = |n: usize| hex.len() == n && hex.bytes().all(|b| b.is_ascii_hexdigit());
        match algorithm.to_ascii_uppercase().as_str() {
            "SHA256" if digits(64) => Some(ListHash::Sha256(hex)),
            "SHA512" if digits(128) => Some(ListHash::Sha512(hex)),
            _ => None,
        }
    }

    /// `SHA256` or `SHA512`.
    pub fn algorithm(&self) -> &'static str {
        match self {
            ListHash::Sha256(_) => "SHA256",
            ListHash::Sha512(_) => "SHA512",
        }
    }

    /// The hex digest.
    pub fn hex(&self) -> &str {
        match self {
            ListHash::Sha256(h) | ListHash::Sha512(h) => h,
        }
    }
}

/// What apt would download for a package: the candidate (or pinned) version's
/// file, as the package lists describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Package name.
    pub package: String,
    /// Exact version.
    pub version: String,
    /// Architecture (`amd64`, `all`).
    pub architecture: String,
    /// apt's file name, `name_version_arch.deb` (`:` written `%3a`).
    pub file_name: String,
    /// Size in bytes, if apt gave it.
    pub size: Option<u64>,
    /// The lists' hash of the file.
    pub hash: ListHash,
}

impl Candidate {
    /// `name=version`: exactly this candidate.
    pub fn spec(&self) -> PackageSpec {
        PackageSpec {
            name: self.package.clone(),
            version: Some(self.version.clone()),
        }
    }
}

/// A package file in the cache, verified against the package lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedDeb {
    /// The file.
    pub path: PathBuf,
    /// Package name.
    pub package: String,
    /// Exact version.
    pub version: String,
    /// Architecture.
    pub architecture: String,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
}

/// Runs the apt tools (`apt-get`, `apt-cache`) or stand-ins with the same
/// interface.
#[derive(Debug, Clone)]
pub struct Apt {
    /// `apt-get` (program and leading arguments).
    apt_get: Vec<OsString>,
    /// `apt-cache` (program and leading arguments).
    apt_cache: Vec<OsString>,
    offline: bool,
    /// The system's apt: its configuration may be asked (`apt-config`).
    system: bool,
}

impl Default for Apt {
    fn default() -> Self {
        Apt {
            apt_get: vec!["apt-get".into()],
            apt_cache: vec!["apt-cache".into()],
            offline: false,
            system: true,
        }
    }
}

/// How often the download's size is polled for progress.
const POLL: Duration = Duration::from_millis(100);
/// Longest metapackage → package chain followed.
const MAX_RESOLVE_DEPTH: usize = 4;

/// Fetches `spec` into `cache_dir` with the system's `apt-get`; see [`Apt::fetch`].
pub fn fetch(
    spec: &PackageSpec,
    cache_dir: &Path,
    progress: &mut dyn FnMut(&FetchEvent),
) -> Result<PathBuf, FetchError> {
    Apt::default().fetch(spec, cache_dir, progress)
}

/// Lower-case hex SHA-256 of the file at `path`.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    hash_file(path, false).map(|(sha256, _)| sha256)
}

/// SHA-256 and, if `sha512`, SHA-512 of the file at `path`, in one read.
fn hash_file(path: &Path, sha512: bool) -> std::io::Result<(String, Option<String>)> {
    let mut f = fs::File::open(path)?;
    let mut a = Sha256::new();
    let mut b = sha512.then(Sha512::new);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let data = buf.get(..n).unwrap_or_default();
        a.update(data);
        if let Some(b) = &mut b {
            b.update(data);
        }
    }
    Ok((hex(&a.finalize()), b.map(|b| hex(&b.finalize()))))
}

/// A file checked against the lists' hash.
struct Checked {
    /// Its SHA-256.
    sha256: String,
    /// Its hash in the lists' algorithm.
    actual: String,
    /// True if that equals the lists'.
    matches: bool,
}

fn check(path: &Path, want: &ListHash) -> std::io::Result<Checked> {
    let (sha256, sha512) = hash_file(path, matches!(want, ListHash::Sha512(_)))?;
    let actual = sha512.unwrap_or_else(|| sha256.clone());
    Ok(Checked {
        matches: actual == want.hex(),
        sha256,
        actual,
    })
}

/// What the system's apt configuration says (asked once per process with
/// `apt-config`).
#[derive(Debug, Default)]
struct SystemApt {
    /// `Dir::Cache::pkgcache ""`: apt keeps no binary cache of its lists.
    pkgcache_disabled: bool,
    /// `APT::Architecture`, the native architecture.
    arch: Option<String>,
}

fn system_apt() -> &'static SystemApt {
    static SYSTEM: OnceLock<SystemApt> = OnceLock::new();
    SYSTEM.get_or_init(|| {
        let Ok(out) = Command::new("apt-config")
            .args([
                "shell",
                "C",
                "Dir::Cache::pkgcache",
                "A",
                "APT::Architecture",
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .env("LC_ALL", "C")
            .output()
        else {
            return SystemApt::default();
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let value = |var: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(var)?.strip_prefix('='))
                .map(|v| v.trim().trim_matches('\'').to_owned())
        };
        SystemApt {
            pkgcache_disabled: out.status.success() && value("C").is_some_and(|v| v.is_empty()),
            arch: value("A").filter(|a| !a.is_empty()),
        }
    })
}

impl Apt {
    /// Runs `apt_get` and `apt_cache` (each a program and its leading
    /// arguments, e.g. `["sh", "stand-in", "get"]`) instead of the system's
    /// `apt-get` and `apt-cache`.
    pub fn with_tools(
        apt_get: impl IntoIterator<Item = impl Into<OsString>>,
        apt_cache: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Apt {
        Apt {
            apt_get: apt_get.into_iter().map(Into::into).collect(),
            apt_cache: apt_cache.into_iter().map(Into::into).collect(),
            offline: false,
            system: false,
        }
    }

    /// Offline: only the local package lists are asked (`apt-cache`, no
    /// network) and nothing is downloaded; a package whose verified `.deb`
    /// is not cached is an error ([`FetchError::NotCached`],
    /// [`FetchError::CacheMismatch`]).
    pub fn offline(mut self, offline: bool) -> Apt {
        self.offline = offline;
        self
    }

    /// True if [`Apt::offline`].
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// The command `tool`, with apt's binary cache under `cache_dir` when
    /// the system keeps none (see the module documentation).
    fn command(&self, tool: &[OsString], cache_dir: &Path) -> Command {
        let (program, args) = tool
            .split_first()
            .map_or((OsString::new(), &[][..]), |(p, a)| (p.clone(), a));
        let mut c = Command::new(program);
        c.args(args);
        if self.system && system_apt().pkgcache_disabled {
            if let Some(p) = self.own_pkgcache(cache_dir) {
                let mut o = OsString::from("Dir::Cache::pkgcache=");
                o.push(p);
                c.arg("-o").arg(o);
            }
        }
        c.stdin(Stdio::null()).env("LC_ALL", "C");
        c
    }

    /// Runs `apt-cache ARGS`: (success, stdout, stdout and stderr).
    fn apt_cache(
        &self,
        spec: &PackageSpec,
        args: &[&str],
        cache_dir: &Path,
    ) -> Result<(bool, String, String), FetchError> {
        let out = self
            .command(&self.apt_cache, cache_dir)
            .args(args)
            .output()
            .map_err(|source| self.spawn_error(&self.apt_cache, spec, source))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        Ok((out.status.success(), stdout, all))
    }

    /// `<cache_dir>/apt/pkgcache.bin` (absolute), its directory created;
    /// offline, only in an existing cache.
    fn own_pkgcache(&self, cache_dir: &Path) -> Option<PathBuf> {
        if self.offline && !cache_dir.is_dir() {
            return None;
        }
        let dir = std::path::absolute(cache_dir).ok()?.join(APT_DIR);
        fs::create_dir_all(&dir).ok()?;
        Some(dir.join("pkgcache.bin"))
    }

    /// Returns the `.deb` for `spec` in `cache_dir` (see [`Apt::fetch_deb`]).
    pub fn fetch(
        &self,
        spec: &PackageSpec,
        cache_dir: &Path,
        progress: &mut dyn FnMut(&FetchEvent),
    ) -> Result<PathBuf, FetchError> {
        self.fetch_deb(spec, cache_dir, progress).map(|d| d.path)
    }

    /// The verified `.deb` for `spec` in `cache_dir`: apt's candidate (or the
    /// pinned version, see [`Apt::candidate`]), from the cache if a file with
    /// the lists' hash is there, else downloaded ([`Apt::fetch_candidate`]).
    /// A metapackage (no files outside `usr/share/doc`, e.g.
    /// `linux-image-amd64`) is resolved to the package its first `Depends:`
    /// names, pinned to the version given there with `(= version)` (else
    /// that package's candidate), and that package's `.deb` is returned.
    pub fn fetch_deb(
        &self,
        spec: &PackageSpec,
        cache_dir: &Path,
        progress: &mut dyn FnMut(&FetchEvent),
    ) -> Result<FetchedDeb, FetchError> {
        let mut spec = spec.clone();
        for _ in 0..MAX_RESOLVE_DEPTH {
            let cand = self.candidate(&spec, cache_dir)?;
            let fetched = self.fetch_candidate(&cand, cache_dir, progress)?;
            let from = cand.spec().to_string();
            let deb_err = |source| FetchError::Deb {
                package: from.clone(),
                source,
            };
            let deb = Deb::open(&fetched.path).map_err(deb_err)?;
            if deb.has_payload().map_err(deb_err)? {
                return Ok(fetched);
            }
            let control = deb.control().map_err(deb_err)?;
            let dep = control
                .depends()
                .into_iter()
                .find_map(|alts| alts.into_iter().next())
                .ok_or_else(|| FetchError::Metapackage {
                    package: from.clone(),
                })?;
            let next = PackageSpec {
                version: dep.version.filter(|(op, _)| op == "=").map(|(_, v)| v),
                name: dep.name,
            };
            progress(&FetchEvent::Resolved {
                from,
                to: next.to_string(),
            });
            spec = next;
        }
        Err(FetchError::Metapackage {
            package: spec.to_string(),
        })
    }

    /// Like [`Apt::fetch_deb`] but never resolves metapackages.
    pub fn fetch_exact(
        &self,
        spec: &PackageSpec,
        cache_dir: &Path,
        progress: &mut dyn FnMut(&FetchEvent),
    ) -> Result<FetchedDeb, FetchError> {
        let cand = self.candidate(spec, cache_dir)?;
        self.fetch_candidate(&cand, cache_dir, progress)
    }

    /// What apt would download for `spec` now, from the package lists.
    /// Without a version that is apt's candidate (`apt-cache policy NAME`),
    /// with one that version; its record (`apt-cache show NAME`) gives the
    /// architecture (the native one, or `all`), size and hash. No network.
    pub fn candidate(&self, spec: &PackageSpec, cache_dir: &Path) -> Result<Candidate, FetchError> {
        let name = &spec.name;
        let version = match &spec.version {
            Some(v) => v.clone(),
            None => self.policy_candidate(spec, cache_dir)?,
        };
        let (ok, stdout, all) = self.apt_cache(spec, &["show", name], cache_dir)?;
        if !ok {
            return Err(classify(spec, &all));
        }
        let records: Vec<Control> = stdout
            .split("\n\n")
            .map(Control::parse)
            .filter(|c| c.package() == Some(name.as_str()))
            .collect();
        let native = if self.system {
            system_apt().arch.as_deref()
        } else {
            None
        };
        let arch_ok = |c: &Control| match (native, c.get("Architecture")) {
            (Some(n), Some(a)) => a == n || a == "all",
            (None, Some(_)) => true,
            (_, None) => false,
        };
        let Some(rec) = records
            .iter()
            .find(|c| c.version() == Some(version.as_str()) && arch_ok(c))
        else {
            if records.is_empty() {
                return Err(FetchError::NotFound {
                    package: name.clone(),
                });
            }
            let known: Vec<&str> = records.iter().filter_map(Control::version).collect();
            return Err(FetchError::VersionNotFound {
                package: name.clone(),
                version,
                message: format!("the package lists have {}", known.join(", ")),
            });
        };
        let architecture = rec.get("Architecture").unwrap_or_default().to_owned();
        let file_name = format!("{name}_{}_{architecture}.deb", version.replace(':', "%3a"));
        let sha256 = rec.get("SHA256").map(|h| format!("SHA256:{h}"));
        let sha512 = rec.get("SHA512").map(|h| format!("SHA512:{h}"));
        let hash = sha256
            .iter()
            .chain(&sha512)
            .find_map(|h| ListHash::parse(h))
            .ok_or_else(|| FetchError::NoHash {
                package: format!("{name}={version}"),
                file: file_name.clone(),
                hash: sha256.or(sha512).unwrap_or_else(|| "nothing".into()),
            })?;
        Ok(Candidate {
            package: name.clone(),
            size: rec.get("Size").and_then(|s| s.parse().ok()),
            version,
            architecture,
            file_name,
            hash,
        })
    }

    /// apt's candidate version of `spec.name`: `Candidate:` of
    /// `apt-cache policy NAME`.
    fn policy_candidate(&self, spec: &PackageSpec, cache_dir: &Path) -> Result<String, FetchError> {
        let name = &spec.name;
        let (ok, stdout, all) = self.apt_cache(spec, &["policy", name], cache_dir)?;
        if !ok {
            return Err(classify(spec, &all));
        }
        // NAME:
        //   Installed: (none)
        //   Candidate: 1.2-3
        let header = format!("{name}:");
        let candidate = stdout
            .lines()
            .skip_while(|l| l.trim_end() != header)
            .skip(1)
            .take_while(|l| l.starts_with(' '))
            .find_map(|l| l.trim().strip_prefix("Candidate:"))
            .map(str::trim)
            .ok_or_else(|| FetchError::NotFound {
                package: name.clone(),
            })?;
        if candidate == "(none)" || candidate.is_empty() {
            return Err(FetchError::NoCandidate {
                package: name.clone(),
                message: "apt-cache policy says Candidate: (none); a virtual package?".into(),
            });
        }
        Ok(candidate.to_owned())
    }

    /// The `.deb` of `cand` in `cache_dir`: the cached file if its hash is
    /// the lists', else downloaded (replacing a cached file that differs).
    /// Offline, a missing or different file is an error.
    pub fn fetch_candidate(
        &self,
        cand: &Candidate,
        cache_dir: &Path,
        progress: &mut dyn FnMut(&FetchEvent),
    ) -> Result<FetchedDeb, FetchError> {
        let package = cand.spec().to_string();
        let cache_err = |path: &Path, source| FetchError::Cache {
            package: package.clone(),
            path: path.to_owned(),
            source,
        };
        let fetched = |path: PathBuf, sha256: String| FetchedDeb {
            path,
            package: cand.package.clone(),
            version: cand.version.clone(),
            architecture: cand.architecture.clone(),
            sha256,
        };
        let dest = cache_dir.join(&cand.file_name);
        if dest.is_file() {
            let c = check(&dest, &cand.hash).map_err(|e| cache_err(&dest, e))?;
            if c.matches {
                progress(&FetchEvent::Cached {
                    package,
                    path: dest.clone(),
                });
                return Ok(fetched(dest, c.sha256));
            }
            if self.offline {
                let algorithm = cand.hash.algorithm();
                return Err(FetchError::CacheMismatch {
                    package,
                    path: dest,
                    expected: format!("{algorithm}:{}", cand.hash.hex()),
                    actual: format!("{algorithm}:{}", c.actual),
                });
            }
        } else if self.offline {
            return Err(FetchError::NotCached {
                package: cand.package.clone(),
                version: cand.version.clone(),
                file: cand.file_name.clone(),
                cache: cache_dir.to_owned(),
            });
        }
        let sha256 = self.download(cand, cache_dir, progress)?;
        Ok(fetched(dest, sha256))
    }

    /// Downloads `cand` (`apt-get download -q name=version`, or
    /// `name:arch=version` for a foreign architecture) into `cache_dir`,
    /// checks it against the lists and renames it into place under
    /// `cand.file_name`; returns its SHA-256.
    fn download(
        &self,
        cand: &Candidate,
        cache_dir: &Path,
        progress: &mut dyn FnMut(&FetchEvent),
    ) -> Result<String, FetchError> {
        let spec = cand.spec();
        let package = spec.to_string();
        let native = self.system.then(|| system_apt().arch.as_deref()).flatten();
        let arg = if native.is_some_and(|n| n != cand.architecture) && cand.architecture != "all" {
            format!("{}:{}={}", cand.package, cand.architecture, cand.version)
        } else {
            spec.apt_arg()
        };
        let cache_err = |path: &Path, source| FetchError::Cache {
            package: package.clone(),
            path: path.to_owned(),
            source,
        };
        let file_name = &cand.file_name;
        let total = cand.size;
        fs::create_dir_all(cache_dir).map_err(|e| cache_err(cache_dir, e))?;
        let tmp = tempfile::Builder::new()
            .prefix(".download-")
            .tempdir_in(cache_dir)
            .map_err(|e| cache_err(cache_dir, e))?;
        let log_path = tmp.path().join("apt.log");
        let log = fs::File::create(&log_path).map_err(|e| cache_err(&log_path, e))?;
        let log2 = log.try_clone().map_err(|e| cache_err(&log_path, e))?;
        progress(&FetchEvent::Started {
            package: package.clone(),
            total,
        });
        let mut child = self
            .command(&self.apt_get, cache_dir)
            .args(["download", "-q"])
            .arg(arg)
            .current_dir(tmp.path())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|source| self.spawn_error(&self.apt_get, &spec, source))?;
        let target_tmp = tmp.path().join(file_name);
        let mut last = 0;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| cache_err(tmp.path(), e))? {
                break status;
            }
            let now = fs::metadata(&target_tmp).map(|m| m.len()).unwrap_or(0);
            if now != last {
                last = now;
                progress(&FetchEvent::Progress {
                    package: package.clone(),
                    downloaded: now,
                    total,
                });
            }
            std::thread::sleep(POLL);
        };
        let output = fs::read_to_string(&log_path).unwrap_or_default();
        if !status.success() {
            return Err(classify(&spec, &output));
        }
        // apt names the file; ours is the lists' name, version and arch.
        if !target_tmp.exists() {
            let debs: Vec<PathBuf> = fs::read_dir(tmp.path())
                .map_err(|e| cache_err(tmp.path(), e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "deb"))
                .collect();
            if let [one] = debs.as_slice() {
                fs::rename(one, &target_tmp).map_err(|e| cache_err(one, e))?;
            }
        }
        let size = fs::metadata(&target_tmp)
            .map_err(|_| FetchError::Download {
                package: package.clone(),
                message: format!("apt-get succeeded but {file_name} was not written"),
            })?
            .len();
        if total.is_some_and(|t| t != size) {
            return Err(FetchError::Download {
                package,
                message: format!(
                    "{file_name} has {size} bytes, apt announced {}",
                    total.unwrap_or_default()
                ),
            });
        }
        progress(&FetchEvent::Progress {
            package: package.clone(),
            downloaded: size,
            total,
        });
        let c = check(&target_tmp, &cand.hash).map_err(|e| cache_err(&target_tmp, e))?;
        if !c.matches {
            return Err(FetchError::Download {
                package,
                message: format!(
                    "the downloaded {file_name} has {} {}, the package lists say {}",
                    cand.hash.algorithm(),
                    c.actual,
                    cand.hash.hex()
                ),
            });
        }
        Deb::open(&target_tmp).map_err(|source| FetchError::Deb {
            package: package.clone(),
            source,
        })?;
        let dest = cache_dir.join(file_name);
        fs::rename(&target_tmp, &dest).map_err(|e| cache_err(&dest, e))?;
        progress(&FetchEvent::Downloaded {
            package,
            path: dest,
        });
        Ok(c.sha256)
    }

    fn spawn_error(
        &self,
        tool: &[OsString],
        spec: &PackageSpec,
        source: std::io::Error,
    ) -> FetchError {
        FetchError::AptMissing {
            package: spec.to_string(),
            program: tool.first().cloned().unwrap_or_default(),
            source,
        }
    }
}

/// Turns apt's output into the matching error.
fn classify(spec: &PackageSpec, output: &str) -> FetchError {
    let errors: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("E:"))
        .collect();
    let message = if errors.is_empty() {
        output.trim().to_owned()
    } else {
        errors.join("; ")
    };
    if output.contains("Unable to locate package") || output.contains("No packages found") {
        FetchError::NotFound {
            package: spec.name.clone(),
        }
    } else if output.contains("Version '") && output.contains("was not found") {
        FetchError::VersionNotFound {
            package: spec.name.clone(),
            version: spec.version.clone().unwrap_or_default(),
            message,
        }
    } else if output.contains("Can't select candidate version")
        || output.contains("has no installation candidate")
        || output.contains("Can't select versions")
    {
        FetchError::NoCandidate {
            package: spec.to_string(),
            message,
        }
    } else {
        FetchError::Download {
            package: spec.to_string(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::testutil::{self, Item};

    /// A stand-in for `apt-cache` (`cache policy|show NAME`) and `apt-get`
    /// (`get download -q NAME=VERSION`) with apt's output and messages,
    /// serving the fixture `.deb`s in `repo` (unit tests of our logic only;
    /// the real tools are exercised by tests/sources_apt.rs). The candidate
    /// of a name is the version in `repo/candidate-<name>`, else its first
    /// file; records give each file's real SHA-256 unless `repo/lie-<name>`
    /// holds another. Run as `sh script` (never executed itself, so no
    /// ETXTBSY races with other tests spawning processes).
    const FAKE_APT: &str = r#"
tool=$1; shift
echo "$tool $*" >> "$REPO/calls"
for spec; do :; done
name=${spec%%=*}
case "$spec" in *=*) ver=${spec#*=} ;; *) ver= ;; esac
files=$(ls "$REPO"/"${name}"_*.deb 2>/dev/null)
version_of() { basename "$1" | cut -d_ -f2 | sed 's/%3a/:/'; }
case "$tool $1" in
"cache policy")
  [ -n "$files" ] || exit 0
  if [ -f "$REPO/candidate-$name" ]; then c=$(cat "$REPO/candidate-$name"); else c=$(version_of $(echo "$files" | head -n 1)); fi
  printf '%s:\n  Installed: (none)\n  Candidate: %s\n  Version table:\n' "$name" "$c"
  ;;
"cache show")
  if [ -z "$files" ]; then echo "E: No packages found" >&2; exit 100; fi
  for f in $files; do
    sum=$(sha256sum "$f" | cut -d' ' -f1)
    if [ -f "$REPO/lie-$name" ]; then sum=$(cat "$REPO/lie-$name"); fi
    printf 'Package: %s\nVersion: %s\nArchitecture: amd64\nDescription: x\n more\nFilename: pool/%s\nSize: %s\nSHA256: %s\n\n' \
      "$name" "$(version_of "$f")" "$(basename "$f")" "$(stat -c %s "$f")" "$sum"
  done
  ;;
"get download")
  if [ "$name" = broken ]; then
    echo "W: something harmless"; echo "E: Failed to fetch http://deb.invalid/b.deb  Connection refused" >&2; exit 100
  fi
  f="$REPO/${name}_$(printf %s "$ver" | sed 's/:/%3a/')_amd64.deb"
  echo "W: Download is performed unsandboxed as root" >&2
  cp "$f" .
  ;;
*) echo "E: unexpected $tool $*" >&2; exit 100 ;;
esac
"#;

    struct Fixture {
        _tmp: tempfile::TempDir,
        repo: PathBuf,
        cache: PathBuf,
        apt: Apt,
    }

    fn payload_deb(name: &str, version: &str, data: &'static [u8]) -> Vec<u8> {
        testutil::deb(
            &testutil::control(name, version, None),
            &[Item::File("./bin/tool", 0o755, data)],
            "xz",
        )
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        let cache = tmp.path().join("cache");
        fs::create_dir_all(&repo).unwrap();
        let docs = [Item::File("./usr/share/doc/meta/copyright", 0o644, b"c")];
        let debs: [(&str, Vec<u8>); 6] = [
            (
                "meta_1_amd64.deb",
                testutil::deb(
                    &testutil::control("meta", "1", Some("real (= 1:2.0-1)")),
                    &docs,
                    "xz",
                ),
            ),
            (
                "real_1%3a2.0-1_amd64.deb",
                payload_deb("real", "1:2.0-1", b"real"),
            ),
            ("broken_1_amd64.deb", payload_deb("broken", "1", b"b")),
            (
                "corrupt_1_amd64.deb",
                b"!<arch>\nthis is not a package".to_vec(),
            ),
            // pk: 1.0-1 is the candidate, 2.0-1 a higher version apt's policy
            // does not prefer (like a backports kernel).
            ("pk_1.0-1_amd64.deb", payload_deb("pk", "1.0-1", b"stable")),
            (
                "pk_2.0-1_amd64.deb",
                payload_deb("pk", "2.0-1", b"backport"),
            ),
        ];
        for (name, bytes) in debs {
            fs::write(repo.join(name), bytes).unwrap();
        }
        fs::write(repo.join("candidate-pk"), "1.0-1").unwrap();
        let script = tmp.path().join("fake-apt");
        let text = FAKE_APT.replace("$REPO", &repo.display().to_string());
        fs::write(&script, text).unwrap();
        let tool = |t: &str| vec![OsString::from("sh"), script.clone().into(), t.into()];
        Fixture {
            _tmp: tmp,
            repo,
            cache,
            apt: Apt::with_tools(tool("get"), tool("cache")),
        }
    }

    /// `apt-get` runs (downloads).
    fn downloads(f: &Fixture) -> usize {
        fs::read_to_string(f.repo.join("calls"))
            .map_or(0, |s| s.lines().filter(|l| l.starts_with("get ")).count())
    }

    fn spec(s: &str) -> PackageSpec {
        PackageSpec::parse(s).unwrap()
    }

    fn cache_names(f: &Fixture) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&f.cache)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn fetch_with_a_fake_apt() {
        let f = fixture();
        let mut events = Vec::new();
        let deb = f
            .apt
            .fetch_deb(&spec("meta"), &f.cache, &mut |e| events.push(e.clone()))
            .unwrap();
        let path = f.cache.join("real_1%3a2.0-1_amd64.deb");
        assert_eq!(
            deb,
            FetchedDeb {
                path: path.clone(),
                package: "real".into(),
                version: "1:2.0-1".into(),
                architecture: "amd64".into(),
                sha256: sha256_file(&f.repo.join("real_1%3a2.0-1_amd64.deb")).unwrap(),
            }
        );
        assert!(events.contains(&FetchEvent::Resolved {
            from: "meta=1".into(),
            to: "real=1:2.0-1".into()
        }));
        assert!(events.contains(&FetchEvent::Downloaded {
            package: "real=1:2.0-1".into(),
            path: path.clone()
        }));
        assert!(matches!(
            events.first(),
            Some(FetchEvent::Started { total: Some(_), .. })
        ));
        // Only .debs remain in the cache: no temporary directories.
        assert_eq!(
            cache_names(&f),
            ["meta_1_amd64.deb", "real_1%3a2.0-1_amd64.deb"]
        );

        // Second time: the lists are asked again, the files come from the
        // cache, nothing is downloaded.
        let before = downloads(&f);
        let mut events = Vec::new();
        let again = f
            .apt
            .fetch(&spec("meta"), &f.cache, &mut |e| events.push(e.clone()))
            .unwrap();
        assert_eq!(again, path);
        assert_eq!(downloads(&f), before);
        assert!(
            events
                .iter()
                .all(|e| matches!(e, FetchEvent::Cached { .. } | FetchEvent::Resolved { .. })),
            "{events:?}"
        );
        // Without apt-get the lists cannot be asked: an error, even for a
        // cached version.
        let no_apt = Apt::with_tools(["/nonexistent/apt-get"], ["/nonexistent/apt-cache"]);
        let err = no_apt
            .fetch(&spec("real=1:2.0-1"), &f.cache, &mut |_| {})
            .unwrap_err();
        assert!(matches!(err, FetchError::AptMissing { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("real=1:2.0-1") && msg.contains("package lists"),
            "{msg}"
        );

        // Errors.
        let err = f
            .apt
            .fetch(&spec("nosuch"), &f.cache, &mut |_| {})
            .unwrap_err();
        assert!(
            matches!(err, FetchError::NotFound { ref package } if package == "nosuch"),
            "{err}"
        );
        assert!(
            err.to_string().contains("package lists do not have it"),
            "{err}"
        );

        let err = f
            .apt
            .fetch(&spec("real=9.9"), &f.cache, &mut |_| {})
            .unwrap_err();
        assert!(
            matches!(err, FetchError::VersionNotFound { ref version, .. } if version == "9.9"),
            "{err}"
        );

        let err = f
            .apt
            .fetch(&spec("broken"), &f.cache, &mut |_| {})
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, FetchError::Download { .. }), "{msg}");
        assert!(
            msg.contains("broken") && msg.contains("Connection refused"),
            "{msg}"
        );
        assert!(!msg.contains("W: something harmless"), "{msg}");

        let err = f
            .apt
            .fetch(&spec("corrupt"), &f.cache, &mut |_| {})
            .unwrap_err();
        assert!(matches!(err, FetchError::Deb { .. }), "{err}");
        assert!(err.to_string().contains("corrupt"), "{err}");
        assert!(
            !f.cache.join("corrupt_1_amd64.deb").exists(),
            "corrupt download must not be cached"
        );

        // A name apt knows without a candidate (a virtual package).
        fs::write(f.repo.join("candidate-corrupt"), "(none)").unwrap();
        let err = f
            .apt
            .fetch(&spec("corrupt"), &f.cache, &mut |_| {})
            .unwrap_err();
        assert!(matches!(err, FetchError::NoCandidate { .. }), "{err}");
    }

    /// The cache once decided the version of an unpinned package (the
    /// highest cached one): a backports kernel from one build was taken by
    /// every later build, and a security update never was.
    #[test]
    fn unpinned_means_apts_candidate_not_the_highest_cached() {
        let f = fixture();
        // A build with the higher version pinned leaves it in the cache.
        let pinned = f
            .apt
            .fetch(&spec("pk=2.0-1"), &f.cache, &mut |_| {})
            .unwrap();
        assert_eq!(pinned, f.cache.join("pk_2.0-1_amd64.deb"));
        // Unpinned: apt's candidate, downloaded; the cached 2.0-1 is not it.
        let deb = f.apt.fetch_deb(&spec("pk"), &f.cache, &mut |_| {}).unwrap();
        assert_eq!(deb.path, f.cache.join("pk_1.0-1_amd64.deb"));
        assert_eq!(deb.version, "1.0-1");
        assert_eq!(downloads(&f), 2);
        // A security update reaches the lists: unpinned now means 1.0-2.
        fs::write(
            f.repo.join("pk_1.0-2_amd64.deb"),
            payload_deb("pk", "1.0-2", b"fixed"),
        )
        .unwrap();
        fs::write(f.repo.join("candidate-pk"), "1.0-2").unwrap();
        let deb = f.apt.fetch_deb(&spec("pk"), &f.cache, &mut |_| {}).unwrap();
        assert_eq!(deb.version, "1.0-2");
        assert_eq!(deb.path, f.cache.join("pk_1.0-2_amd64.deb"));
        // Pinned versions are still served from the cache.
        let mut events = Vec::new();
        let old = f
            .apt
            .fetch(&spec("pk=2.0-1"), &f.cache, &mut |e| events.push(e.clone()))
            .unwrap();
        assert_eq!(old, pinned);
        assert!(
            matches!(events.as_slice(), [FetchEvent::Cached { .. }]),
            "{events:?}"
        );
        assert_eq!(downloads(&f), 3);
        // The candidate itself, as apt reports it.
        let c = f.apt.candidate(&spec("pk"), &f.cache).unwrap();
        assert_eq!(
            (
                c.package.as_str(),
                c.version.as_str(),
                c.architecture.as_str()
            ),
            ("pk", "1.0-2", "amd64")
        );
        assert_eq!(c.file_name, "pk_1.0-2_amd64.deb");
        assert_eq!(
            c.hash,
            ListHash::Sha256(sha256_file(&f.repo.join("pk_1.0-2_amd64.deb")).unwrap())
        );
    }

    #[test]
    fn cached_files_are_verified_and_offline_downloads_nothing() {
        let f = fixture();
        let offline = f.apt.clone().offline(true);
        // Offline with an empty cache: an error naming package, version, file.
        let err = offline
            .fetch(&spec("pk"), &f.cache, &mut |_| {})
            .unwrap_err();
        assert!(
            matches!(err, FetchError::NotCached { ref package, ref version, .. } if package == "pk" && version == "1.0-1"),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("pk_1.0-1_amd64.deb") && msg.contains("--offline"),
            "{msg}"
        );
        assert_eq!(downloads(&f), 0);
        assert!(!f.cache.exists(), "offline must not create the cache");

        // Online: downloaded. Offline then: from the cache.
        let deb = f.apt.fetch(&spec("pk"), &f.cache, &mut |_| {}).unwrap();
        let mut events = Vec::new();
        let again = offline
            .fetch_deb(&spec("pk"), &f.cache, &mut |e| events.push(e.clone()))
            .unwrap();
        assert_eq!(again.path, deb);
        assert_eq!(again.sha256, sha256_file(&deb).unwrap());
        assert!(
            matches!(events.as_slice(), [FetchEvent::Cached { .. }]),
            "{events:?}"
        );
        assert_eq!(downloads(&f), 1);

        // A cached file that differs from the lists (same name, other bytes).
        let good = fs::read(&deb).unwrap();
        fs::write(&deb, payload_deb("pk", "1.0-1", b"tampered")).unwrap();
        let err = offline
            .fetch(&spec("pk"), &f.cache, &mut |_| {})
            .unwrap_err();
        let FetchError::CacheMismatch {
            ref expected,
            ref actual,
            ..
        } = err
        else {
            panic!("{err}")
        };
        let sha = |p: &Path| format!("SHA256:{}", sha256_file(p).unwrap());
        assert_eq!(*expected, sha(&f.repo.join("pk_1.0-1_amd64.deb")));
        assert_eq!(*actual, sha(&deb));
        assert!(err.to_string().contains("pk_1.0-1_amd64.deb"), "{err}");
        // Online it is downloaded again.
        let mut events = Vec::new();
        f.apt
            .fetch(&spec("pk"), &f.cache, &mut |e| events.push(e.clone()))
            .unwrap();
        assert!(
            events
                .iter()
                .any(|e| matches!(e, FetchEvent::Downloaded { .. })),
            "{events:?}"
        );
        assert_eq!(fs::read(&deb).unwrap(), good);
        assert_eq!(downloads(&f), 2);

        // Lists whose hash the download does not have: refused, not cached.
        fs::write(f.repo.join("lie-real"), "ab".repeat(32)).unwrap();
        let err = f
            .apt
            .fetch(&spec("real=1:2.0-1"), &f.cache, &mut |_| {})
            .unwrap_err();
        assert!(matches!(err, FetchError::Download { .. }), "{err}");
        assert!(err.to_string().contains("package lists say"), "{err}");
        assert!(!f.cache.join("real_1%3a2.0-1_amd64.deb").exists());
        assert_eq!(cache_names(&f), ["pk_1.0-1_amd64.deb"]);
    }

    #[test]
    fn list_hashes() {
        let h = "AB".repeat(32);
        assert_eq!(
            ListHash::parse(&format!("SHA256:{h}")),
            Some(ListHash::Sha256("ab".repeat(32)))
        );
        assert_eq!(
            ListHash::parse(&format!("SHA512:{}", "0".repeat(128))).map(|h| h.algorithm()),
            Some("SHA512")
        );
        assert_eq!(
            ListHash::parse("MD5Sum:d41d8cd98f00b204e9800998ecf8427e"),
            None
        );
        assert_eq!(ListHash::parse("SHA256:00"), None);
        assert_eq!(ListHash::parse(""), None);
    }
}
