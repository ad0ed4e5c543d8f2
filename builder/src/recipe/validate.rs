//! Checks a [`RawRecipe`] and turns it into a [`Recipe`]: one function per
//! recipe section. The values' own rules (names, addresses, MACs, host
//! names) are the contract's (`guest_contract`); what is checked here is
//! where they stand in the recipe, so every error names its place.

use std::path::{Path, PathBuf};

use guest_contract::init_config::{Restart, Service};
use guest_contract::manifest::{check_guest_name, check_memory_mib};
use guest_contract::mounts::hidden_by;
use guest_contract::status::DEFAULT_PORT;
use guest_contract::words::split_words;
use guest_contract::{GuestType, Hostname, Ipv4Cidr, ValueError};
use toml::Spanned;

use super::files::extra_file;
use super::inputs::inputs;
use super::raw::{RawGuest, RawInit, RawModules, RawNetwork, RawRecipe, RawRootfs, RawXen};
use super::storage::storage;
use super::units::parse_bytes;
use super::{
    DEFAULT_INITRAMFS_MODULES, DEFAULT_NETWORK_MODULES, Diag, Guest, Init, Loc, Located, Modules,
    Network, Recipe, RecipeError, Rootfs, Size, Xen, default_mac,
};

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
    let guest = guest(&d, raw.guest.get_ref())?;
    let inputs = inputs(&d, &dir, &raw.inputs)?;
    let mut warnings = Vec::new();
    let rootfs = rootfs(&d, &dir, &raw.rootfs, &guest.name, &mut warnings)?;
    let modules = modules(&d, &raw.modules, raw.network.is_some())?;
    let network = match &raw.network {
        None => None,
        Some(n) => Some(network(&d, n.get_ref(), &guest.name)?),
    };
    let xen = xen(&d, &raw.xen)?;
    pvh_vcpus(&d, raw.guest.get_ref(), xen.guest_type)?;
    let init = init(&d, &raw.init)?;
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
        warnings,
    })
}

/// `[guest]`
fn guest(d: &Diag, g: &RawGuest) -> Result<Guest, RecipeError> {
    let name = g.name.get_ref().clone();
    check_guest_name(&name).map_err(|e| d.at(&g.name.span(), "guest.name", e.0))?;
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
                    format!(
                        "{} vCPUs: imgbuild allows 1 to 512 (512 is the most vCPUs Xen supports in a PV guest)",
                        v.get_ref()
                    ),
                )
            })?,
    };
    let hostname = match &g.hostname {
        Some(h) => h
            .get_ref()
            .parse::<Hostname>()
            .map_err(|e| d.at(&h.span(), "guest.hostname", e.0))?,
        None => name.parse::<Hostname>().map_err(|e: ValueError| {
            d.at(
                &g.name.span(),
                "guest.name",
                format!(
                    "{}; the host name defaults to the guest name: set guest.hostname",
                    e.0
                ),
            )
        })?,
    };
    Ok(Guest {
        name,
        memory_mib,
        vcpus,
        hostname,
    })
}

/// The most vCPUs of a PVH guest: Xen's `HVM_MAX_VCPUS`, the limit of its
/// virtual local APIC IDs (a PV guest has up to 512).
const PVH_MAX_VCPUS: i64 = 128;

/// `[guest] vcpus` within what a guest of type `ty` can have.
fn pvh_vcpus(d: &Diag, g: &RawGuest, ty: GuestType) -> Result<(), RecipeError> {
    match &g.vcpus {
        Some(v) if ty == GuestType::Pvh && *v.get_ref() > PVH_MAX_VCPUS => Err(d.at(
            &v.span(),
            "guest.vcpus",
            format!(
                "{} vCPUs: a PVH guest has at most {PVH_MAX_VCPUS} (Xen's HVM_MAX_VCPUS); a PV guest up to 512",
                v.get_ref()
            ),
        )),
        _ => Ok(()),
    }
}

/// `[rootfs]`; files the init hides at run time are `warnings`.
fn rootfs(
    d: &Diag,
    dir: &Path,
    r: &RawRootfs,
    name: &str,
    warnings: &mut Vec<RecipeError>,
) -> Result<Rootfs, RecipeError> {
    let size = match &r.size {
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
                loc: d.loc(&s.span()),
            }
        }
    };
    let label = match &r.label {
        None => default_label(name),
        Some(l) if l.get_ref().len() > 16 => {
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
        Some(l) => l.get_ref().clone(),
    };
    let mut files = Vec::new();
    for (i, f) in r.files.iter().enumerate() {
        let value = extra_file(d, dir, f, i)?;
        if let Some(m) = hidden_by(&value.dest) {
            warnings.push(d.at(
                &f.get_ref().dest.span(),
                &format!("rootfs.files[{i}].dest"),
                format!(
                    "`{}` is in the image but hidden while the guest runs: the init mounts {} on {}",
                    value.dest, m.fstype, m.target
                ),
            ));
        }
        files.push(Located {
            value,
            loc: d.loc(&f.span()),
        });
    }
    Ok(Rootfs {
        base: r.base.as_ref().map(|b| base(d, dir, b)).transpose()?,
        size,
        label,
        writable: r.writable.as_ref().is_some_and(|w| *w.get_ref()),
        files,
    })
}

/// `[rootfs] base`: a tar archive that exists and starts like one (its
/// members are read at build time, whose errors are at this key too).
fn base(d: &Diag, dir: &Path, b: &Spanned<String>) -> Result<Located<PathBuf>, RecipeError> {
    let p = super::inputs::resolve(dir, b.get_ref());
    let err = |m: String| d.at(&b.span(), "rootfs.base", m);
    if p.is_dir() {
        return Err(err(format!(
            "`{}` is a directory; the base is a tar archive (copy a directory with [[rootfs.files]] source)",
            p.display()
        )));
    }
    if !p.exists() {
        return Err(err(format!(
            "`{}` does not exist (paths are relative to the recipe file)",
            p.display()
        )));
    }
    crate::tarball::open(&p).map_err(|e| err(e.to_string()))?;
    Ok(Located {
        value: p,
        loc: d.loc(&b.span()),
    })
}

/// `[modules]`; a list not given is its default (the block drivers; the
/// NIC drivers if the guest has a network).
fn modules(d: &Diag, m: &RawModules, has_network: bool) -> Result<Modules, RecipeError> {
    let names = |v: &[Spanned<String>], key: &str| -> Result<Vec<Located<String>>, RecipeError> {
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
                        loc: d.loc(&m.span()),
                    })
                }
            })
            .collect()
    };
    let defaults = |list: &[&str]| {
        list.iter()
            .map(|n| Located {
                value: (*n).to_owned(),
                loc: Loc::default(),
            })
            .collect::<Vec<_>>()
    };
    let (load, load_key) = match &m.load {
        Some(l) => (names(l.get_ref(), "modules.load")?, Some(d.loc(&l.span()))),
        None if has_network => (defaults(&DEFAULT_NETWORK_MODULES), None),
        None => (Vec::new(), None),
    };
    let (initramfs, initramfs_key) = match &m.initramfs {
        Some(l) => (
            names(l.get_ref(), "modules.initramfs")?,
            Some(d.loc(&l.span())),
        ),
        None => (defaults(&DEFAULT_INITRAMFS_MODULES), None),
    };
    Ok(Modules {
        load,
        load_key,
        initramfs,
        initramfs_key,
    })
}

/// `[network]`
fn network(d: &Diag, n: &RawNetwork, name: &str) -> Result<Network, RecipeError> {
    let address: Ipv4Cidr = n
        .address
        .get_ref()
        .parse()
        .map_err(|e: ValueError| d.at(&n.address.span(), "network.address", e.0))?;
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
            address
                .check_gateway(ip)
                .map_err(|e| d.at(&g.span(), "network.gateway", e.0))?;
            Some(ip)
        }
    };
    let mac = match &n.mac {
        None => default_mac(name),
        Some(m) => m
            .get_ref()
            .parse()
            .map_err(|e: ValueError| d.at(&m.span(), "network.mac", e.0))?,
    };
    Ok(Network {
        address,
        gateway,
        mac,
    })
}

/// `[xen]`
fn xen(d: &Diag, x: &RawXen) -> Result<Xen, RecipeError> {
    let guest_type = match &x.guest_type {
        None => GuestType::Pv,
        Some(t) => GuestType::written(t.get_ref()).map_err(|e| d.at(&t.span(), "xen.type", e.0))?,
    };
    let action = |v: &Option<Spanned<String>>, key: &str, default: &str| match v {
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
    };
    let bridge = match &x.bridge {
        None => "xenbr0".to_owned(),
        Some(b) => {
            // Stricter than a Linux interface name: it stands inside an
            // xl vif spec, where ',' and quotes would end it.
            let v = b.get_ref();
            let ok = guest_contract::net::check_ifname(v).is_ok()
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !ok {
                return Err(d.at(
                    &b.span(),
                    "xen.bridge",
                    format!("`{v}` is not a Linux interface name (1-15 of A-Z a-z 0-9 - _ .)"),
                ));
            }
            v.clone()
        }
    };
    let storage = storage(d, x)?;
    Ok(Xen {
        guest_type,
        bridge,
        storage,
        on_poweroff: action(&x.on_poweroff, "xen.on_poweroff", "destroy")?,
        on_reboot: action(&x.on_reboot, "xen.on_reboot", "restart")?,
        on_crash: action(&x.on_crash, "xen.on_crash", "destroy")?,
    })
}

/// `[init]`
fn init(d: &Diag, i: &RawInit) -> Result<Init, RecipeError> {
    let shell = match &i.shell {
        None => Located {
            value: "/bin/sh".to_owned(),
            loc: Loc::default(),
        },
        Some(s) if s.get_ref().trim().is_empty() => {
            return Err(d.at(&s.span(), "init.shell", "the shell command is empty"));
        }
        Some(s) => {
            let words = split_words(s.get_ref()).map_err(|why| {
                d.at(
                    &s.span(),
                    "init.shell",
                    format!(
                        "`{}`: {why} (words, with \"…\" around one that has spaces)",
                        s.get_ref()
                    ),
                )
            })?;
            if !words.first().is_some_and(|p| p.starts_with('/')) {
                return Err(d.at(
                    &s.span(),
                    "init.shell",
                    format!(
                        "`{}`: the program must be an absolute path, e.g. /bin/sh",
                        s.get_ref()
                    ),
                ));
            }
            Located {
                value: s.get_ref().clone(),
                loc: d.loc(&s.span()),
            }
        }
    };
    let root_wait_secs = match &i.root_wait {
        None => 30,
        Some(w) => u32::try_from(*w.get_ref())
            .ok()
            .filter(|n| (1..=3600).contains(n))
            .ok_or_else(|| d.at(&w.span(), "init.root_wait", "must be 1 to 3600 seconds"))?,
    };
    let mut services = Vec::new();
    for (n, spanned) in i.services.iter().enumerate() {
        let s = spanned.get_ref();
        let key = format!("init.services[{n}]");
        if s.command.get_ref().first().is_none_or(String::is_empty) {
            return Err(d.at(
                &s.command.span(),
                &format!("{key}.command"),
                "the command is empty",
            ));
        }
        if !s.command.get_ref()[0].starts_with('/') {
            return Err(d.at(
                &s.command.span(),
                &format!("{key}.command"),
                format!(
                    "`{}`: the program must be an absolute path in the image, e.g. /usr/sbin/httpd",
                    s.command.get_ref()[0]
                ),
            ));
        }
        let restart = match &s.restart {
            None => Restart::Respawn,
            Some(r) => Restart::from_word(r.get_ref()).ok_or_else(|| {
                d.at(
                    &r.span(),
                    &format!("{key}.restart"),
                    format!("`{}`: expected \"once\" or \"respawn\"", r.get_ref()),
                )
            })?,
        };
        services.push(Located {
            value: Service {
                restart,
                argv: s.command.get_ref().clone(),
            },
            loc: d.loc(&s.command.span()),
        });
    }
    let (status_enabled, status_port) = match &i.status {
        None => (true, DEFAULT_PORT),
        Some(st) => {
            let port = match &st.port {
                None => DEFAULT_PORT,
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
    Ok(Init {
        shell,
        root_wait_secs,
        services,
        status_enabled,
        status_port,
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

/// Memory must carry a unit and be a whole number of MiB.
fn parse_memory(v: &toml::Value) -> Result<u32, String> {
    let s = match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => {
            return Err(format!(
                "{i} has no unit: write memory as a string with a unit, e.g. \"{i}M\""
            ));
        }
        other => {
            let not = match other {
                toml::Value::Float(f) => format!("the number {f}"),
                toml::Value::Boolean(b) => format!("`{b}`"),
                toml::Value::Array(_) => "a list".to_owned(),
                toml::Value::Table(_) => "a table".to_owned(),
                _ => format!("a {}", other.type_str()),
            };
            return Err(format!(
                "guest.memory is a size with a unit, not {not}: write memory = \"512M\""
            ));
        }
    };
    let bytes = parse_bytes(&s, false)?;
    if bytes % (1 << 20) != 0 {
        return Err(format!("`{s}` is not a whole number of MiB"));
    }
    check_memory_mib(bytes >> 20).map_err(|e| format!("`{s}`: {}", e.0))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn parse(text: &str) -> Result<Recipe, RecipeError> {
        Recipe::parse(Path::new("/r/g.toml"), text)
    }

    fn err(text: &str) -> RecipeError {
        parse(text).unwrap_err()
    }

    #[test]
    fn guest_defaults_and_values() {
        let r = parse("[guest]\nname = \"g\"\n").unwrap();
        assert_eq!(r.guest.memory_mib, 512);
        assert_eq!(r.guest.vcpus, 1);
        assert_eq!(r.guest.hostname.as_str(), "g");
        let r = parse("[guest]\nname = \"g\"\nmemory = \"1G\"\nvcpus = 4\nhostname = \"web_01\"\n")
            .unwrap();
        assert_eq!((r.guest.memory_mib, r.guest.vcpus), (1024, 4));
        assert_eq!(r.guest.hostname.as_str(), "web_01");
        let e = err("[guest]\nname = \"g\"\nmemory = \"16M\"\n");
        assert_eq!(e.key, "guest.memory");
        assert!(e.message.contains("too little memory"), "{e}");
    }

    #[test]
    fn hostname_rule_is_the_contracts_both_ways() {
        // A guest name that is a valid host name is the default host name,
        // with or without an underscore.
        let r = parse("[guest]\nname = \"my_guest.v2\"\n").unwrap();
        assert_eq!(r.guest.hostname.as_str(), "my_guest.v2");
        // One that is not says so at guest.name, and how to fix it.
        let e = err("[guest]\nname = \"a..b\"\n");
        assert_eq!((e.key.as_str(), e.loc.line), ("guest.name", 2));
        assert!(e.message.contains("set guest.hostname"), "{e}");
        let e = err("[guest]\nname = \"g\"\nhostname = \"-web\"\n");
        assert_eq!((e.key.as_str(), e.loc.line), ("guest.hostname", 3));
    }

    #[test]
    fn rootfs_defaults_and_label() {
        let r = parse("[guest]\nname = \"a-very-long-guest-name\"\n").unwrap();
        assert_eq!(r.rootfs.size.value, Size::Auto);
        assert_eq!(r.rootfs.label, "a-very-long-gues");
        let r =
            parse("[guest]\nname = \"g\"\n[rootfs]\nsize = \"2G\"\nlabel = \"root\"\n").unwrap();
        assert_eq!(r.rootfs.size.value, Size::Fixed(2 << 30));
        assert_eq!(r.rootfs.size.loc.line, 4);
        assert_eq!(r.rootfs.label, "root");
        assert_eq!(
            err("[guest]\nname = \"g\"\n[rootfs]\nlabel = \"seventeen-bytes-x\"\n").key,
            "rootfs.label"
        );
    }

    #[test]
    fn modules_are_names() {
        let r = parse("[guest]\nname = \"g\"\n[modules]\nload = [\" virtio_net \"]\n").unwrap();
        assert_eq!(r.modules.load[0].value, "virtio_net");
        assert_eq!(r.modules.load[0].loc.line, 4);
        let e = err("[guest]\nname = \"g\"\n[modules]\ninitramfs = [\"a/b\"]\n");
        assert_eq!(e.key, "modules.initramfs");
    }

    #[test]
    fn network_values_and_default_mac() {
        let r = parse(
            "[guest]\nname = \"g\"\n[network]\naddress = \"10.1.2.3/16\"\ngateway = \"10.1.0.1\"\n",
        )
        .unwrap();
        let n = r.network.unwrap();
        assert_eq!(n.address.to_string(), "10.1.2.3/16");
        assert_eq!(n.gateway, Some(Ipv4Addr::new(10, 1, 0, 1)));
        assert_eq!(n.mac, default_mac("g"));
        let e = err(
            "[guest]\nname = \"g\"\n[network]\naddress = \"10.1.2.3/16\"\ngateway = \"10.1.2.3\"\n",
        );
        assert_eq!((e.key.as_str(), e.loc.line), ("network.gateway", 5));
        assert!(e.message.contains("own address"), "{e}");
        let e = err(
            "[guest]\nname = \"g\"\n[network]\naddress = \"10.1.2.3/16\"\nmac = \"03:00:00:00:00:01\"\n",
        );
        assert_eq!(e.key, "network.mac");
    }

    #[test]
    fn xen_defaults_and_refusals() {
        let r = parse("[guest]\nname = \"g\"\n").unwrap();
        assert_eq!(r.xen.guest_type, GuestType::Pv);
        assert_eq!(r.xen.bridge, "xenbr0");
        assert_eq!(r.xen.storage, None);
        assert_eq!(
            (
                r.xen.on_poweroff.as_str(),
                r.xen.on_reboot.as_str(),
                r.xen.on_crash.as_str()
            ),
            ("destroy", "restart", "destroy")
        );
        for (body, key) in [
            ("bridge = \"br,0\"", "xen.bridge"),
            ("bridge = \"sixteen-chars-xx\"", "xen.bridge"),
            ("disk_target = \"relative.img\"", "xen.disk_target"),
            ("on_crash = \"explode\"", "xen.on_crash"),
            ("type = \"hvm\"", "xen.type"),
            ("type = \"PVH\"", "xen.type"),
        ] {
            assert_eq!(
                err(&format!("[guest]\nname = \"g\"\n[xen]\n{body}\n")).key,
                key,
                "{body}"
            );
        }
    }

    #[test]
    fn xen_type_and_its_vcpus() {
        let pvh = |vcpus: u32| {
            parse(&format!(
                "[guest]\nname = \"g\"\nvcpus = {vcpus}\n[xen]\ntype = \"pvh\"\n"
            ))
        };
        let r = pvh(128).unwrap();
        assert_eq!(r.xen.guest_type, GuestType::Pvh);
        let e = pvh(129).unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.loc.line, e.loc.column),
            ("guest.vcpus", 3, 9)
        );
        assert!(e.message.contains("a PVH guest has at most 128"), "{e}");
        let r = parse("[guest]\nname = \"g\"\nvcpus = 512\n[xen]\ntype = \"pv\"\n").unwrap();
        assert_eq!(r.xen.guest_type, GuestType::Pv);
    }

    #[test]
    fn init_defaults_and_services() {
        let r = parse("[guest]\nname = \"g\"\n").unwrap();
        assert_eq!(r.init.shell.value, "/bin/sh");
        assert_eq!(r.init.root_wait_secs, 30);
        assert!(r.init.status_enabled);
        assert_eq!(r.init.status_port, DEFAULT_PORT);
        let r = parse(
            "[guest]\nname = \"g\"\n[[init.services]]\ncommand = [\"/bin/x\", \"-a\"]\n[[init.services]]\ncommand = [\"/bin/y\"]\nrestart = \"once\"\n",
        )
        .unwrap();
        let services: Vec<Service> = r.init.services.iter().map(|s| s.value.clone()).collect();
        assert_eq!(
            services,
            [
                Service {
                    restart: Restart::Respawn,
                    argv: vec!["/bin/x".into(), "-a".into()]
                },
                Service {
                    restart: Restart::Once,
                    argv: vec!["/bin/y".into()]
                }
            ]
        );
        let e = err("[guest]\nname = \"g\"\n[[init.services]]\ncommand = []\n");
        assert_eq!(e.key, "init.services[0].command");
        let e = err(
            "[guest]\nname = \"g\"\n[[init.services]]\ncommand = [\"/x\"]\nrestart = \"often\"\n",
        );
        assert_eq!(e.key, "init.services[0].restart");
        let e = err("[guest]\nname = \"g\"\n[init]\nroot_wait = 0\n");
        assert_eq!(e.key, "init.root_wait");
    }
}
