//! Fetching Debian packages with `apt-get download` into a cache directory.
//!
//! `apt-get` runs with an argv (never through a shell), unprivileged or as
//! root (as root it prints a harmless "Download is performed unsandboxed"
//! warning, which is ignored). Downloads land in a temporary directory inside
//! the cache and are renamed into place once complete and readable as a
//! `.deb`, so the cache never holds a partial file.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::deb::{Deb, DebError};
use super::spec::PackageSpec;
use super::version;

/// Progress of a fetch, for progress bars and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchEvent {
    /// The package was found in the cache; nothing downloaded.
    Cached {
        /// `name` or `name=version`.
        package: String,
        /// The cached file.
        path: PathBuf,
    },
    /// A download starts.
    Started {
        /// `name` or `name=version`.
        package: String,
        /// Expected size in bytes, if apt announced it.
        total: Option<u64>,
    },
    /// Bytes received so far.
    Progress {
        /// `name` or `name=version`.
        package: String,
        /// Bytes on disk so far.
        downloaded: u64,
        /// Expected size in bytes, if known.
        total: Option<u64>,
    },
    /// A download finished and the file is in the cache.
    Downloaded {
        /// `name` or `name=version`.
        package: String,
        /// The file in the cache.
        path: PathBuf,
    },
    /// A metapackage was replaced by the package it depends on.
    Resolved {
        /// The metapackage (`linux-image-amd64`).
        from: String,
        /// The concrete package (`linux-image-6.1.0-56-amd64=6.1.192-2`).
        to: String,
    },
}

/// A package could not be fetched; every variant names the package.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// `apt-get` is not installed (and the package is not cached).
    #[error(
        "package {package}: not in the cache {cache} and apt-get is not available ({program:?}: {source})"
    )]
    AptMissing {
        /// The package.
        package: String,
        /// The cache directory searched.
        cache: PathBuf,
        /// The program tried.
        program: OsString,
        /// Why it could not run.
        source: std::io::Error,
    },
    /// apt does not know the package.
    #[error(
        "package {package} not found: apt-get says \"Unable to locate package\" (is the name right? run apt-get update?)"
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

/// Runs `apt-get` (or a stand-in with the same interface).
#[derive(Debug, Clone)]
pub struct Apt {
    program: OsString,
}

impl Default for Apt {
    fn default() -> Self {
        Apt {
            program: "apt-get".into(),
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

impl Apt {
    /// Uses `program` instead of `apt-get`.
    pub fn with_program(program: impl Into<OsString>) -> Apt {
        Apt {
            program: program.into(),
        }
    }

    /// Returns the path of the `.deb` for `spec` in `cache_dir`, downloading
    /// it if no matching file is cached (without a version, the highest
    /// cached version is reused). A metapackage (no files outside
    /// `usr/share/doc`, e.g. `linux-image-amd64`) is resolved to the package
    /// its first `Depends:` names, pinned to the version given there with
    /// `(= version)`, and that package's `.deb` is returned.
    pub fn fetch(
        &self,
        spec: &PackageSpec,
        cache_dir: &Path,
        progress: &mut dyn FnMut(&FetchEvent),
    ) -> Result<PathBuf, FetchError> {
        let mut spec = spec.clone();
        for _ in 0..MAX_RESOLVE_DEPTH {
            let path = self.fetch_exact(&spec, cache_dir, progress)?;
            let deb_err = |source| FetchError::Deb {
                package: spec.to_string(),
                source,
            };
            let deb = Deb::open(&path).map_err(deb_err)?;
            if deb.has_payload().map_err(deb_err)? {
                return Ok(path);
            }
            let control = deb.control().map_err(deb_err)?;
            let dep = control
                .depends()
                .into_iter()
                .find_map(|alts| alts.into_iter().next())
                .ok_or_else(|| FetchError::Metapackage {
                    package: spec.to_string(),
                })?;
            let next = PackageSpec {
                version: dep.version.filter(|(op, _)| op == "=").map(|(_, v)| v),
                name: dep.name,
            };
            progress(&FetchEvent::Resolved {
                from: spec.to_string(),
                to: next.to_string(),
            });
            spec = next;
        }
        Err(FetchError::Metapackage {
            package: spec.to_string(),
        })
    }

    /// Like [`Apt::fetch`] but never resolves metapackages.
    pub fn fetch_exact(
        &self,
        spec: &PackageSpec,
        cache_dir: &Path,
        progress: &mut dyn FnMut(&FetchEvent),
    ) -> Result<PathBuf, FetchError> {
        let package = spec.to_string();
        let cache_err = |path: &Path, source| FetchError::Cache {
            package: package.clone(),
            path: path.to_owned(),
            source,
        };
        fs::create_dir_all(cache_dir).map_err(|e| cache_err(cache_dir, e))?;
        if let Some(path) = find_cached(spec, cache_dir).map_err(|e| cache_err(cache_dir, e))? {
            progress(&FetchEvent::Cached {
                package,
                path: path.clone(),
            });
            return Ok(path);
        }
        let (file_name, total) = self.print_uri(spec, cache_dir)?;
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
        let mut child = Command::new(&self.program)
            .args(["download", "-q"])
            .arg(spec.apt_arg())
            .current_dir(tmp.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .env("LC_ALL", "C")
            .spawn()
            .map_err(|source| self.spawn_error(spec, cache_dir, source))?;
        let target_tmp = tmp.path().join(&file_name);
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
            return Err(classify(spec, &output));
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
        Deb::open(&target_tmp).map_err(|source| FetchError::Deb {
            package: package.clone(),
            source,
        })?;
        let dest = cache_dir.join(&file_name);
        fs::rename(&target_tmp, &dest).map_err(|e| cache_err(&dest, e))?;
        progress(&FetchEvent::Downloaded {
            package,
            path: dest.clone(),
        });
        Ok(dest)
    }

    /// Asks apt which file it would download: (file name, size).
    fn print_uri(
        &self,
        spec: &PackageSpec,
        cache_dir: &Path,
    ) -> Result<(String, Option<u64>), FetchError> {
        let out = Command::new(&self.program)
            .args(["download", "--print-uris", "-q"])
            .arg(spec.apt_arg())
            .current_dir(cache_dir)
            .stdin(Stdio::null())
            .env("LC_ALL", "C")
            .output()
            .map_err(|source| self.spawn_error(spec, cache_dir, source))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            return Err(classify(spec, &text));
        }
        // 'URL' name_version_arch.deb SIZE SHA256:...
        stdout
            .lines()
            .filter(|l| l.starts_with('\''))
            .find_map(|l| {
                let mut words = l.split_whitespace().skip(1);
                let file = words.next()?;
                let size = words.next().and_then(|s| s.parse().ok());
                (spec.matches_file(file).is_some() && !file.contains('/'))
                    .then(|| (file.to_owned(), size))
            })
            .ok_or_else(|| FetchError::Download {
                package: spec.to_string(),
                message: format!("apt-get printed no download URI: {}", text.trim()),
            })
    }

    fn spawn_error(
        &self,
        spec: &PackageSpec,
        cache_dir: &Path,
        source: std::io::Error,
    ) -> FetchError {
        FetchError::AptMissing {
            package: spec.to_string(),
            cache: cache_dir.to_owned(),
            program: self.program.clone(),
            source,
        }
    }
}

/// The cached `.deb` for `spec`: the exact version if given, else the highest.
pub fn find_cached(spec: &PackageSpec, cache_dir: &Path) -> std::io::Result<Option<PathBuf>> {
    let mut best: Option<(String, PathBuf)> = None;
    for entry in fs::read_dir(cache_dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name();
        let Some(version) = name.to_str().and_then(|n| spec.matches_file(n)) else {
            continue;
        };
        let better = best
            .as_ref()
            .is_none_or(|(v, _)| version::compare(&version, v).is_gt());
        if better {
            best = Some((version, entry.path()));
        }
    }
    Ok(best.map(|(_, p)| p))
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
    if output.contains("Unable to locate package") {
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
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in for apt-get with apt's interface and messages, serving the
    /// fixture `.deb`s in `repo` (unit tests of our logic only; the real
    /// apt-get is exercised by tests/apt_fetch.rs).
    const FAKE_APT: &str = r#"#!/bin/sh
echo "$*" >> "$REPO/calls"
for spec; do :; done
name=${spec%%=*}
case "$spec" in *=*) ver=${spec#*=} ;; *) ver= ;; esac
case "$name" in
  nosuch) echo "E: Unable to locate package $name" >&2; exit 100 ;;
  broken) echo "W: something harmless"; echo "E: Failed to fetch http://deb.invalid/b.deb  Connection refused" >&2; exit 100 ;;
esac
f=$(ls "$REPO"/"${name}"_*.deb 2>/dev/null | head -n 1)
if [ -z "$f" ]; then echo "E: Unable to locate package $name" >&2; exit 100; fi
base=$(basename "$f")
enc=$(printf %s "$ver" | sed 's/:/%3a/')
if [ -n "$ver" ] && [ "$base" != "${name}_${enc}_amd64.deb" ]; then
  echo "E: Version '$ver' for '$name' was not found" >&2; exit 100
fi
if [ "$2" = "--print-uris" ]; then
  echo "'http://deb.invalid/$base' $base $(stat -c %s "$f") SHA256:00"
  exit 0
fi
echo "W: Download is performed unsandboxed as root" >&2
cp "$f" .
"#;

    struct Fixture {
        _tmp: tempfile::TempDir,
        repo: PathBuf,
        cache: PathBuf,
        apt: Apt,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        let cache = tmp.path().join("cache");
        fs::create_dir_all(&repo).unwrap();
        let payload = [Item::File("./bin/tool", 0o755, b"tool")];
        let docs = [Item::File("./usr/share/doc/meta/copyright", 0o644, b"c")];
        let debs: [(&str, Vec<u8>); 3] = [
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
                testutil::deb(&testutil::control("real", "1:2.0-1", None), &payload, "xz"),
            ),
            (
                "corrupt_1_amd64.deb",
                b"!<arch>\nthis is not a package".to_vec(),
            ),
        ];
        for (name, bytes) in debs {
            fs::write(repo.join(name), bytes).unwrap();
        }
        let script = tmp.path().join("apt-get");
        let text = FAKE_APT.replace("$REPO", &repo.display().to_string());
        fs::write(&script, text).unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        Fixture {
            _tmp: tmp,
            repo,
            cache,
            apt: Apt::with_program(script),
        }
    }

    fn calls(f: &Fixture) -> usize {
        fs::read_to_string(f.repo.join("calls")).map_or(0, |s| s.lines().count())
    }

    fn spec(s: &str) -> PackageSpec {
        PackageSpec::parse(s).unwrap()
    }

    // One test for all fake-apt scenarios: the script is written once, before
    // any process is spawned (avoids ETXTBSY races with parallel tests).
    #[test]
    fn fetch_with_a_fake_apt() {
        let f = fixture();
        let mut events = Vec::new();
        let path = f
            .apt
            .fetch(&spec("meta"), &f.cache, &mut |e| events.push(e.clone()))
            .unwrap();
        assert_eq!(path, f.cache.join("real_1%3a2.0-1_amd64.deb"));
        assert!(events.contains(&FetchEvent::Resolved {
            from: "meta".into(),
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
        let mut names: Vec<String> = fs::read_dir(&f.cache)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["meta_1_amd64.deb", "real_1%3a2.0-1_amd64.deb"]);

        // Second time: all from the cache, apt-get not run.
        let before = calls(&f);
        let mut events = Vec::new();
        let again = f
            .apt
            .fetch(&spec("meta"), &f.cache, &mut |e| events.push(e.clone()))
            .unwrap();
        assert_eq!(again, path);
        assert_eq!(calls(&f), before);
        assert!(
            events
                .iter()
                .all(|e| matches!(e, FetchEvent::Cached { .. } | FetchEvent::Resolved { .. }))
        );
        // Even without apt-get at all.
        let no_apt = Apt::with_program("/nonexistent/apt-get");
        assert_eq!(
            no_apt
                .fetch(&spec("real=1:2.0-1"), &f.cache, &mut |_| {})
                .unwrap(),
            path
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
            err.to_string().contains("Unable to locate package"),
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

        let err = no_apt
            .fetch(&spec("other"), &f.cache, &mut |_| {})
            .unwrap_err();
        assert!(matches!(err, FetchError::AptMissing { .. }), "{err}");
        assert!(err.to_string().contains("other"), "{err}");
    }

    #[test]
    fn highest_cached_version_wins() {
        let tmp = tempfile::tempdir().unwrap();
        for v in ["1.9-1", "1.10-1", "1%3a0.1-1", "1.10~rc1-1"] {
            fs::write(tmp.path().join(format!("pk_{v}_amd64.deb")), b"").unwrap();
        }
        fs::write(tmp.path().join("pkg_9_amd64.deb"), b"").unwrap();
        let found = find_cached(&spec("pk"), tmp.path()).unwrap().unwrap();
        assert_eq!(found.file_name().unwrap(), "pk_1%3a0.1-1_amd64.deb");
        let found = find_cached(&spec("pk=1.9-1"), tmp.path()).unwrap().unwrap();
        assert_eq!(found.file_name().unwrap(), "pk_1.9-1_amd64.deb");
        assert!(find_cached(&spec("pk=2"), tmp.path()).unwrap().is_none());
    }
}
