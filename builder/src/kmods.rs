//! Kernel modules for the guest: resolve the recipe's module lists against
//! the kernel's module tree (dependencies from `.modinfo`, vermagic checked),
//! decompress them, and write `modules.dep` for exactly what is installed.

use imgbuild_modules::decompress::{DecompressError, plain_name, read_module};
use imgbuild_modules::dep::{DepEntry, ModulesDep};
use imgbuild_modules::name;
use imgbuild_modules::tree::{ModuleTree, Resolution, TreeError};

use crate::recipe::{Located, Recipe, RecipeError};
use crate::rootfs::ModuleFile;

/// Modules ready to install.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleSet {
    /// The files, in load order (dependencies first), plain `.ko`.
    pub files: Vec<ModuleFile>,
    /// `modules.dep` for them (paths of the plain `.ko` files).
    pub modules_dep: String,
}

impl ModuleSet {
    /// A set of one-byte modules at these paths, for unit tests.
    #[cfg(test)]
    pub fn fake(rels: &[&str]) -> ModuleSet {
        ModuleSet {
            files: rels
                .iter()
                .map(|r| crate::rootfs::ModuleFile {
                    rel: (*r).to_owned(),
                    bytes: vec![1],
                })
                .collect(),
            modules_dep: rels.iter().map(|r| format!("{r}:\n")).collect(),
        }
    }

    /// Paths relative to `/lib/modules/<kver>`, in load order.
    pub fn load_order(&self) -> Vec<String> {
        self.files.iter().map(|f| f.rel.clone()).collect()
    }

    /// Total size in bytes.
    pub fn total_bytes(&self) -> usize {
        self.files.iter().map(|f| f.bytes.len()).sum()
    }
}

/// Why modules could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum KmodError {
    /// A problem the recipe must fix (unknown module, wrong kernel).
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    /// The module tree is unusable.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// A module cannot be decompressed.
    #[error(transparent)]
    Decompress(#[from] DecompressError),
}

/// Resolves `requested` (from recipe key `key`) in `tree`; an unknown module
/// or a vermagic mismatch becomes a recipe error at the module's position.
pub fn resolve(
    recipe: &Recipe,
    tree: &ModuleTree,
    requested: &[Located<String>],
    key: &str,
) -> Result<Resolution, KmodError> {
    let names: Vec<&str> = requested.iter().map(|m| m.value.as_str()).collect();
    tree.resolve(&names).map_err(|e| {
        let at = |n: &str| requested.iter().find(|m| name::same(&m.value, n));
        match &e {
            TreeError::NotFound {
                name,
                kernel_version,
                suggestions,
                ..
            } => match at(name) {
                Some(m) => {
                    let mut msg =
                        format!("module `{name}` does not exist in kernel {kernel_version}");
                    if suggestions.is_empty() {
                        msg.push_str(" (no similar names)");
                    } else {
                        msg.push_str(&format!("; closest: {}", suggestions.join(", ")));
                    }
                    KmodError::Recipe(recipe.error_at(m.loc, key, msg))
                }
                None => KmodError::Tree(e),
            },
            TreeError::VermagicMismatch { path, .. } => {
                // The module itself if it was asked for, else the list.
                let file = path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match at(&name::from_path(&file)).or(requested.first()) {
                    Some(m) => KmodError::Recipe(recipe.error_at(m.loc, key, e.to_string())),
                    None => KmodError::Tree(e),
                }
            }
            _ => KmodError::Tree(e),
        }
    })
}

/// Reads (and decompresses) the resolved modules, in load order.
pub fn collect(tree: &ModuleTree, resolutions: &[&Resolution]) -> Result<ModuleSet, KmodError> {
    let mut set = ModuleSet::default();
    let mut dep = ModulesDep::default();
    for r in resolutions {
        for m in &r.modules {
            let rel_in_tree = m.path.to_string_lossy().into_owned();
            let rel = plain_name(&rel_in_tree).to_owned();
            if set.files.iter().any(|f| f.rel == rel) {
                continue;
            }
            let bytes = read_module(&tree.root().join(&m.path))?;
            set.files.push(ModuleFile { rel, bytes });
        }
        for e in &r.modules_dep.entries {
            dep.insert(DepEntry {
                path: plain_name(&e.path).to_owned(),
                deps: e.deps.iter().map(|d| plain_name(d).to_owned()).collect(),
            });
        }
    }
    set.modules_dep = dep.render();
    Ok(set)
}

/// The drivers a guest needs on each platform: its root disk's (which must
/// be in the initramfs) and its NIC's.
const PLATFORM_DRIVERS: [(&str, &[&str], &[&str]); 2] = [
    ("Xen", &["xen-blkfront"], &["xen-netfront"]),
    (
        "QEMU",
        &["virtio_blk", "virtio_pci"],
        &["virtio_net", "virtio_pci"],
    ),
];

/// True if `module` is loaded by `r` (itself or as a dependency).
fn loads(r: &Resolution, module: &str) -> bool {
    r.modules.iter().any(|m| name::same(&m.name, module))
}

/// A default module list cut to what `tree` has (as a module or built in),
/// so that a kernel without one of them gets the clear error of
/// [`check_platform_drivers`] rather than "does not exist".
pub fn available_defaults(tree: &ModuleTree, list: &[Located<String>]) -> Vec<Located<String>> {
    list.iter()
        .filter(|m| tree.lookup(&m.value).is_some() || tree.is_builtin(&m.value))
        .cloned()
        .collect()
}

/// Refuses a guest that could not find its root disk on a platform (its
/// block driver neither built in nor in the initramfs), and warns when its
/// network could not come up (NIC driver neither built in nor loaded).
/// Returns the warnings.
pub fn check_platform_drivers(
    recipe: &Recipe,
    tree: &ModuleTree,
    stage1: &Resolution,
    stage2: &Resolution,
) -> Result<Vec<RecipeError>, RecipeError> {
    let missing = |drivers: &[&str], r: &[&Resolution]| -> Vec<String> {
        drivers
            .iter()
            .filter(|d| !tree.is_builtin(d) && !r.iter().any(|r| loads(r, d)))
            .map(|d| (*d).to_owned())
            .collect()
    };
    let at = |key_loc: Option<crate::recipe::Loc>| key_loc.unwrap_or_default();
    let mut warnings = Vec::new();
    for (platform, disk, nic) in PLATFORM_DRIVERS {
        let m = missing(disk, &[stage1]);
        if !m.is_empty() {
            let how = match recipe.modules.initramfs_key {
                Some(_) => format!("add {} to [modules] initramfs", m.join(", ")),
                None => "list the drivers this kernel needs in [modules] initramfs".to_owned(),
            };
            return Err(recipe.error_at(
                at(recipe.modules.initramfs_key),
                "modules.initramfs",
                format!(
                    "the guest could not find its root disk under {platform}: {} is neither built into kernel {} nor in the initramfs; {how}",
                    m.join(" and "),
                    tree.kernel_version()
                ),
            ));
        }
        if recipe.network.is_some() {
            let m = missing(nic, &[stage1, stage2]);
            if !m.is_empty() {
                warnings.push(recipe.error_at(
                    at(recipe.modules.load_key),
                    "modules.load",
                    format!(
                        "the guest's network will not come up under {platform}: {} is neither built into kernel {} nor loaded; add it to [modules] load",
                        m.join(" and "),
                        tree.kernel_version()
                    ),
                ));
            }
        }
    }
    Ok(warnings)
}
