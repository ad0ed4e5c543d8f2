//! Checks a [`RawRecipe`] and turns it into a [`Recipe`].

use std::path::{Component, Path, PathBuf};

use toml::Spanned;

use super::files::{ExtraFile, FileKind, normalise_dest, parse_mode, parse_owner};
use super::raw::{RawFile, RawInput, RawRecipe};
use super::units::parse_bytes;
use super::{
    Cidr, Diag, Guest, Init, Input, Inputs, Located, Mac, Modules, Network, Recipe, RecipeError,
    Restart, Rootfs, Service, Size, Xen,
};

/// Default kernel package: Debian's current amd64 kernel.
pub const DEFAULT_KERNEL_PACKAGE: &str = "linux-image-amd64";
/// Default busybox package.
pub const DEFAULT_BUSYBOX_PACKAGE: &str = "busybox-static";
/// Default status service port.
pub const DEFAULT_STATUS_PORT: u16 = 5115;
const XL_ACTIONS: [&str; 7] = [
    "destroy",
    "restart",
    "rename-restart",
    "preserve",
    "coredump-destroy",
    "coredump-restart",
    "soft-reset",
];

pub(super) fn validate(file: &Path, text: &str) -> Result<Recipe, RecipeError> {
    let d = Diag::new(file, text);
    let raw: RawRecipe = toml::from_str(text).map_err(|e| d.from_toml(&e))?;
    let dir = recipe_dir(file);
    let at = |s: &std::ops::Range<usize>| d.loc(s);

    // [guest]
    let g = raw.guest.into_inner();
    let name = g.name.get_ref().clone();
    check_name(&name).map_err(|m| d.at(&g.name.span(), "guest.name", m))?;
    let memory_mib = match &g.memory {
        None => 512,
        Some(m) => parse_memory(m.get_ref()).map_err(|msg| d.at(&m.span(), "guest.memory", msg))?,
    };
    let vcpus = match &g.vcpus {
        None => 1,
        Some(v) => u32::try_from(*v.get_ref())
            .ok()
            .filter(|n| (1..=512).contains(n))
            .ok_or_else(|| {
                d.at(
                    &v.span(),
                    "guest.vcpus",
                    format!("{} vCPUs: must be 1 to 512", v.get_ref()),
                )
            })?,
    };
    let hostname = match &g.hostname {
        None => name.clone(),
        Some(h) => {
            check_hostname(h.get_ref()).map_err(|m| d.at(&h.span(), "guest.hostname", m))?;
            h.get_ref().clone()
        }
    };
    let guest = Guest {
        name: name.clone(),
        memory_mib,
        vcpus,
        hostname,
    };

    // [inputs]
    let kernel = input(
        &d,
        &dir,
        raw.inputs.kernel.as_ref(),
        "inputs.kernel",
        DEFAULT_KERNEL_PACKAGE,
        true,
    )?;
    let busybox = input(
        &d,
        &dir,
        raw.inputs.busybox.as_ref(),
        "inputs.busybox",
        DEFAULT_BUSYBOX_PACKAGE,
        false,
    )?;
    let inputs = Inputs { kernel, busybox };

    // [rootfs]
    let size = match &raw.rootfs.size {
        None => Located {
            value: Size::Auto,
            loc: Default::default(),
        },
        Some(s) => {
            let v = if s.get_ref().trim().eq_ignore_ascii_case("auto") {
                Size::Auto
            } else {
                Size::Fixed(parse_bytes(s.get_ref(), true).map_err(|m| {
                    d.at(&s.span(), "rootfs.size", format!("{m}; or write \"auto\""))
                })?)
            };
            Located {
                value: v,
                loc: at(&s.span()),
            }
        }
    };
    let label = match &raw.rootfs.label {
        None => default_label(&name),
        Some(l) => {
            if l.get_ref().len() > 16 {
                return Err(d.at(
                    &l.span(),
                    "rootfs.label",
                    format!(
                        "`{}` is {} bytes; an ext4 label holds at most 16",
                        l.get_ref(),
                        l.get_ref().len()
                    ),
                ));
            }
            l.get_ref().clone()
        }
    };
    let mut files = Vec::new();
    for (i, f) in raw.rootfs.files.iter().enumerate() {
        files.push(Located {
            value: extra_file(&d, &dir, f, i)?,
            loc: at(&f.span()),
        });
    }
    let rootfs = Rootfs { size, label, files };

    // [modules]
    let located = |v: &[Spanned<String>], key: &str| -> Result<Vec<Located<String>>, RecipeError> {
        v.iter()
            .map(|m| {
                let n = m.get_ref().trim();
                if n.is_empty() || n.contains('/') || n.contains(char::is_whitespace) {
                    Err(d.at(
                        &m.span(),
                        key,
                        format!("`{}` is not a module name", m.get_ref()),
                    ))
                } else {
                    Ok(Located {
                        value: n.to_owned(),
                        loc: at(&m.span()),
                    })
                }
            })
            .collect()
    };
    let modules = Modules {
        load: located(&raw.modules.load, "modules.load")?,
        initramfs: located(&raw.modules.initramfs, "modules.initramfs")?,
    };

    // [network]
    let network = match &raw.network {
        None => None,
        Some(n) => {
            let n = n.get_ref();
            let address: Cidr = n
                .address
                .get_ref()
                .parse()
                .map_err(|m: String| d.at(&n.address.span(), "network.address", m))?;
            let gateway = match &n.gateway {
                None => None,
                Some(g) => {
                    let ip: std::net::Ipv4Addr = g.get_ref().parse().map_err(|_| {
                        d.at(
                            &g.span(),
                            "network.gateway",
                            format!("`{}` is not an IPv4 address", g.get_ref()),
                        )
                    })?;
                    if !address.contains(ip) {
                        return Err(d.at(
                            &g.span(),
                            "network.gateway",
                            format!("gateway {ip} is outside {address}"),
                        ));
                    }
                    if ip == address.addr {
                        return Err(d.at(
                            &g.span(),
                            "network.gateway",
                            format!("gateway {ip} is the guest's own address"),
                        ));
                    }
                    Some(ip)
                }
            };
            let mac = match &n.mac {
                None => Mac::for_guest(&name),
                Some(m) => m
                    .get_ref()
                    .parse()
                    .map_err(|e: String| d.at(&m.span(), "network.mac", e))?,
            };
            Some(Network {
                address,
                gateway,
                mac,
            })
        }
    };

    // [xen]
    let x = &raw.xen;
    let action =
        |v: &Option<Spanned<String>>, key: &str, default: &str| -> Result<String, RecipeError> {
            match v {
                None => Ok(default.to_owned()),
                Some(a) if XL_ACTIONS.contains(&a.get_ref().as_str()) => Ok(a.get_ref().clone()),
                Some(a) => Err(d.at(
                    &a.span(),
                    key,
                    format!(
                        "`{}` is not an xl action; one of: {}",
                        a.get_ref(),
                        XL_ACTIONS.join(", ")
                    ),
                )),
            }
        };
    let bridge = match &x.bridge {
        None => "xenbr0".to_owned(),
        Some(b) => {
            let v = b.get_ref();
            if v.is_empty()
                || v.len() > 15
                || !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(d.at(
                    &b.span(),
                    "xen.bridge",
                    format!("`{v}` is not a Linux interface name (1-15 of A-Z a-z 0-9 - _ .)"),
                ));
            }
            v.clone()
        }
    };
    let disk_target = match &x.disk_target {
        None => None,
        Some(t) => {
            let v = t.get_ref();
            if !v.starts_with('/') || v.contains([',', '\'', '"']) {
                return Err(d.at(
                    &t.span(),
                    "xen.disk_target",
                    format!("`{v}` must be an absolute path without commas or quotes"),
                ));
            }
            Some(v.clone())
        }
    };
    let xen = Xen {
        bridge,
        disk_target,
        on_poweroff: action(&x.on_poweroff, "xen.on_poweroff", "destroy")?,
        on_reboot: action(&x.on_reboot, "xen.on_reboot", "restart")?,
        on_crash: action(&x.on_crash, "xen.on_crash", "destroy")?,
    };

    // [init]
    let i = &raw.init;
    let shell = match &i.shell {
        None => "/bin/sh".to_owned(),
        Some(s) if s.get_ref().trim().is_empty() => {
            return Err(d.at(&s.span(), "init.shell", "the shell command is empty"));
        }
        Some(s) => s.get_ref().clone(),
    };
    let root_wait_secs = match &i.root_wait {
        None => 30,
        Some(w) => u32::try_from(*w.get_ref())
            .ok()
            .filter(|n| (1..=3600).contains(n))
            .ok_or_else(|| d.at(&w.span(), "init.root_wait", "must be 1 to 3600 seconds"))?,
    };
    let mut services = Vec::new();
    for (n, s) in i.services.iter().enumerate() {
        let s = s.get_ref();
        let key = format!("init.services[{n}]");
        if s.command.get_ref().is_empty() || s.command.get_ref()[0].is_empty() {
            return Err(d.at(
                &s.command.span(),
                &format!("{key}.command"),
                "the command is empty",
            ));
        }
        let restart = match &s.restart {
            None => Restart::Respawn,
            Some(r) => match r.get_ref().as_str() {
                "once" => Restart::Once,
                "respawn" => Restart::Respawn,
                other => {
                    return Err(d.at(
                        &r.span(),
                        &format!("{key}.restart"),
                        format!("`{other}`: expected \"once\" or \"respawn\""),
                    ));
                }
            },
        };
        services.push(Service {
            command: s.command.get_ref().clone(),
            restart,
        });
    }
    let (status_enabled, status_port) = match &i.status {
        None => (true, DEFAULT_STATUS_PORT),
        Some(st) => {
            let port = match &st.port {
                None => DEFAULT_STATUS_PORT,
                Some(p) => u16::try_from(*p.get_ref())
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| {
                        d.at(
                            &p.span(),
                            "init.status.port",
                            format!("{} is not a TCP/UDP port (1-65535)", p.get_ref()),
                        )
                    })?,
            };
            (st.enabled.unwrap_or(true), port)
        }
    };
    let init = Init {
        shell,
        root_wait_secs,
        services,
        status_enabled,
        status_port,
    };

    Ok(Recipe {
        file: file.to_path_buf(),
        dir,
        diag: d,
        guest,
        inputs,
        rootfs,
        modules,
        network,
        xen,
        init,
    })
}

/// The directory of the recipe file, absolute.
fn recipe_dir(file: &Path) -> PathBuf {
    let parent = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf())
}

/// `<name>-root`, cut to ext4's 16-byte label limit.
fn default_label(name: &str) -> String {
    let mut s = format!("{name}-root");
    while s.len() > 16 {
        s.pop();
    }
    s
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a guest name: use 1-64 of A-Z a-z 0-9 - _ . (not starting with . or -)"
        ))
    }
}

fn check_hostname(h: &str) -> Result<(), String> {
    let ok = !h.is_empty()
        && h.len() <= 64
        && h.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("`{h}` is not a valid hostname"))
    }
}

/// Memory must carry a unit and be a whole number of MiB.
fn parse_memory(v: &toml::Value) -> Result<u64, String> {
    let s = match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => {
            return Err(format!(
                "{i} has no unit: write memory as a string with a unit, e.g. \"{i}M\""
            ));
        }
        other => {
            return Err(format!(
                "expected a size like \"512M\", found a {}",
                other.type_str()
            ));
        }
    };
    let bytes = parse_bytes(&s, false)?;
    if bytes % (1 << 20) != 0 {
        return Err(format!("`{s}` is not a whole number of MiB"));
    }
    let mib = bytes >> 20;
    if mib < 32 {
        return Err(format!(
            "`{s}` is too little memory for a Linux guest (at least 32M)"
        ));
    }
    Ok(mib)
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
fn resolve(dir: &Path, p: &str) -> PathBuf {
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

fn extra_file(
    d: &Diag,
    dir: &Path,
    f: &Spanned<RawFile>,
    i: usize,
) -> Result<ExtraFile, RecipeError> {
    let key = |k: &str| format!("rootfs.files[{i}].{k}");
    let f = f.get_ref();
    let dest =
        normalise_dest(f.dest.get_ref()).map_err(|m| d.at(&f.dest.span(), &key("dest"), m))?;
    let mut kinds: Vec<(std::ops::Range<usize>, &str, FileKind)> = Vec::new();
    if let Some(s) = &f.source {
        let p = resolve(dir, s.get_ref());
        if !p.exists() {
            return Err(d.at(
                &s.span(),
                &key("source"),
                format!(
                    "`{}` does not exist (paths are relative to the recipe file)",
                    p.display()
                ),
            ));
        }
        kinds.push((s.span(), "source", FileKind::Copy(p)));
    }
    if let Some(t) = &f.text {
        kinds.push((t.span(), "text", FileKind::Text(t.get_ref().clone())));
    }
    if let Some(b) = &f.directory {
        if *b.get_ref() {
            kinds.push((b.span(), "directory", FileKind::Directory));
        }
    }
    if let Some(s) = &f.symlink {
        if s.get_ref().is_empty() {
            return Err(d.at(&s.span(), &key("symlink"), "the link target is empty"));
        }
        kinds.push((s.span(), "symlink", FileKind::Symlink(s.get_ref().clone())));
    }
    if let Some(c) = &f.char_device {
        let v = c.get_ref();
        kinds.push((
            c.span(),
            "char_device",
            FileKind::CharDevice {
                major: v.major,
                minor: v.minor,
            },
        ));
    }
    if let Some(c) = &f.block_device {
        let v = c.get_ref();
        kinds.push((
            c.span(),
            "block_device",
            FileKind::BlockDevice {
                major: v.major,
                minor: v.minor,
            },
        ));
    }
    if let Some(b) = &f.fifo {
        if *b.get_ref() {
            kinds.push((b.span(), "fifo", FileKind::Fifo));
        }
    }
    let kind = match kinds.len() {
        1 => kinds.remove(0).2,
        0 => {
            return Err(d.at(&f.dest.span(), &key("dest"), format!(
                "`{dest}` needs one of: source, text, directory, symlink, char_device, block_device, fifo"
            )));
        }
        _ => {
            let names: Vec<&str> = kinds.iter().map(|k| k.1).collect();
            return Err(d.at(
                &kinds[1].0,
                &key(kinds[1].1),
                format!(
                    "`{dest}` has several kinds ({}); give exactly one",
                    names.join(", ")
                ),
            ));
        }
    };
    if dest == "/" && kind != FileKind::Directory {
        return Err(d.at(
            &f.dest.span(),
            &key("dest"),
            "only a directory can be placed at /",
        ));
    }
    let mode = match &f.mode {
        None => kind.default_mode(),
        Some(m) => parse_mode(m.get_ref()).map_err(|e| d.at(&m.span(), &key("mode"), e))?,
    };
    let (uid, gid) = match &f.owner {
        None => (0, 0),
        Some(o) => parse_owner(o.get_ref()).map_err(|e| d.at(&o.span(), &key("owner"), e))?,
    };
    Ok(ExtraFile {
        dest,
        kind,
        mode,
        uid,
        gid,
    })
}
