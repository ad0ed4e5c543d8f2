//! The module-tree scanner on the real Debian kernel package: fetched with
//! `sources::fetch` (metapackage `linux-image-amd64` resolved to the concrete
//! `linux-image-<kver>` package), unpacked in Rust, then xen-netfront,
//! xen-blkfront, virtio_net and virtio_blk resolved with their dependencies.
//!
//! Cache: `$IMGBUILD_CACHE` if set (reused across runs and checkouts),
//! otherwise `imgbuild-cache` in Cargo's target tmp directory. Skips (with a
//! message) only when `apt-get` is not installed and nothing is cached.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{have, run_ok};
use imgbuild::sources::{self, FetchError, PackageSpec};
use imgbuild_modules::modinfo::ModInfo;
use imgbuild_modules::tree::{ModuleTree, TreeError};

fn cache_dir() -> PathBuf {
    std::env::var_os("IMGBUILD_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("imgbuild-cache"))
}

/// The unpacked kernel package's `/lib/modules/<kver>` directory (fetched
/// and unpacked once, however many tests run in parallel).
fn kernel_tree() -> Option<PathBuf> {
    static TREE: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    TREE.get_or_init(fetch_kernel_tree).clone()
}

fn fetch_kernel_tree() -> Option<PathBuf> {
    let cache = cache_dir();
    let spec: PackageSpec = "linux-image-amd64".parse().unwrap();
    let deb = match sources::fetch(&spec, &cache, &mut |_| {}) {
        Ok(deb) => deb,
        Err(FetchError::AptMissing { .. }) => {
            eprintln!(
                "SKIPPED: apt-get is not installed and {} holds no kernel package",
                cache.display()
            );
            return None;
        }
        Err(e) => panic!("{e}"),
    };
    let name = deb.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("linux-image-") && !name.starts_with("linux-image-amd64_"),
        "metapackage not resolved: {name}"
    );
    let root = sources::unpack_cached(&deb, &cache.join("unpacked")).unwrap();
    let modules = root.join("lib/modules");
    let mut kvers: Vec<PathBuf> = std::fs::read_dir(&modules)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kvers.len(), 1, "{kvers:?}");
    kvers.pop()
}

const WANTED: [&str; 4] = ["xen-netfront", "xen-blkfront", "virtio_net", "virtio_blk"];

#[test]
fn resolves_the_real_debian_kernel_modules() {
    let Some(dir) = kernel_tree() else { return };
    let tree = ModuleTree::scan(&dir).unwrap();
    let kver = tree.kernel_version().to_owned();
    assert!(kver.ends_with("-amd64"), "{kver}");
    assert!(tree.len() > 1000, "only {} modules", tree.len());

    let r = tree.resolve(&WANTED).unwrap();
    let names: Vec<&str> = r.modules.iter().map(|m| m.name.as_str()).collect();
    let pos = |n: &str| {
        names
            .iter()
            .position(|m| *m == n)
            .unwrap_or_else(|| panic!("{n} missing from {names:?}"))
    };
    // virtio_net needs net_failover, which needs failover.
    let vnet = &r.modules[pos("virtio_net")];
    assert!(
        vnet.depends.contains(&"net_failover".to_owned()),
        "{:?}",
        vnet.depends
    );
    assert!(pos("failover") < pos("net_failover"));
    assert!(pos("net_failover") < pos("virtio_net"));
    for n in ["xen_netfront", "xen_blkfront", "virtio_blk"] {
        pos(n);
    }
    // Every module is listed after all of its dependencies, and was built
    // for this kernel.
    for (i, m) in r.modules.iter().enumerate() {
        for d in &m.depends {
            assert!(pos(d) < i, "{} loads before its dependency {d}", m.name);
        }
        assert_eq!(m.vermagic.split_whitespace().next(), Some(kver.as_str()));
        assert!(dir.join(&m.path).is_file());
    }
    // The modules.dep we render agrees with the order.
    let dep = r.modules_dep.render();
    let line = r.modules_dep.find("virtio_net").unwrap();
    let at = |p: &str| line.deps.iter().position(|d| d == p);
    let (nf, f) = (
        at("kernel/drivers/net/net_failover.ko"),
        at("kernel/net/core/failover.ko"),
    );
    assert!(
        nf.is_some() && f.is_some() && nf < f,
        "nearest dependency first: {dep}"
    );
    eprintln!("load order: {names:?}\nmodules.dep:\n{dep}");

    // Deterministic.
    assert_eq!(tree.resolve(&WANTED).unwrap(), r);

    // A misspelt module gets the closest names.
    let err = tree.resolve(&["virtio-nett"]).unwrap_err();
    assert!(matches!(err, TreeError::NotFound { .. }));
    assert!(err.to_string().contains("closest: virtio_net"), "{err}");

    // ext4 is built into Debian's kernel: nothing to load, not an error.
    if tree.is_builtin("ext4") {
        assert_eq!(tree.resolve(&["ext4"]).unwrap().builtin, ["ext4"]);
    }
}

/// Cross-checks our `.modinfo` reader and resolution against kmod's
/// `modinfo` and `depmod`, when kmod is installed.
#[test]
fn agrees_with_kmod() {
    let Some(dir) = kernel_tree() else { return };
    if !have("depmod") {
        eprintln!("SKIPPED: kmod (modinfo, depmod, modprobe) is not installed");
        return;
    }
    let tree = ModuleTree::scan(&dir).unwrap();
    let kver = tree.kernel_version().to_owned();
    for name in WANTED.iter().chain(&["net_failover", "failover"]) {
        let path = dir.join(tree.lookup(name).unwrap());
        let ours = ModInfo::from_file(&path).unwrap();
        for field in ["depends", "vermagic", "name"] {
            let out = Command::new("modinfo")
                .args(["-F", field])
                .arg(&path)
                .output()
                .unwrap();
            assert!(out.status.success());
            let theirs = String::from_utf8(out.stdout).unwrap();
            assert_eq!(
                ours.get(field).unwrap_or("").trim(),
                theirs.trim(),
                "{name} {field}"
            );
        }
    }
    // depmod's modules.dep for the unpacked package (`-n`: to stdout, where
    // modules.dep comes first, up to the first `#` comment of the next file).
    let base = dir.parent().unwrap().parent().unwrap().parent().unwrap();
    let out = run_ok(
        Command::new("depmod")
            .arg("-n")
            .arg("-b")
            .arg(base)
            .arg(&kver),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let dep_text: String = text
        .lines()
        .take_while(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let kmod = imgbuild_modules::dep::ModulesDep::parse(&dep_text).unwrap();
    for name in WANTED {
        let ours = tree.resolve(&[name]).unwrap();
        // The same set of modules to load as depmod's modules.dep implies…
        let theirs = imgbuild_modules::resolve::load_order(&kmod, &[name]).unwrap();
        let mut a = theirs.clone();
        let mut b: Vec<String> = ours
            .modules
            .iter()
            .map(|m| m.path.to_string_lossy().into_owned())
            .collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{name}: depmod {theirs:?}");
        // …and the same modules.dep line (depmod's order may differ for siblings).
        let mut x = kmod.find(name).unwrap().deps.clone();
        let mut y = ours.modules_dep.find(name).unwrap().deps.clone();
        x.sort();
        y.sort();
        assert_eq!(x, y, "{name}");
    }
}

/// A real module compressed by the real `xz`, `zstd` and `gzip` tools (as
/// kernels built with `CONFIG_MODULE_COMPRESS_*` ship them) reads back to the
/// same bytes and `.modinfo`, and a tree of such files resolves the same way.
#[test]
fn compressed_real_modules() {
    let Some(dir) = kernel_tree() else { return };
    let tree = ModuleTree::scan(&dir).unwrap();
    let kver = tree.kernel_version().to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join(&kver);
    let plain_resolution = tree.resolve(&["virtio_net"]).unwrap();
    for (i, m) in plain_resolution.modules.iter().enumerate() {
        let (tool, ext) = [("xz", "xz"), ("zstd", "zst"), ("gzip", "gz")][i % 3];
        if !have(tool) {
            eprintln!("SKIPPED: {tool} is not installed");
            return;
        }
        let src = dir.join(&m.path);
        let dest = copy.join(format!("{}.{ext}", m.path.display()));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let out = Command::new(tool)
            .args(["-c", "-q"])
            .arg(&src)
            .output()
            .unwrap();
        assert!(out.status.success(), "{tool} failed");
        std::fs::write(&dest, &out.stdout).unwrap();
        let plain = std::fs::read(&src).unwrap();
        assert_eq!(
            imgbuild_modules::decompress::read_module(&dest).unwrap(),
            plain,
            "{}",
            dest.display()
        );
        assert_eq!(
            ModInfo::from_file(&dest).unwrap(),
            ModInfo::from_file(&src).unwrap()
        );
    }
    let packed = ModuleTree::scan(&copy).unwrap();
    let r = packed.resolve(&["virtio_net"]).unwrap();
    let names = |r: &imgbuild_modules::tree::Resolution| -> Vec<String> {
        r.modules.iter().map(|m| m.name.clone()).collect()
    };
    assert_eq!(names(&r), names(&plain_resolution));
    assert!(
        r.modules
            .iter()
            .all(|m| !m.path.to_string_lossy().ends_with(".ko"))
    );
}
