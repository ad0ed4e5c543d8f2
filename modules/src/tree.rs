//! A scanned `/lib/modules/<kver>` tree: find modules by name, suggest close
//! names for a missing one, and resolve `depends=` from each module's own
//! `.modinfo` into a load order, checking every `vermagic` on the way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::dep::{DepEntry, ModulesDep};
use crate::modinfo::{ModInfo, ModInfoError};
use crate::name;
use crate::resolve::{self, ResolveError};

/// An index of the modules under one `/lib/modules/<kver>` directory.
#[derive(Debug, Clone)]
pub struct ModuleTree {
    root: PathBuf,
    kernel_version: String,
    /// Normalised module name → path relative to `root`.
    index: BTreeMap<String, PathBuf>,
    /// Normalised names from `modules.builtin` (compiled into the kernel).
    builtin: BTreeSet<String>,
}

/// One module of a resolved load order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModule {
    /// Normalised module name (`xen_netfront`).
    pub name: String,
    /// File path relative to the tree root (`kernel/drivers/net/xen-netfront.ko`),
    /// possibly compressed (`.ko.xz`).
    pub path: PathBuf,
    /// Direct dependencies (normalised names, from `depends=`), sorted.
    pub depends: Vec<String>,
    /// The module's whole `vermagic=` string.
    pub vermagic: String,
}

/// The result of [`ModuleTree::resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Modules to load, dependencies first, each once.
    pub modules: Vec<ResolvedModule>,
    /// Requested modules that are built into the kernel (nothing to load).
    pub builtin: Vec<String>,
    /// `modules.dep` lines for exactly these modules (depmod's format:
    /// transitive dependencies, nearest first), in load order.
    pub modules_dep: ModulesDep,
}

/// Why a tree could not be scanned or a load order computed.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// A directory of the tree could not be read.
    #[error("cannot scan module tree {path}: {source}")]
    Scan {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The tree directory's name is not a kernel version.
    #[error("cannot tell the kernel version of module tree {0} (expected /lib/modules/<kver>)")]
    NoVersion(PathBuf),
    /// A requested module is not in the tree.
    #[error(
        "module {name:?} does not exist in kernel {kernel_version} ({root}){}",
        suggestion_text(.suggestions)
    )]
    NotFound {
        /// The name asked for.
        name: String,
        /// The tree's kernel version.
        kernel_version: String,
        /// The tree root.
        root: PathBuf,
        /// Closest existing names, best first.
        suggestions: Vec<String>,
    },
    /// A module depends on a module the tree does not have.
    #[error("module {path} depends on {dep:?}, which is not in the module tree")]
    MissingDependency {
        /// The depending module's file.
        path: PathBuf,
        /// The missing dependency's name.
        dep: String,
    },
    /// A module's `.modinfo` could not be read.
    #[error(transparent)]
    ModInfo(#[from] ModInfoError),
    /// A module has no `vermagic=`.
    #[error("module {0} has no vermagic in its .modinfo")]
    NoVermagic(PathBuf),
    /// A module was built for a different kernel.
    #[error(
        "module {path} was built for kernel {module_version} but the kernel is {kernel_version} (vermagic mismatch)"
    )]
    VermagicMismatch {
        /// The module file.
        path: PathBuf,
        /// The first word of its vermagic.
        module_version: String,
        /// The tree's kernel version.
        kernel_version: String,
    },
    /// Dependencies form a cycle.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
}

fn suggestion_text(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("; closest: {}", s.join(", "))
    }
}

impl ModuleTree {
    /// Scans `dir` (a `/lib/modules/<kver>` directory); the kernel version is
    /// the directory's name.
    pub fn scan(dir: &Path) -> Result<ModuleTree, TreeError> {
        let kver = dir
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| n.chars().next().is_some_and(|c| c.is_ascii_digit()))
            .ok_or_else(|| TreeError::NoVersion(dir.to_owned()))?;
        ModuleTree::scan_version(dir, kver)
    }

    /// Scans `dir` as the module tree of kernel `kernel_version`.
    /// Symbolic links (`build`, `source`) are not followed. When a module name
    /// occurs twice, `updates/` wins (as with depmod), then the first path in
    /// byte order.
    pub fn scan_version(dir: &Path, kernel_version: &str) -> Result<ModuleTree, TreeError> {
        let mut files = Vec::new();
        walk(dir, Path::new(""), &mut files)?;
        files.sort();
        let mut index: BTreeMap<String, PathBuf> = BTreeMap::new();
        for rel in files {
            let Some(s) = rel.to_str() else { continue };
            if !name::is_module_path(s) {
                continue;
            }
            let key = name::from_path(s);
            let is_update = rel.starts_with("updates");
            match index.get(&key) {
                Some(old) if old.starts_with("updates") || !is_update => {}
                _ => {
                    index.insert(key, rel);
                }
            }
        }
        let builtin = match std::fs::read_to_string(dir.join("modules.builtin")) {
            Ok(text) => text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(name::from_path)
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(source) => {
                return Err(TreeError::Scan {
                    path: dir.join("modules.builtin"),
                    source,
                });
            }
        };
        Ok(ModuleTree {
            root: dir.to_owned(),
            kernel_version: kernel_version.to_owned(),
            index,
            builtin,
        })
    }

    /// The tree's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The kernel version the modules must match.
    pub fn kernel_version(&self) -> &str {
        &self.kernel_version
    }

    /// Number of loadable modules found.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True if the tree holds no module files.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Every module: (normalised name, relative path), sorted by name.
    pub fn modules(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.index.iter().map(|(k, v)| (k.as_str(), v.as_path()))
    }

    /// The relative path of module `module`, given by name (`-` and `_` are
    /// the same) or by file path (`kernel/drivers/net/virtio_net.ko`).
    pub fn lookup(&self, module: &str) -> Option<&Path> {
        let key = if name::is_module_path(module) {
            name::from_path(module)
        } else {
            name::normalize(module)
        };
        self.index.get(&key).map(PathBuf::as_path)
    }

    /// True if `modules.builtin` lists `module` (compiled into the kernel).
    pub fn is_builtin(&self, module: &str) -> bool {
        self.builtin.contains(&name::normalize(module))
    }

    /// Up to `limit` existing module names closest to `module` (edit distance,
    /// plus names containing it), best first.
    pub fn suggest(&self, module: &str, limit: usize) -> Vec<String> {
        let wanted = name::normalize(module);
        let max = (wanted.chars().count() / 3).max(2);
        let mut scored: Vec<(usize, &str)> = self
            .index
            .keys()
            .filter_map(|k| {
                let d = edit_distance(&wanted, k);
                if d <= max {
                    Some((d, k.as_str()))
                } else if wanted.len() >= 3 && k.contains(wanted.as_str()) {
                    Some((max + 1 + k.len() - wanted.len(), k.as_str()))
                } else {
                    None
                }
            })
            .collect();
        scored.sort();
        scored
            .into_iter()
            .take(limit)
            .map(|(_, k)| k.to_owned())
            .collect()
    }

    /// Reads the `.modinfo` of module `module`.
    pub fn modinfo(&self, module: &str) -> Result<ModInfo, TreeError> {
        let rel = self.lookup(module).ok_or_else(|| self.not_found(module))?;
        Ok(ModInfo::from_file(&self.root.join(rel))?)
    }

    fn not_found(&self, module: &str) -> TreeError {
        TreeError::NotFound {
            name: module.to_owned(),
            kernel_version: self.kernel_version.clone(),
            root: self.root.clone(),
            suggestions: self.suggest(module, 5),
        }
    }

    /// Resolves `modules` and everything they depend on (`depends=` of each
    /// module's own `.modinfo`, transitively) into a load order: dependencies
    /// first, then the requested modules in request order where possible;
    /// siblings in name order, so the result is deterministic. Every module's
    /// vermagic must name this tree's kernel version.
    pub fn resolve<S: AsRef<str>>(&self, modules: &[S]) -> Result<Resolution, TreeError> {
        let mut builtin = Vec::new();
        let mut roots = Vec::new();
        for m in modules {
            let m = m.as_ref();
            match self.lookup(m) {
                Some(rel) => roots.push(path_str(rel)),
                None if self.is_builtin(m) => {
                    let n = name::normalize(m);
                    if !builtin.contains(&n) {
                        builtin.push(n);
                    }
                }
                None => return Err(self.not_found(m)),
            }
        }
        // Read every module reachable from the roots.
        let mut infos: BTreeMap<String, ResolvedModule> = BTreeMap::new();
        let mut todo: Vec<String> = roots.iter().map(|p| name::from_path(p)).collect();
        while let Some(n) = todo.pop() {
            if infos.contains_key(&n) {
                continue;
            }
            let rel = self.lookup(&n).ok_or_else(|| self.not_found(&n))?;
            let module = self.read_checked(&n, rel)?;
            for d in &module.depends {
                if self.lookup(d).is_none() {
                    if self.is_builtin(d) {
                        continue;
                    }
                    return Err(TreeError::MissingDependency {
                        path: self.root.join(rel),
                        dep: d.clone(),
                    });
                }
                todo.push(d.clone());
            }
            infos.insert(n, module);
        }
        // Direct dependencies as a modules.dep, listed so that the core
        // resolver (which walks a line from its end) visits them in name order.
        let mut direct = ModulesDep::default();
        for m in infos.values() {
            let deps = m
                .depends
                .iter()
                .rev()
                .filter_map(|d| infos.get(d))
                .map(|d| path_str(&d.path))
                .collect();
            direct.insert(DepEntry {
                path: path_str(&m.path),
                deps,
            });
        }
        let order = resolve::load_order(&direct, &roots)?;
        let mut modules_dep = ModulesDep::default();
        for p in &order {
            let mut deps = resolve::load_order(&direct, &[p])?;
            deps.pop(); // the module itself comes last
            deps.reverse(); // depmod lists the nearest dependency first
            modules_dep.insert(DepEntry {
                path: p.clone(),
                deps,
            });
        }
        let modules = order
            .iter()
            .filter_map(|p| infos.remove(&name::from_path(p)))
            .collect();
        Ok(Resolution {
            modules,
            builtin,
            modules_dep,
        })
    }

    /// Reads one module's `.modinfo` and checks its vermagic.
    fn read_checked(&self, module: &str, rel: &Path) -> Result<ResolvedModule, TreeError> {
        let full = self.root.join(rel);
        let info = ModInfo::from_file(&full)?;
        let vermagic = info
            .vermagic()
            .ok_or_else(|| TreeError::NoVermagic(full.clone()))?;
        let module_version = info.kernel_version().unwrap_or_default();
        if module_version != self.kernel_version {
            return Err(TreeError::VermagicMismatch {
                path: full,
                module_version: module_version.to_owned(),
                kernel_version: self.kernel_version.clone(),
            });
        }
        let mut depends: Vec<String> = info.depends().iter().map(|d| name::normalize(d)).collect();
        depends.sort();
        depends.dedup();
        Ok(ResolvedModule {
            name: name::normalize(module),
            path: rel.to_owned(),
            depends,
            vermagic: vermagic.to_owned(),
        })
    }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Collects regular files under `root.join(rel)` (relative paths), without
/// following symbolic links.
fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<(), TreeError> {
    let dir = root.join(rel);
    let scan_err = |source| TreeError::Scan {
        path: dir.clone(),
        source,
    };
    for entry in std::fs::read_dir(&dir).map_err(scan_err)? {
        let entry = entry.map_err(scan_err)?;
        let ty = entry.file_type().map_err(scan_err)?;
        let child = rel.join(entry.file_name());
        if ty.is_dir() {
            walk(root, &child, out)?;
        } else if ty.is_file() {
            out.push(child);
        }
    }
    Ok(())
}

/// Levenshtein distance between two strings (by character).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modinfo::tests::fake_module;

    const KVER: &str = "6.1.0-56-amd64";

    fn module(dir: &Path, rel: &str, name: &str, depends: &str, kver: &str) {
        let section = format!(
            "name={name}\0depends={depends}\0vermagic={kver} SMP preempt mod_unload modversions \0"
        );
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, fake_module(section.as_bytes())).unwrap();
    }

    /// A tree shaped like Debian's: virtio_net → net_failover → failover.
    fn tree() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join(KVER);
        module(&root, "kernel/net/core/failover.ko", "failover", "", KVER);
        module(
            &root,
            "kernel/drivers/net/net_failover.ko",
            "net_failover",
            "failover",
            KVER,
        );
        module(
            &root,
            "kernel/drivers/net/virtio_net.ko",
            "virtio_net",
            "net_failover,failover",
            KVER,
        );
        module(
            &root,
            "kernel/drivers/net/xen-netfront.ko",
            "xen_netfront",
            "",
            KVER,
        );
        module(
            &root,
            "kernel/drivers/block/virtio_blk.ko",
            "virtio_blk",
            "",
            KVER,
        );
        module(
            &root,
            "kernel/drivers/block/xen-blkfront.ko",
            "xen_blkfront",
            "",
            KVER,
        );
        std::fs::write(root.join("modules.builtin"), "kernel/fs/ext4/ext4.ko\n").unwrap();
        std::os::unix::fs::symlink("/nonexistent", root.join("build")).unwrap();
        (tmp, root)
    }

    fn paths(r: &Resolution) -> Vec<String> {
        r.modules.iter().map(|m| path_str(&m.path)).collect()
    }

    #[test]
    fn scan_and_lookup() {
        let (_tmp, root) = tree();
        let t = ModuleTree::scan(&root).unwrap();
        assert_eq!(t.kernel_version(), KVER);
        assert_eq!(t.len(), 6);
        assert_eq!(
            t.lookup("xen_netfront"),
            Some(Path::new("kernel/drivers/net/xen-netfront.ko"))
        );
        assert_eq!(t.lookup("xen-netfront"), t.lookup("xen_netfront"));
        assert_eq!(
            t.lookup("kernel/drivers/net/xen-netfront.ko"),
            t.lookup("xen_netfront")
        );
        assert!(t.lookup("ext4").is_none());
        assert!(t.is_builtin("ext4"));
    }

    #[test]
    fn resolves_dependencies_first() {
        let (_tmp, root) = tree();
        let t = ModuleTree::scan(&root).unwrap();
        let r = t
            .resolve(&[
                "xen-netfront",
                "virtio_net",
                "xen-blkfront",
                "virtio_blk",
                "ext4",
            ])
            .unwrap();
        assert_eq!(
            paths(&r),
            [
                "kernel/drivers/net/xen-netfront.ko",
                "kernel/net/core/failover.ko",
                "kernel/drivers/net/net_failover.ko",
                "kernel/drivers/net/virtio_net.ko",
                "kernel/drivers/block/xen-blkfront.ko",
                "kernel/drivers/block/virtio_blk.ko",
            ]
        );
        assert_eq!(r.builtin, ["ext4"]);
        assert_eq!(r.modules[3].depends, ["failover", "net_failover"]);
        assert!(r.modules[3].vermagic.starts_with(KVER));
        assert_eq!(
            r.modules_dep.render(),
            "kernel/drivers/net/xen-netfront.ko:\n\
             kernel/net/core/failover.ko:\n\
             kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko\n\
             kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko\n\
             kernel/drivers/block/xen-blkfront.ko:\n\
             kernel/drivers/block/virtio_blk.ko:\n"
        );
        // The core resolver reproduces the same order from what we render.
        let again = resolve::load_order(
            &r.modules_dep,
            &["xen-netfront", "virtio_net", "xen-blkfront", "virtio_blk"],
        )
        .unwrap();
        assert_eq!(again, paths(&r));
        // Deterministic, whatever the request repeats.
        let r2 = t
            .resolve(&["virtio_net", "virtio-net", "failover"])
            .unwrap();
        assert_eq!(
            paths(&r2),
            [
                "kernel/net/core/failover.ko",
                "kernel/drivers/net/net_failover.ko",
                "kernel/drivers/net/virtio_net.ko",
            ]
        );
    }

    #[test]
    fn missing_module_suggests_close_names() {
        let (_tmp, root) = tree();
        let t = ModuleTree::scan(&root).unwrap();
        let err = t.resolve(&["virtio-nett"]).unwrap_err();
        let TreeError::NotFound { suggestions, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(suggestions.first().map(String::as_str), Some("virtio_net"));
        let msg = err.to_string();
        assert!(
            msg.contains("\"virtio-nett\"") && msg.contains(KVER),
            "{msg}"
        );
        assert!(msg.contains("closest: virtio_net"), "{msg}");
        assert_eq!(t.suggest("netfront", 3), ["xen_netfront"]);
        assert!(t.suggest("zzzzzzzzzzzz", 3).is_empty());
    }

    #[test]
    fn vermagic_mismatch_names_file_and_versions() {
        let (_tmp, root) = tree();
        // A dependency built for another kernel (the classic dom0-copy mistake).
        module(
            &root,
            "kernel/net/core/failover.ko",
            "failover",
            "",
            "5.10.0-9-amd64",
        );
        let t = ModuleTree::scan(&root).unwrap();
        assert!(t.resolve(&["xen-netfront"]).is_ok());
        let err = t.resolve(&["virtio_net"]).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, TreeError::VermagicMismatch { .. }));
        assert!(msg.contains("kernel/net/core/failover.ko"), "{msg}");
        assert!(
            msg.contains("5.10.0-9-amd64") && msg.contains(KVER),
            "{msg}"
        );
    }

    #[test]
    fn missing_dependency_and_cycles() {
        let (_tmp, root) = tree();
        module(&root, "extra/a.ko", "a", "b", KVER);
        module(&root, "extra/b.ko", "b", "a", KVER);
        module(&root, "extra/c.ko", "c", "gone", KVER);
        let t = ModuleTree::scan(&root).unwrap();
        let err = t.resolve(&["c"]).unwrap_err();
        assert!(err.to_string().contains("extra/c.ko") && err.to_string().contains("\"gone\""));
        let err = t.resolve(&["a"]).unwrap_err();
        assert!(
            matches!(err, TreeError::Resolve(ResolveError::Cycle(_))),
            "{err}"
        );
    }

    #[test]
    fn updates_override_and_compressed_files() {
        let (_tmp, root) = tree();
        let plain = std::fs::read(root.join("kernel/drivers/block/virtio_blk.ko")).unwrap();
        let packed = ruzstd::encoding::compress_to_vec(
            &plain[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        std::fs::create_dir_all(root.join("updates")).unwrap();
        std::fs::write(root.join("updates/virtio_blk.ko.zst"), packed).unwrap();
        let t = ModuleTree::scan(&root).unwrap();
        assert_eq!(
            t.lookup("virtio_blk"),
            Some(Path::new("updates/virtio_blk.ko.zst"))
        );
        let r = t.resolve(&["virtio_blk"]).unwrap();
        assert_eq!(paths(&r), ["updates/virtio_blk.ko.zst"]);
    }

    #[test]
    fn version_from_directory_name() {
        let tmp = tempfile::tempdir().unwrap();
        let err = ModuleTree::scan(tmp.path()).unwrap_err();
        assert!(matches!(err, TreeError::NoVersion(_)), "{err}");
        let err = ModuleTree::scan(&tmp.path().join("6.1.0-1-amd64")).unwrap_err();
        assert!(err.to_string().contains("6.1.0-1-amd64"), "{err}");
    }

    #[test]
    fn distances() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("virtio_net", "virtio_net"), 0);
    }
}
