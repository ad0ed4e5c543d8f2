//! `imgbuild recipe`: from a checked recipe to `out/<name>/` — fetch inputs,
//! resolve modules, plan and write the root image and initramfs, copy the
//! kernel, write the xl config and manifest. Everything is written into a
//! staging directory first and renamed into place only when all succeeded,
//! so a failed build leaves the previous outputs intact.

use std::fs;
use std::path::{Path, PathBuf};

use imgbuild_init::config::{
    InitConfig, NetConfig, Restart as InitRestart, Service as InitService, Stage, StatusConfig,
};
use imgbuild_modules::tree::{ModuleTree, TreeError};
use sha2::{Digest, Sha256};

use crate::init_binary::{InitBinary, InitBinaryError};
use crate::initramfs_out::{self, InitramfsOutError};
use crate::kernel::{self, KernelFiles, LocateError};
use crate::kmods::{self, KmodError, ModuleSet};
use crate::manifest::{GuestFacts, Manifest, OutputFile};
use crate::progress::Progress;
use crate::recipe::units::human;
use crate::recipe::{Input, Located, Recipe, RecipeError, Restart, Size};
use crate::rootfs::busybox::{self, AppletError};
use crate::rootfs::{self, Node, Plan, RootfsParts};
use crate::sources::{self, PackageSpec, SourceError};
use crate::xlcfg::{self, XlPaths};

/// The largest initramfs we produce.
pub const INITRAMFS_LIMIT: u64 = 2 << 20;
/// Modules the initramfs needs to mount the root filesystem, added when the
/// kernel has them as modules rather than built in.
pub const ROOT_FS_MODULES: [&str; 2] = ["ext4", "crc32c_generic"];
/// Timestamp used when `SOURCE_DATE_EPOCH` is not set.
pub const DEFAULT_EPOCH: i64 = 0;

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Output root; the guest's files go to `<out_root>/<name>/`.
    pub out_root: PathBuf,
    /// Download and unpack cache.
    pub cache: PathBuf,
    /// Draw progress bars (when stderr is a terminal).
    pub progress: bool,
    /// Timestamp for every file.
    pub epoch: i64,
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildResult {
    /// `<out_root>/<name>/`
    pub out_dir: PathBuf,
    /// The manifest written there.
    pub manifest: Manifest,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The recipe must be fixed.
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    /// An input could not be fetched or unpacked.
    #[error("{what}: {source}")]
    Source {
        /// Which input (`inputs.kernel`).
        what: &'static str,
        /// Why.
        source: SourceError,
    },
    /// The kernel or busybox is not where expected.
    #[error(transparent)]
    Locate(#[from] LocateError),
    /// Module resolution failed.
    #[error(transparent)]
    Kmod(#[from] KmodError),
    /// The module tree cannot be scanned.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// The init binary is unusable.
    #[error(transparent)]
    Init(#[from] InitBinaryError),
    /// Busybox applets could not be listed.
    #[error(transparent)]
    Applets(#[from] AppletError),
    /// Writing the root image failed.
    #[error("rootfs.img: {0}")]
    Rootfs(#[from] ext4fs_builder::Error),
    /// Writing the initramfs failed.
    #[error(transparent)]
    Initramfs(#[from] InitramfsOutError),
    /// The initramfs is too big.
    #[error("initrd.img is {} ({size} bytes), over the {} limit: fewer or smaller [modules] initramfs entries are needed", human(*size), human(INITRAMFS_LIMIT))]
    InitramfsTooBig {
        /// Its size.
        size: u64,
    },
    /// `SOURCE_DATE_EPOCH` is not a number.
    #[error("SOURCE_DATE_EPOCH={0:?} is not a number of seconds")]
    BadEpoch(String),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `SOURCE_DATE_EPOCH` from the environment, or [`DEFAULT_EPOCH`].
pub fn source_date_epoch() -> Result<i64, BuildError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| BuildError::BadEpoch(v)),
        _ => Ok(DEFAULT_EPOCH),
    }
}

/// The cache directory: `$IMGBUILD_CACHE`, else `~/.cache/imgbuild`.
pub fn default_cache() -> PathBuf {
    if let Some(c) = std::env::var_os("IMGBUILD_CACHE").filter(|c| !c.is_empty()) {
        return PathBuf::from(c);
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|c| !c.is_empty()) {
        return PathBuf::from(x).join("imgbuild");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("imgbuild")
}

/// Removes the staging directory unless the build committed.
struct Staging {
    dir: PathBuf,
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Builds `recipe` into `<out_root>/<name>/`.
pub fn build(recipe: &Recipe, opts: &BuildOptions) -> Result<BuildResult, BuildError> {
    // The init first: a bad IMGBUILD_INIT fails before any download.
    let init = InitBinary::locate()?;
    let mut progress = Progress::new(opts.progress);
    let name = &recipe.guest.name;

    // Inputs.
    progress.step("kernel");
    let kfiles = kernel_input(recipe, opts, &mut progress)?;
    progress.step("busybox");
    let busybox_bin = busybox_input(recipe, opts, &mut progress)?;
    let applets = busybox::applets(&busybox_bin)?;

    // Modules.
    progress.step(&format!("modules of {}", kfiles.version));
    let tree = ModuleTree::scan_version(&kfiles.modules_dir, &kfiles.version)?;
    // Stage 1 also needs the root filesystem's driver when the kernel has it
    // as a module (Debian's does: ext4, and crc32c for metadata_csum).
    let mut stage1_wanted = recipe.modules.initramfs.clone();
    for m in ROOT_FS_MODULES {
        let listed = stage1_wanted
            .iter()
            .any(|w| imgbuild_modules::name::same(&w.value, m));
        if !listed && tree.lookup(m).is_some() {
            stage1_wanted.push(Located {
                value: m.to_owned(),
                loc: Default::default(),
            });
        }
    }
    let stage1 = kmods::resolve(recipe, &tree, &stage1_wanted, "modules.initramfs")?;
    let stage2 = kmods::resolve(recipe, &tree, &recipe.modules.load, "modules.load")?;
    let stage1_set = kmods::collect(&tree, &[&stage1])?;
    let stage2_set = kmods::collect(&tree, &[&stage2])?;
    let all_set = kmods::collect(&tree, &[&stage1, &stage2])?;

    // Output locations.
    // Staging sits next to the output directory (same filesystem, so the
    // final renames are atomic); the output directory itself is only
    // created when everything is ready.
    fs::create_dir_all(&opts.out_root).map_err(io_err(&opts.out_root))?;
    let out_root = std::path::absolute(&opts.out_root).map_err(io_err(&opts.out_root))?;
    let out_dir = out_root.join(name);
    let staging = Staging {
        dir: out_root.join(format!(".{name}.staging-{}", std::process::id())),
    };
    let _ = fs::remove_dir_all(&staging.dir);
    fs::create_dir_all(&staging.dir).map_err(io_err(&staging.dir))?;
    let st = |f: &str| staging.dir.join(f);
    let cfg_name = format!("{name}.cfg");

    // Root image.
    progress.step("rootfs.img");
    let conf2 = init_config(
        recipe,
        &kfiles.version,
        Stage::Root,
        &stage1_set,
        &stage2_set,
    )
    .render();
    let parts = RootfsParts {
        recipe,
        busybox: &busybox_bin,
        applets: &applets,
        init: &init.bytes,
        init_conf: &conf2,
        kernel_version: &kfiles.version,
        modules: &all_set.files,
        modules_dep: &all_set.modules_dep,
    };
    let plan = rootfs::plan(&parts);
    let fs_opts = ext4fs_builder::Options {
        size: match recipe.rootfs.size.value {
            Size::Auto => ext4fs_builder::SizeSpec::Auto,
            Size::Fixed(b) => ext4fs_builder::SizeSpec::Fixed(b),
        },
        label: Some(recipe.rootfs.label.clone()),
        seed: Some(seed_for(name)),
        ..ext4fs_builder::Options::default()
    };
    rootfs::write::write(&plan, fs_opts, opts.epoch, &st("rootfs.img"), &mut |p| {
        progress.bytes(p.bytes_done, p.bytes_total);
    })
    .map_err(|e| match e {
        ext4fs_builder::Error::TooSmall { size_bytes, needed_bytes } => BuildError::Recipe(recipe.error_at(
            recipe.rootfs.size.loc,
            "rootfs.size",
            format!(
                "{} is too small for the contents: at least {} ({needed_bytes} bytes) is needed; use a bigger size or \"auto\"",
                human(size_bytes),
                human(needed_bytes)
            ),
        )),
        e => BuildError::Rootfs(e),
    })?;
    // Hash the (large) root image on the other core while the rest is built.
    let rootfs_hash = {
        let img = st("rootfs.img");
        std::thread::spawn(move || OutputFile::of("rootfs.img", &img))
    };

    // Initramfs.
    progress.step("initrd.img");
    let conf1 = init_config(
        recipe,
        &kfiles.version,
        Stage::Initramfs,
        &stage1_set,
        &stage2_set,
    )
    .render();
    let iplan = initramfs_plan(&init.bytes, &conf1, &kfiles.version, &stage1_set);
    initramfs_out::write(&iplan, opts.epoch, &st("initrd.img"))?;
    let isize = fs::metadata(st("initrd.img"))
        .map_err(io_err(&st("initrd.img")))?
        .len();
    if isize > INITRAMFS_LIMIT {
        return Err(BuildError::InitramfsTooBig { size: isize });
    }

    // Kernel and xl config.
    progress.step("vmlinuz, xl config");
    fs::copy(&kfiles.vmlinuz, st("vmlinuz")).map_err(io_err(&kfiles.vmlinuz))?;
    let paths = XlPaths {
        kernel: out_dir.join("vmlinuz").display().to_string(),
        ramdisk: out_dir.join("initrd.img").display().to_string(),
        disk: recipe
            .xen
            .disk_target
            .clone()
            .unwrap_or_else(|| out_dir.join("rootfs.img").display().to_string()),
    };
    fs::write(st(&cfg_name), xlcfg::render(recipe, &paths)).map_err(io_err(&st(&cfg_name)))?;

    // Manifest.
    progress.step("sha256, manifest");
    let rootfs_out = rootfs_hash
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("hashing thread panicked")))
        .map_err(io_err(&st("rootfs.img")))?;
    let mut outputs = vec![rootfs_out];
    for f in ["initrd.img", "vmlinuz", cfg_name.as_str()] {
        outputs.push(OutputFile::of(f, &st(f)).map_err(io_err(&st(f)))?);
    }
    let manifest = manifest_for(recipe, opts.epoch, &kfiles.version, outputs);
    fs::write(st("manifest.json"), manifest.to_json()).map_err(io_err(&st("manifest.json")))?;

    // Commit: everything succeeded, move into place.
    progress.step("commit");
    fs::create_dir_all(&out_dir).map_err(io_err(&out_dir))?;
    for f in [
        "rootfs.img",
        "initrd.img",
        "vmlinuz",
        cfg_name.as_str(),
        "manifest.json",
    ] {
        fs::rename(st(f), out_dir.join(f)).map_err(io_err(&out_dir.join(f)))?;
    }
    drop(staging);
    progress.done();
    Ok(BuildResult { out_dir, manifest })
}

/// A stable 64-bit seed for the guest (UUID and hash seed of its image).
fn seed_for(name: &str) -> u64 {
    let h = Sha256::digest(format!("imgbuild rootfs {name}").as_bytes());
    u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
}

fn package_spec(name: &str, version: &Option<String>) -> PackageSpec {
    PackageSpec {
        name: name.to_owned(),
        version: version.clone(),
    }
}

fn materialize(
    recipe: &Recipe,
    input: &sources::Input,
    what: &'static str,
    opts: &BuildOptions,
    progress: &mut Progress,
) -> Result<PathBuf, BuildError> {
    let loc = if what == "inputs.kernel" {
        recipe.inputs.kernel.loc
    } else {
        recipe.inputs.busybox.loc
    };
    input
        .materialize(&recipe.dir, &opts.cache, &mut |ev| progress.fetch_event(ev))
        .map_err(|source| {
            if loc.line > 0 {
                // Written in the recipe: point at it.
                BuildError::Recipe(recipe.error_at(loc, what, source.to_string()))
            } else {
                BuildError::Source { what, source }
            }
        })
}

fn kernel_input(
    recipe: &Recipe,
    opts: &BuildOptions,
    progress: &mut Progress,
) -> Result<KernelFiles, BuildError> {
    let loc = recipe.inputs.kernel.loc;
    kernel_files(recipe, opts, progress).map_err(|e| match e {
        BuildError::Locate(e) if loc.line > 0 => {
            BuildError::Recipe(recipe.error_at(loc, "inputs.kernel", e.to_string()))
        }
        e => e,
    })
}

fn kernel_files(
    recipe: &Recipe,
    opts: &BuildOptions,
    progress: &mut Progress,
) -> Result<KernelFiles, BuildError> {
    match &recipe.inputs.kernel.value {
        Input::Package { name, version } => {
            let tree = materialize(
                recipe,
                &sources::Input::Package(package_spec(name, version)),
                "inputs.kernel",
                opts,
                progress,
            )?;
            Ok(kernel::locate_in_tree(&tree)?)
        }
        Input::Path {
            path,
            modules: Some(m),
        } => Ok(kernel::locate_file(path, m)?),
        Input::Path {
            path,
            modules: None,
        } => {
            let tree = materialize(
                recipe,
                &sources::Input::Local(path.clone()),
                "inputs.kernel",
                opts,
                progress,
            )?;
            Ok(kernel::locate_in_tree(&tree)?)
        }
    }
}

fn busybox_input(
    recipe: &Recipe,
    opts: &BuildOptions,
    progress: &mut Progress,
) -> Result<PathBuf, BuildError> {
    let input = match &recipe.inputs.busybox.value {
        Input::Package { name, version } => sources::Input::Package(package_spec(name, version)),
        Input::Path { path, .. } => sources::Input::Local(path.clone()),
    };
    let p = materialize(recipe, &input, "inputs.busybox", opts, progress)?;
    Ok(kernel::locate_busybox(&p)?)
}

/// The init's configuration for `stage`.
pub fn init_config(
    recipe: &Recipe,
    kver: &str,
    stage: Stage,
    stage1: &ModuleSet,
    stage2: &ModuleSet,
) -> InitConfig {
    let shell = imgbuild_init::config::split_words(&recipe.init.shell).unwrap_or_else(|_| {
        recipe
            .init
            .shell
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    });
    InitConfig {
        stage,
        kernel_version: kver.to_owned(),
        hostname: Some(recipe.guest.hostname.clone()),
        stage1_modules: stage1.load_order(),
        stage2_modules: stage2.load_order(),
        root_wait_secs: recipe.init.root_wait_secs,
        net: recipe.network.as_ref().map(|n| NetConfig {
            iface: "eth0".to_owned(),
            address: n.address.addr,
            prefix: n.address.prefix,
            gateway: n.gateway,
            mac: Some(n.mac.0),
        }),
        shell,
        services: recipe
            .init
            .services
            .iter()
            .map(|s| InitService {
                restart: match s.restart {
                    Restart::Once => InitRestart::Once,
                    Restart::Respawn => InitRestart::Respawn,
                },
                argv: s.command.clone(),
            })
            .collect(),
        status: StatusConfig {
            enabled: recipe.init.status_enabled,
            port: recipe.init.status_port,
        },
        ..InitConfig::default()
    }
}

/// The initramfs contents: `/init`, its config, the block-driver modules
/// with a `modules.dep`, and the directories and console the kernel and
/// stage 1 need.
pub fn initramfs_plan(init: &[u8], conf: &str, kver: &str, modules: &ModuleSet) -> Plan {
    let mut p = Plan::new();
    for d in ["/dev", "/proc", "/sys", "/newroot", "/etc/imgbuild"] {
        p.add(d, Node::Dir, 0o755);
    }
    p.add("/dev/console", Node::CharDev(5, 1), 0o600);
    p.add("/init", Node::Bytes(init.to_vec()), 0o755);
    p.add(
        "/etc/imgbuild/init.conf",
        Node::Bytes(conf.as_bytes().to_vec()),
        0o644,
    );
    let kdir = format!("/lib/modules/{kver}");
    p.add(&kdir, Node::Dir, 0o755);
    for m in &modules.files {
        p.add(
            &format!("{kdir}/{}", m.rel),
            Node::Bytes(m.bytes.clone()),
            0o644,
        );
    }
    p.add(
        &format!("{kdir}/modules.dep"),
        Node::Bytes(modules.modules_dep.as_bytes().to_vec()),
        0o644,
    );
    p
}

fn manifest_for(recipe: &Recipe, epoch: i64, kver: &str, outputs: Vec<OutputFile>) -> Manifest {
    let n = recipe.network.as_ref();
    Manifest {
        name: recipe.guest.name.clone(),
        source_date_epoch: epoch,
        kernel_version: kver.to_owned(),
        guest: GuestFacts {
            hostname: recipe.guest.hostname.clone(),
            memory_mib: recipe.guest.memory_mib,
            vcpus: recipe.guest.vcpus,
            mac: n.map(|n| n.mac.to_string()),
            address: n.map(|n| n.address.addr.to_string()),
            prefix: n.map(|n| n.address.prefix),
            gateway: n.and_then(|n| n.gateway).map(|g| g.to_string()),
            status_port: recipe
                .init
                .status_enabled
                .then_some(recipe.init.status_port),
            xen_cmdline: recipe.xen_cmdline(),
            root_label: recipe.rootfs.label.clone(),
        },
        outputs,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::rootfs::ModuleFile;

    fn set(rels: &[&str]) -> ModuleSet {
        ModuleSet {
            files: rels
                .iter()
                .map(|r| ModuleFile {
                    rel: (*r).to_owned(),
                    bytes: vec![1],
                })
                .collect(),
            modules_dep: rels.iter().map(|r| format!("{r}:\n")).collect(),
        }
    }

    #[test]
    fn init_config_carries_the_recipe() {
        let r = Recipe::parse(
            Path::new("/r/g.toml"),
            r#"
[guest]
name = "g"
hostname = "h1"
[network]
address = "10.1.2.3/16"
gateway = "10.1.0.1"
mac = "00:16:3e:aa:bb:cc"
[init]
shell = "/bin/sh -l"
root_wait = 7
[[init.services]]
command = ["/sbin/syslogd", "-n"]
[[init.services]]
command = ["/bin/echo", "hello world"]
restart = "once"
[init.status]
enabled = false
port = 6000
"#,
        )
        .unwrap();
        let s1 = set(&["kernel/a.ko"]);
        let s2 = set(&["kernel/b.ko", "kernel/c.ko"]);
        let c = init_config(&r, "6.1.0-9-amd64", Stage::Root, &s1, &s2);
        // What the init will read back is what the recipe said.
        let back = InitConfig::parse(&c.render()).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.stage, Stage::Root);
        assert_eq!(back.kernel_version, "6.1.0-9-amd64");
        assert_eq!(back.hostname.as_deref(), Some("h1"));
        assert_eq!(back.stage1_modules, ["kernel/a.ko"]);
        assert_eq!(back.stage2_modules, ["kernel/b.ko", "kernel/c.ko"]);
        assert_eq!(back.root_wait_secs, 7);
        assert_eq!(back.shell, ["/bin/sh", "-l"]);
        let net = back.net.unwrap();
        assert_eq!((net.iface.as_str(), net.prefix), ("eth0", 16));
        assert_eq!(net.mac, Some([0x00, 0x16, 0x3e, 0xaa, 0xbb, 0xcc]));
        assert_eq!(net.gateway, Some(std::net::Ipv4Addr::new(10, 1, 0, 1)));
        assert_eq!(back.services.len(), 2);
        assert_eq!(back.services[0].restart, InitRestart::Respawn);
        assert_eq!(back.services[1].argv, ["/bin/echo", "hello world"]);
        assert_eq!(back.services[1].restart, InitRestart::Once);
        assert_eq!(
            back.status,
            StatusConfig {
                enabled: false,
                port: 6000
            }
        );
    }

    #[test]
    fn initramfs_plan_has_what_stage_1_needs() {
        let p = initramfs_plan(
            b"ELF",
            "stage = 1\n",
            "6.1.0-9-amd64",
            &set(&["kernel/drivers/block/virtio_blk.ko"]),
        );
        assert_eq!(p.get("/init").unwrap().node, Node::Bytes(b"ELF".to_vec()));
        assert_eq!(p.get("/init").unwrap().mode, 0o755);
        assert_eq!(p.get("/dev/console").unwrap().node, Node::CharDev(5, 1));
        assert!(p.get("/etc/imgbuild/init.conf").is_some());
        assert!(
            p.get("/lib/modules/6.1.0-9-amd64/kernel/drivers/block/virtio_blk.ko")
                .is_some()
        );
        assert_eq!(
            p.get("/lib/modules/6.1.0-9-amd64/modules.dep")
                .unwrap()
                .node,
            Node::Bytes(b"kernel/drivers/block/virtio_blk.ko:\n".to_vec())
        );
    }

    #[test]
    fn seed_is_stable_per_name() {
        assert_eq!(seed_for("busybox"), seed_for("busybox"));
        assert_ne!(seed_for("busybox"), seed_for("other"));
    }
}
