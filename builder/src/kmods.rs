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
