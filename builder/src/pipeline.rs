//! `imgbuild recipe`: from a checked recipe to `out/<name>/` — fetch inputs,
//! resolve modules, plan and write the root image and initramfs, copy the
//! kernel, write the xl config and manifest. Everything is written into a
//! staging directory first and renamed into place only when all succeeded,
//! so a failed build leaves the previous outputs intact.

use std::fs;
use std::path::{Path, PathBuf};

use guest_contract::init_config::Stage;
use guest_contract::outputs::{MANIFEST_FILE, Output};
use imgbuild_modules::tree::{ModuleTree, TreeError};
use sha2::{Digest, Sha256};

use crate::init_binary::{InitBinary, InitBinaryError};
use crate::init_conf::init_config;
use crate::initramfs_out::{self, InitramfsOutError};
use crate::kernel::{self, KernelFiles, LocateError};
use crate::kmods::{self, KmodError};
use crate::manifest::{manifest_for, output_file};
use crate::progress::Progress;
use crate::recipe::units::human;
use crate::recipe::{Input, Located, Recipe, RecipeError, Size};
use crate::rootfs::busybox::{self, AppletError};
use crate::rootfs::{self, RootfsParts};
use crate::sources::{self, PackageSpec, SourceError};
use crate::xlcfg::{self, XlPaths};
use guest_contract::manifest::Manifest;

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
    let [rootfs_img, initrd_img, vmlinuz, xl_cfg] = Output::ALL.map(|o| o.file_name(name));

    // Root image.
    progress.step(&rootfs_img);
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
    rootfs::write::write(&plan, fs_opts, opts.epoch, &st(&rootfs_img), &mut |p| {
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
        let (img, file) = (st(&rootfs_img), rootfs_img.clone());
        std::thread::spawn(move || output_file(Output::RootImage, &file, &img))
    };

    // Initramfs.
    progress.step(&initrd_img);
    let conf1 = init_config(
        recipe,
        &kfiles.version,
        Stage::Initramfs,
        &stage1_set,
        &stage2_set,
    )
    .render();
    let iplan = initramfs_out::plan(&init.bytes, &conf1, &kfiles.version, &stage1_set);
    initramfs_out::write(&iplan, opts.epoch, &st(&initrd_img))?;
    let isize = fs::metadata(st(&initrd_img))
        .map_err(io_err(&st(&initrd_img)))?
        .len();
    if isize > INITRAMFS_LIMIT {
        return Err(BuildError::InitramfsTooBig { size: isize });
    }

    // Kernel and xl config.
    progress.step("vmlinuz, xl config");
    fs::copy(&kfiles.vmlinuz, st(&vmlinuz)).map_err(io_err(&kfiles.vmlinuz))?;
    let paths = XlPaths {
        kernel: out_dir.join(&vmlinuz).display().to_string(),
        ramdisk: out_dir.join(&initrd_img).display().to_string(),
        disk: recipe
            .xen
            .disk_target
            .clone()
            .unwrap_or_else(|| out_dir.join(&rootfs_img).display().to_string()),
    };
    fs::write(st(&xl_cfg), xlcfg::render(recipe, &paths)).map_err(io_err(&st(&xl_cfg)))?;

    // Manifest.
    progress.step("sha256, manifest");
    let rootfs_out = rootfs_hash
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("hashing thread panicked")))
        .map_err(io_err(&st(&rootfs_img)))?;
    let mut outputs = vec![rootfs_out];
    for (o, f) in [
        (Output::Initramfs, &initrd_img),
        (Output::Kernel, &vmlinuz),
        (Output::XlConfig, &xl_cfg),
    ] {
        outputs.push(output_file(o, f, &st(f)).map_err(io_err(&st(f)))?);
    }
    let manifest = manifest_for(recipe, opts.epoch, &kfiles.version, outputs);
    fs::write(st(MANIFEST_FILE), manifest.to_json()).map_err(io_err(&st(MANIFEST_FILE)))?;

    // Commit: everything succeeded, move into place.
    progress.step("commit");
    fs::create_dir_all(&out_dir).map_err(io_err(&out_dir))?;
    for f in [&rootfs_img, &initrd_img, &vmlinuz, &xl_cfg, MANIFEST_FILE] {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_is_stable_per_name() {
        assert_eq!(seed_for("busybox"), seed_for("busybox"));
        assert_ne!(seed_for("busybox"), seed_for("other"));
    }
}
