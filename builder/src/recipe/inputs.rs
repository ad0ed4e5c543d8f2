//! `[inputs]`: the kernel and busybox, each a Debian package or a local path.

use std::path::{Component, Path, PathBuf};

use toml::Spanned;

use super::raw::{RawInput, RawInputs};
use super::{Diag, Input, Inputs, Located, RecipeError};

/// Default kernel package: Debian's current amd64 kernel.
pub const DEFAULT_KERNEL_PACKAGE: &str = "linux-image-amd64";
/// Default busybox package.
pub const DEFAULT_BUSYBOX_PACKAGE: &str = "busybox-static";

/// Checks `[inputs]`.
pub(super) fn inputs(d: &Diag, dir: &Path, raw: &RawInputs) -> Result<Inputs, RecipeError> {
    Ok(Inputs {
        kernel: input(
            d,
            dir,
            raw.kernel.as_ref(),
            "inputs.kernel",
            DEFAULT_KERNEL_PACKAGE,
            true,
        )?,
        busybox: input(
            d,
            dir,
            raw.busybox.as_ref(),
            "inputs.busybox",
            DEFAULT_BUSYBOX_PACKAGE,
            false,
        )?,
    })
}

fn input(
    d: &Diag,
    dir: &Path,
    v: Option<&Spanned<RawInput>>,
    key: &str,
    default: &str,
    is_kernel: bool,
) -> Result<Located<Input>, RecipeError> {
    let Some(v) = v else {
        return Ok(Located {
            value: Input::Package {
                name: default.to_owned(),
                version: None,
            },
            loc: Default::default(),
        });
    };
    let span = v.span();
    let loc = d.loc(&span);
    let err = |m: String| d.at(&span, key, m);
    let package = |spec: &str, version: Option<String>| -> Result<Input, RecipeError> {
        let (name, ver) = match spec.split_once('=') {
            Some((n, ver)) => (n.trim(), Some(ver.trim().to_owned())),
            None => (spec.trim(), version),
        };
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
        if !ok {
            return Err(err(format!("`{spec}` is not a Debian package name")));
        }
        Ok(Input::Package {
            name: name.to_owned(),
            version: ver.filter(|v| !v.is_empty()),
        })
    };
    let value = match v.get_ref() {
        RawInput::Package(spec) => package(spec, None)?,
        RawInput::Table(t) => match (&t.package, &t.path) {
            (Some(p), None) => {
                if t.modules.is_some() {
                    return Err(err("`modules` goes with `path`, not with `package`".into()));
                }
                package(p, t.version.clone())?
            }
            (None, Some(p)) => {
                if t.version.is_some() {
                    return Err(err("`version` goes with `package`, not with `path`".into()));
                }
                if t.modules.is_some() && !is_kernel {
                    return Err(err("`modules` is only for the kernel input".into()));
                }
                let path = resolve(dir, p);
                if !path.exists() {
                    return Err(err(format!("`{}` does not exist", path.display())));
                }
                let modules = t.modules.as_ref().map(|m| resolve(dir, m));
                if let Some(m) = &modules {
                    if !m.is_dir() {
                        return Err(err(format!(
                            "module tree `{}` is not a directory",
                            m.display()
                        )));
                    }
                } else if is_kernel && path.is_file() {
                    return Err(err(format!(
                        "kernel file `{}` needs `modules = \"…/lib/modules/<version>\"` (or give the unpacked package directory as `path`)",
                        path.display()
                    )));
                }
                Input::Path { path, modules }
            }
            _ => return Err(err("give exactly one of `package` or `path`".into())),
        },
    };
    Ok(Located { value, loc })
}

/// Resolves a recipe path against the recipe's directory, lexically.
pub(super) fn resolve(dir: &Path, p: &str) -> PathBuf {
    let joined = dir.join(p);
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}
