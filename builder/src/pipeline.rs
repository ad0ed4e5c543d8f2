//! `imgbuild recipe`: from a checked recipe to `out/<name>/` — fetch inputs,
//! resolve modules, plan and write the root image and initramfs, copy the
//! kernel, write the xl config and manifest. Everything is written into a
//! staging directory first and renamed into place only when all succeeded,
//! so a failed build leaves the previous outputs intact; a signal or a
//! killed run leaves no staging directory behind either ([`interrupt`]).

use std::fs;
use std::path::{Path, PathBuf};

use crate::interrupt;

use guest_contract::init_config::Stage;
use guest_contract::outputs::{MANIFEST_FILE, Output};
use imgbuild_modules::tree::{ModuleTree, TreeError};
use sha2::{Digest, Sha256};

use crate::init_binary::{InitBinary, InitBinaryError};
use crate::init_conf::init_config;
use crate::initramfs_out::{self, InitramfsOutError};
use crate::kernel::{self, KernelFiles, LocateError};
use crate::kmods::{self, KmodError};
use crate::libvirt;
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
    /// Build only from the cache: nothing is downloaded (apt is asked only
    /// about its local package lists).
    pub offline: bool,
    /// Draw progress bars (when stderr is a terminal).
    pub progress: bool,
    /// Timestamp for every file.
    pub epoch: i64,
    /// Only check: decide everything, write no image, hash nothing, and
    /// leave nothing next to the outputs.
    pub check: bool,
    /// Print how long each step took (on stderr).
    pub timings: bool,
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildResult {
    /// `<out_root>/<name>/`
    pub out_dir: PathBuf,
    /// The manifest written there (`None` for a check, which writes nothing).
    pub manifest: Option<Manifest>,
    /// The guest kernel's version.
    pub kernel_version: String,
    /// Each output file's size in bytes (a check: the root image and
    /// initramfs it would write).
    pub sizes: Vec<(String, u64)>,
    /// What builds but may not be what was meant, at its place in the recipe.
    pub warnings: Vec<RecipeError>,
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
    /// `SOURCE_DATE_EPOCH` is not a number.
    #[error("SOURCE_DATE_EPOCH={0:?} is not a number of seconds")]
    BadEpoch(String),
    /// The default root disk target (the output's rootfs.img) cannot
    /// stand in the xl.cfg.
    #[error("the xl.cfg's disk target: {message}")]
    DiskTarget {
        /// Why, and what to do.
        message: String,
    },
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
    Ok(source_date_epoch_if_set()?.unwrap_or(DEFAULT_EPOCH))
}

/// `SOURCE_DATE_EPOCH` if it is set (and not empty); an error if it is not a number.
pub fn source_date_epoch_if_set() -> Result<Option<i64>, BuildError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| BuildError::BadEpoch(v)),
        _ => Ok(None),
    }
}

/// The cache directory: `$IMGBUILD_CACHE`, else `$XDG_CACHE_HOME/imgbuild`,
/// else `$HOME/.cache/imgbuild`, else an error (never the current
/// directory); see [`sources::cache::locate`], which also takes `--cache`.
pub fn cache_dir() -> Result<PathBuf, sources::cache::NoCacheDir> {
    sources::cache::locate(None).map(|c| c.path)
}

/// Builds `recipe` into `<out_root>/<name>/`.
pub fn build(recipe: &Recipe, opts: &BuildOptions) -> Result<BuildResult, BuildError> {
    // The init first: a bad IMGBUILD_INIT fails before any download.
    let init = InitBinary::locate()?;
    let mut progress = Progress::new(opts.progress).with_timings(opts.timings);
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
    let mut stage1_wanted = match recipe.modules.initramfs_key {
        Some(_) => recipe.modules.initramfs.clone(),
        None => kmods::available_defaults(&tree, &recipe.modules.initramfs),
    };
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
    let stage2_wanted = match recipe.modules.load_key {
        Some(_) => recipe.modules.load.clone(),
        None => kmods::available_defaults(&tree, &recipe.modules.load),
    };
    let stage2 = kmods::resolve(recipe, &tree, &stage2_wanted, "modules.load")?;
    let mut warnings = recipe.warnings.clone();
    warnings.extend(kmods::check_platform_drivers(
        recipe, &tree, &stage1, &stage2,
    )?);
    let stage1_set = kmods::collect(&tree, &[&stage1])?;
    let stage2_set = kmods::collect(&tree, &[&stage2])?;
    let all_set = kmods::collect(&tree, &[&stage1, &stage2])?;

    // Output locations.
    // Staging sits next to the output directory (same filesystem, so the
    // final renames are atomic); the output directory itself is only
    // created when everything is ready. A check stages in a temporary
    // directory and writes nothing next to the outputs.
    if !opts.check {
        fs::create_dir_all(&opts.out_root).map_err(io_err(&opts.out_root))?;
    }
    let out_root = std::path::absolute(&opts.out_root).map_err(io_err(&opts.out_root))?;
    let out_dir = out_root.join(name);
    // What killed runs left (their process is gone) goes first.
    let tmp = std::env::temp_dir();
    if !opts.check {
        interrupt::remove_stale(&out_root, interrupt::Kind::Staging, None);
    }
    interrupt::remove_stale(&tmp, interrupt::Kind::Check, None);
    let pid = std::process::id();
    let staging_dir = if opts.check {
        tmp.join(interrupt::check_name(name, pid))
    } else {
        out_root.join(interrupt::staging_name(name, pid))
    };
    let staging = interrupt::WorkDir::create(staging_dir.clone()).map_err(io_err(&staging_dir))?;
    let st = |f: &str| staging.path().join(f);
    let [rootfs_img, initrd_img, vmlinuz, xl_cfg, xen_xml, qemu_xml] =
        Output::ALL.map(|o| o.file_name(name));
    let storage = recipe.xen.storage_in(&out_dir.join(&rootfs_img));
    storage.check().map_err(|e| BuildError::DiskTarget {
        message: format!(
            "{}; build into another --out directory or give [xen.storage] path",
            e.0
        ),
    })?;

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
    let plan = rootfs::plan(&parts)?;
    let rootfs_bytes = root_image(
        recipe,
        &plan,
        opts,
        &out_root,
        &st(&rootfs_img),
        &mut progress,
    )?;
    // Hash the (large) root image on the other core while the rest is built.
    let rootfs_hash = (!opts.check).then(|| {
        let (img, file) = (st(&rootfs_img), rootfs_img.clone());
        std::thread::spawn(move || output_file(Output::RootImage, &file, &img))
    });

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
        return Err(initramfs_too_big(recipe, isize, &stage1_set));
    }
    if opts.check {
        progress.done();
        return Ok(BuildResult {
            out_dir,
            manifest: None,
            kernel_version: kfiles.version.clone(),
            sizes: vec![(rootfs_img, rootfs_bytes), (initrd_img, isize)],
            warnings,
        });
    }

    // Kernel and xl config.
    progress.step("vmlinuz, xl config, libvirt XML");
    fs::copy(&kfiles.vmlinuz, st(&vmlinuz)).map_err(io_err(&kfiles.vmlinuz))?;
    let paths = XlPaths {
        kernel: out_dir.join(&vmlinuz).display().to_string(),
        ramdisk: out_dir.join(&initrd_img).display().to_string(),
        storage,
    };
    fs::write(st(&xl_cfg), xlcfg::render(recipe, &paths)).map_err(io_err(&st(&xl_cfg)))?;
    let image = out_dir.join(&rootfs_img).display().to_string();
    for (f, xml) in [
        (&xen_xml, libvirt::xen(recipe, &paths)),
        (&qemu_xml, libvirt::qemu(recipe, &paths, &image)),
    ] {
        fs::write(st(f), xml.render()).map_err(io_err(&st(f)))?;
    }

    // Manifest.
    progress.step("sha256, manifest");
    let rootfs_out = rootfs_hash
        .map_or_else(
            || Err(std::io::Error::other("no hash of the root image")),
            |h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("hashing thread panicked")))
            },
        )
        .map_err(io_err(&st(&rootfs_img)))?;
    let mut outputs = vec![rootfs_out];
    for (o, f) in [
        (Output::Initramfs, &initrd_img),
        (Output::Kernel, &vmlinuz),
        (Output::XlConfig, &xl_cfg),
        (Output::XenDomainXml, &xen_xml),
        (Output::QemuDomainXml, &qemu_xml),
    ] {
        outputs.push(output_file(o, f, &st(f)).map_err(io_err(&st(f)))?);
    }
    let mut inputs = vec![kfiles.record.clone(), busybox_bin.record.clone()];
    inputs.extend(base_record(recipe)?);
    let manifest = manifest_for(
        recipe,
        opts.epoch,
        &kfiles.version,
        paths.storage,
        inputs,
        outputs,
    );
    fs::write(st(MANIFEST_FILE), manifest.to_json()).map_err(io_err(&st(MANIFEST_FILE)))?;

    // Commit: everything succeeded, move into place.
    progress.step("commit");
    staging.commit(|dir| {
        fs::create_dir_all(&out_dir).map_err(io_err(&out_dir))?;
        for f in [
            &rootfs_img,
            &initrd_img,
            &vmlinuz,
            &xl_cfg,
            &xen_xml,
            &qemu_xml,
            MANIFEST_FILE,
        ] {
            fs::rename(dir.join(f), out_dir.join(f)).map_err(io_err(&out_dir.join(f)))?;
        }
        Ok::<_, BuildError>(())
    })?;
    drop(staging);
    progress.done();
    Ok(BuildResult {
        out_dir,
        kernel_version: manifest.kernel_version.clone(),
        sizes: manifest
            .outputs
            .iter()
            .map(|o| (o.file.clone(), o.size))
            .collect(),
        manifest: Some(manifest),
        warnings,
    })
}

/// Writes the root image of `plan` (on the recipe's base tarball, if any) at
/// `image` — or, for a check, decides it without writing — and returns its
/// size in bytes. A program the init starts that the image lacks is an error
/// at its key; a size the contents do not fit, or the output directory's
/// filesystem cannot hold, one at `rootfs.size`.
fn root_image(
    recipe: &Recipe,
    plan: &rootfs::Plan,
    opts: &BuildOptions,
    out_root: &Path,
    image: &Path,
    progress: &mut Progress,
) -> Result<u64, BuildError> {
    let fs_opts = ext4fs_builder::Options {
        size: match recipe.rootfs.size.value {
            Size::Auto => ext4fs_builder::SizeSpec::Auto,
            Size::Fixed(b) => ext4fs_builder::SizeSpec::Fixed(b),
        },
        label: Some(recipe.rootfs.label.clone()),
        seed: Some(seed_for(&recipe.guest.name)),
        ..ext4fs_builder::Options::default()
    };
    let size_error = |e: ext4fs_builder::Error| {
        match e {
        ext4fs_builder::Error::TooSmall {
            size_bytes,
            needed_bytes,
            ..
        } => BuildError::Recipe(recipe.error_at(
            recipe.rootfs.size.loc,
            "rootfs.size",
            format!(
                "{} is too small for the contents: at least {} ({needed_bytes} bytes) is needed; use a bigger size or \"auto\"",
                human(size_bytes),
                human(needed_bytes)
            ),
        )),
        e @ (ext4fs_builder::Error::FsTooLarge { .. } | ext4fs_builder::Error::TooManyInodes { .. }) => {
            BuildError::Recipe(recipe.error_at(recipe.rootfs.size.loc, "rootfs.size", e.to_string()))
        }
        e => BuildError::Rootfs(e),
    }
    };
    let base = recipe.rootfs.base.as_ref();
    let mut fs = rootfs::write::builder(plan, base.map(|b| b.value.as_path()), fs_opts, opts.epoch)
        .map_err(|e| match e {
            // Only a base gives these: they are at its key.
            rootfs::write::FsError::Base(m) => BuildError::Recipe(recipe.error_at(
                base.map(|b| b.loc).unwrap_or_default(),
                "rootfs.base",
                m,
            )),
            rootfs::write::FsError::Fs(e) => size_error(e),
        })?;
    // The programs the init starts, wherever in the image they came from.
    rootfs::programs::check(&fs, plan, recipe)?;
    let fit = fs.check().map_err(size_error)?;
    // The host must hold a file that large (ext4 on the host: 16 TiB).
    // A check asks the nearest directory that exists.
    let on = out_root
        .ancestors()
        .find(|d| d.is_dir())
        .unwrap_or(Path::new("/"));
    host_can_hold(recipe, on, fit.size_bytes)?;
    if !opts.check {
        fs.write_with_progress(image, &mut |p| {
            progress.bytes(p.bytes_done, p.bytes_total);
        })
        .map_err(size_error)?;
    }
    Ok(fit.size_bytes)
}

/// The manifest's record of the recipe's base tarball (`rootfs.base`): its
/// absolute path and SHA-256.
fn base_record(
    recipe: &Recipe,
) -> Result<Option<guest_contract::manifest::InputRecord>, BuildError> {
    let Some(base) = &recipe.rootfs.base else {
        return Ok(None);
    };
    let path = std::path::absolute(&base.value).map_err(io_err(&base.value))?;
    let sha256 = sources::fetch::sha256_file(&path).map_err(io_err(&path))?;
    Ok(Some(guest_contract::manifest::InputRecord {
        input: "rootfs.base".to_owned(),
        source: guest_contract::manifest::InputSource::Path {
            path: path.display().to_string(),
            sha256,
        },
        busybox_version: None,
    }))
}

/// Refuses a root image the filesystem of `dir` cannot hold (EFBIG), by
/// asking for a sparse file of that length and removing it again.
fn host_can_hold(recipe: &Recipe, dir: &Path, bytes: u64) -> Result<(), BuildError> {
    let probe = dir.join(format!(".imgbuild-size-probe-{}", std::process::id()));
    // Made and removed with signals held off: never left behind.
    let r = interrupt::hold_off(|| {
        let r = fs::File::create(&probe).and_then(|f| f.set_len(bytes));
        let _ = fs::remove_file(&probe);
        r
    });
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(27) => Err(BuildError::Recipe(recipe.error_at(
            recipe.rootfs.size.loc,
            "rootfs.size",
            format!(
                "{} is more than the filesystem of {} can hold in one file ({e}); use a smaller size, or --out on a filesystem that holds larger files",
                human(bytes),
                dir.display()
            ),
        ))),
        Err(e) => Err(BuildError::Io {
            path: probe,
            source: e,
        }),
    }
}

/// The error for an initramfs over its budget: at `modules.initramfs`,
/// naming the modules that made it big.
fn initramfs_too_big(recipe: &Recipe, size: u64, set: &kmods::ModuleSet) -> BuildError {
    let mut by_size: Vec<(&str, usize)> = set
        .files
        .iter()
        .map(|f| (f.rel.rsplit('/').next().unwrap_or(&f.rel), f.bytes.len()))
        .collect();
    by_size.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let biggest: Vec<String> = by_size
        .iter()
        .take(5)
        .map(|(n, b)| format!("{n} ({})", human(*b as u64)))
        .collect();
    BuildError::Recipe(recipe.error_at(
        recipe.modules.initramfs_key.unwrap_or_default(),
        "modules.initramfs",
        format!(
            "initrd.img would be {} ({size} bytes), over the {} limit; its largest modules (uncompressed, with their dependencies): {}; list fewer or smaller ones",
            human(size),
            human(INITRAMFS_LIMIT),
            biggest.join(", ")
        ),
    ))
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

/// An input as used, and its record for the manifest's `inputs`.
#[derive(Debug)]
struct Used<T> {
    /// The kernel's files, or the busybox binary.
    files: T,
    /// Where it came from.
    record: guest_contract::manifest::InputRecord,
}

/// The kernel input: its files (what the build reads, through `Deref`) and
/// its record.
type KernelInput = Used<KernelFiles>;
/// The busybox input: the binary (through `Deref`) and its record.
type BusyboxInput = Used<PathBuf>;

impl std::ops::Deref for KernelInput {
    type Target = KernelFiles;
    fn deref(&self) -> &KernelFiles {
        &self.files
    }
}

impl std::ops::Deref for BusyboxInput {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.files
    }
}

fn materialize(
    recipe: &Recipe,
    input: &sources::Input,
    what: &'static str,
    opts: &BuildOptions,
    progress: &mut Progress,
) -> Result<sources::Materialized, BuildError> {
    let loc = if what == "inputs.kernel" {
        recipe.inputs.kernel.loc
    } else {
        recipe.inputs.busybox.loc
    };
    let apt = sources::Apt::default().offline(opts.offline);
    input
        .materialize(&recipe.dir, &opts.cache, &apt, &mut |ev| {
            progress.fetch_event(ev)
        })
        .map_err(|source| match offline_hint(recipe, &source, opts.offline) {
            // Offline: the file and line (or the key), the package and
            // version, and what to run.
            Some(hint) => {
                BuildError::Recipe(recipe.error_at(loc, what, format!("{source}; {hint}")))
            }
            // Written in the recipe: point at it.
            None if loc.line > 0 => {
                BuildError::Recipe(recipe.error_at(loc, what, source.to_string()))
            }
            None => BuildError::Source { what, source },
        })
}

/// What to run when an offline build lacks something.
fn offline_hint(recipe: &Recipe, e: &SourceError, offline: bool) -> Option<String> {
    use sources::FetchError as F;
    let SourceError::Fetch(e) = e else {
        return None;
    };
    let file = recipe.file.display();
    match e {
        _ if !offline => None,
        F::NotCached { .. } | F::CacheMismatch { .. } => Some(format!(
            "run `imgbuild recipe {file}` (without --offline, with the same cache) to download it"
        )),
        F::NotFound { .. } | F::VersionNotFound { .. } | F::NoCandidate { .. } => Some(format!(
            "to get it, run `apt-get update` (the local package lists may be old), then `imgbuild recipe {file}` (without --offline)"
        )),
        _ => None,
    }
}

fn kernel_input(
    recipe: &Recipe,
    opts: &BuildOptions,
    progress: &mut Progress,
) -> Result<KernelInput, BuildError> {
    let loc = recipe.inputs.kernel.loc;
    kernel_files(recipe, opts, progress).map_err(|e| match e {
        BuildError::Locate(e) if loc.line > 0 => {
            BuildError::Recipe(recipe.error_at(loc, "inputs.kernel", e.to_string()))
        }
        e => e,
    })
}

/// The manifest record of `input` from `origin`, `used` being the file taken.
fn record(
    input: &str,
    origin: &sources::Origin,
    used: &Path,
) -> Result<guest_contract::manifest::InputRecord, BuildError> {
    crate::manifest::input_record(input, origin, used).map_err(io_err(used))
}

fn kernel_files(
    recipe: &Recipe,
    opts: &BuildOptions,
    progress: &mut Progress,
) -> Result<KernelInput, BuildError> {
    let m = match &recipe.inputs.kernel.value {
        Input::Package { name, version } => materialize(
            recipe,
            &sources::Input::Package(package_spec(name, version)),
            "inputs.kernel",
            opts,
            progress,
        )?,
        Input::Path {
            path,
            modules: Some(m),
        } => {
            let files = kernel::locate_file(path, m)?;
            let origin = sources::Origin::Local { path: path.clone() };
            let record = record("kernel", &origin, &files.vmlinuz)?;
            return Ok(Used { files, record });
        }
        Input::Path {
            path,
            modules: None,
        } => materialize(
            recipe,
            &sources::Input::Local(path.clone()),
            "inputs.kernel",
            opts,
            progress,
        )?,
    };
    let files = kernel::locate_in_tree(&m.path)?;
    let record = record("kernel", &m.origin, &files.vmlinuz)?;
    Ok(Used { files, record })
}

fn busybox_input(
    recipe: &Recipe,
    opts: &BuildOptions,
    progress: &mut Progress,
) -> Result<BusyboxInput, BuildError> {
    let input = match &recipe.inputs.busybox.value {
        Input::Package { name, version } => sources::Input::Package(package_spec(name, version)),
        Input::Path { path, .. } => sources::Input::Local(path.clone()),
    };
    let m = materialize(recipe, &input, "inputs.busybox", opts, progress)?;
    let files = kernel::locate_busybox(&m.path)?;
    let mut record = record("busybox", &m.origin, &files)?;
    record.busybox_version = crate::manifest::busybox_version(&files);
    Ok(Used { files, record })
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
