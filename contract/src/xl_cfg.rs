//! The Xen domain configuration, xl.cfg(5): what the builder writes
//! ([`XlConfig::render`]) and what the runner needs back from it — the
//! domain name and the files a Xen host must see ([`XlFiles::parse`], which
//! also reads a configuration a person edited).
//!
//! A PV and a PVH guest are written alike: direct kernel boot (`kernel`,
//! `ramdisk`, `cmdline`), the same disk, vif and `on_*` lines; only `type`
//! differs ([`GuestType`]).

use std::fmt::Write as _;

use crate::guest_type::GuestType;
use crate::net::{Mac, ValueError};

/// A domain as imgbuild writes it: PV or PVH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XlConfig {
    /// `type =`: [`GuestType::Pv`] or [`GuestType::Pvh`] (the recipe
    /// allows no other, [`GuestType::WRITTEN`]).
    pub guest_type: GuestType,
    /// Domain name.
    pub name: String,
    /// `kernel =`, as the Xen host sees it.
    pub kernel: String,
    /// `ramdisk =`, as the Xen host sees it.
    pub ramdisk: String,
    /// `cmdline =`.
    pub cmdline: String,
    /// `memory =`, MiB.
    pub memory_mib: u32,
    /// `vcpus =`.
    pub vcpus: u32,
    /// `disk =`, in order (the first is the root disk).
    pub disks: Vec<Disk>,
    /// The one `vif`.
    pub vif: Vif,
    /// `on_poweroff =`, `on_reboot =`, `on_crash =`.
    pub on_poweroff: String,
    /// See `on_poweroff`.
    pub on_reboot: String,
    /// See `on_poweroff`.
    pub on_crash: String,
}

/// One `disk =` entry (xl-disk-configuration(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// The guest's device, `xvda`.
    pub vdev: String,
    /// The file or device, as the Xen host sees it.
    pub target: String,
}

/// The `vif =` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vif {
    /// A fixed MAC (else Xen picks one at every start).
    pub mac: Option<Mac>,
    /// The bridge it joins.
    pub bridge: String,
}

/// Quotes a string for xl.cfg: double quotes, with `\` and `"` escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

impl XlConfig {
    /// The file's text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(
            s,
            "# Xen {} guest {}, written by imgbuild. Start it with: xl create {}.cfg",
            self.guest_type,
            quote(&self.name),
            self.name
        );
        let _ = writeln!(s, "type = {}", quote(self.guest_type.word()));
        let _ = writeln!(s, "name = {}", quote(&self.name));
        let _ = writeln!(s, "kernel = {}", quote(&self.kernel));
        let _ = writeln!(s, "ramdisk = {}", quote(&self.ramdisk));
        let _ = writeln!(s, "cmdline = {}", quote(&self.cmdline));
        let _ = writeln!(s, "memory = {}", self.memory_mib);
        let _ = writeln!(s, "vcpus = {}", self.vcpus);
        // `target=` must come last: everything after it is the path.
        let disks: Vec<String> = self
            .disks
            .iter()
            .map(|d| {
                format!(
                    "'format=raw, vdev={}, access=rw, target={}'",
                    d.vdev, d.target
                )
            })
            .collect();
        let _ = writeln!(s, "disk = [ {} ]", disks.join(", "));
        match &self.vif.mac {
            Some(m) => {
                let _ = writeln!(s, "vif = [ 'mac={m}, bridge={}' ]", self.vif.bridge);
            }
            None => {
                let _ = writeln!(s, "vif = [ 'bridge={}' ]", self.vif.bridge);
            }
        }
        let _ = writeln!(s, "on_poweroff = {}", quote(&self.on_poweroff));
        let _ = writeln!(s, "on_reboot = {}", quote(&self.on_reboot));
        let _ = writeln!(s, "on_crash = {}", quote(&self.on_crash));
        s
    }
}

/// What is wrong with an xl.cfg.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XlCfgError {
    /// A value does not parse.
    #[error("line {line}: key {key}: {message}")]
    Invalid {
        /// 1-based line.
        line: usize,
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A key the runner needs is not there.
    #[error("missing key {0}")]
    Missing(&'static str),
}

/// The domain name and the files a Xen host reads for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XlFiles {
    /// Domain name.
    pub name: String,
    /// The kernel.
    pub kernel: String,
    /// The ramdisk, if any.
    pub ramdisk: Option<String>,
    /// Disk targets (files or block devices), in config order. Whether the
    /// first, the root disk, is a file to copy or shared storage to attach
    /// is not in the xl.cfg: the manifest's `storage` says
    /// ([`crate::manifest::Manifest::root_storage`]).
    pub disks: Vec<String>,
    /// The domain's type: the last `type =`; without one, `builder =
    /// "hvm"` (xl's older key) is HVM and anything else PV, xl's default
    /// for a config with `kernel =`.
    pub guest_type: GuestType,
}

/// Strips one level of '…' or "…" quoting (with \" and \\ escapes in "…");
/// a `#` comment may follow.
fn unquote(v: &str) -> Option<String> {
    let v = v.trim();
    let mut chars = v.chars();
    let q = chars.next().filter(|c| *c == '"' || *c == '\'')?;
    let mut out = String::new();
    while let Some(c) = chars.next() {
        if c == '\\' && q == '"' {
            out.push(chars.next()?);
        } else if c == q {
            let rest = chars.as_str().trim();
            return (rest.is_empty() || rest.starts_with('#')).then_some(out);
        } else {
            out.push(c);
        }
    }
    None
}

/// Splits `[ 'a', "b" ]` into its strings.
fn list(v: &str) -> Option<Vec<String>> {
    let inner = v.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut items = Vec::new();
    let mut rest = inner.trim();
    while let Some(q) = rest.chars().next() {
        if q != '\'' && q != '"' {
            return None;
        }
        let body = rest.get(1..)?;
        let end = body.find(q)?;
        items.push(body.get(..end)?.to_string());
        rest = body.get(end + 1..)?.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Some(items)
}

/// The target of one disk spec (xl-disk-configuration(5)): `target=` takes the
/// rest of the string; otherwise the first positional parameter.
pub fn disk_target(spec: &str) -> Option<String> {
    if let Some(i) = spec.find("target=") {
        let t = spec.get(i + "target=".len()..)?.trim();
        return (!t.is_empty()).then(|| t.to_string());
    }
    let first = spec.split(',').map(str::trim).find(|p| !p.contains('='))?;
    let first = first
        .strip_prefix("file:")
        .or_else(|| first.strip_prefix("phy:"))
        .or_else(|| first.strip_prefix("raw:"))
        .unwrap_or(first);
    (!first.is_empty()).then(|| first.to_string())
}

impl XlFiles {
    /// Reads the keys the runner needs from an xl.cfg's text.
    pub fn parse(text: &str) -> Result<XlFiles, XlCfgError> {
        let (mut name, mut kernel, mut ramdisk, mut disks) = (None, None, None, Vec::new());
        let (mut guest_type, mut builder) = (None, None);
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let key = key.trim();
            let invalid = |message: &str| XlCfgError::Invalid {
                line: i + 1,
                key: key.to_string(),
                message: message.to_string(),
            };
            match key {
                "name" => {
                    name = Some(unquote(value).ok_or_else(|| invalid("expected a quoted string"))?)
                }
                "kernel" => {
                    kernel = Some(unquote(value).ok_or_else(|| invalid("expected a quoted path"))?)
                }
                "ramdisk" => {
                    ramdisk = Some(unquote(value).ok_or_else(|| invalid("expected a quoted path"))?)
                }
                "type" => {
                    let t = unquote(value).ok_or_else(|| invalid("expected a quoted word"))?;
                    guest_type = Some(
                        t.parse::<GuestType>()
                            .map_err(|e: ValueError| invalid(&e.0))?,
                    );
                }
                "builder" => {
                    builder = Some(unquote(value).ok_or_else(|| invalid("expected a quoted word"))?)
                }
                "disk" => {
                    for spec in list(value).ok_or_else(|| {
                        invalid("expected a list of quoted disk specs on one line")
                    })? {
                        disks.push(
                            disk_target(&spec).ok_or_else(|| {
                                invalid(&format!("no target in disk spec {spec:?}"))
                            })?,
                        );
                    }
                }
                _ => {}
            }
        }
        Ok(XlFiles {
            name: name.ok_or(XlCfgError::Missing("name"))?,
            kernel: kernel.ok_or(XlCfgError::Missing("kernel"))?,
            ramdisk,
            disks,
            guest_type: guest_type.unwrap_or(match builder {
                Some(b) if b.eq_ignore_ascii_case("hvm") => GuestType::Hvm,
                _ => GuestType::Pv,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busybox() -> XlConfig {
        XlConfig {
            guest_type: GuestType::Pv,
            name: "busybox".into(),
            kernel: "/srv/out/busybox/vmlinuz".into(),
            ramdisk: "/srv/out/busybox/initrd.img".into(),
            cmdline: "root=/dev/xvda ro console=hvc0 ip=10.99.0.2::10.99.0.1:255.255.255.0:busybox:eth0:off".into(),
            memory_mib: 512,
            vcpus: 1,
            disks: vec![Disk {
                vdev: "xvda".into(),
                target: "/srv/out/busybox/rootfs.img".into(),
            }],
            vif: Vif {
                mac: Some("00:16:3e:5a:01:02".parse().unwrap()),
                bridge: "xenbr0".into(),
            },
            on_poweroff: "destroy".into(),
            on_reboot: "restart".into(),
            on_crash: "destroy".into(),
        }
    }

    #[test]
    fn the_file_keeps_xls_rules() {
        // The whole text is snapshot-tested from a recipe in the builder
        // (builder/src/xlcfg.rs); here, the rules of the format.
        let t = busybox().render();
        assert!(t.starts_with("# Xen PV guest \"busybox\""), "{t}");
        assert!(t.contains("\ntype = \"pv\"\n"), "{t}");
        // `target=` comes last in a disk spec: everything after it is the path.
        assert!(
            t.contains("access=rw, target=/srv/out/busybox/rootfs.img' ]\n"),
            "{t}"
        );
        assert!(
            t.contains("vif = [ 'mac=00:16:3e:5a:01:02, bridge=xenbr0' ]\n"),
            "{t}"
        );
        assert!(t.ends_with("on_crash = \"destroy\"\n"), "{t}");
    }

    #[test]
    fn the_runner_reads_what_the_builder_writes() {
        let mut c = busybox();
        c.kernel = "/a \"quoted\" \\ path/vmlinuz".into();
        c.disks.push(Disk {
            vdev: "xvdb".into(),
            target: "/dev/vg/data, with comma".into(),
        });
        let f = XlFiles::parse(&c.render()).unwrap();
        assert_eq!(f.name, c.name);
        assert_eq!(f.kernel, c.kernel);
        assert_eq!(f.ramdisk.as_deref(), Some(c.ramdisk.as_str()));
        let targets: Vec<&str> = c.disks.iter().map(|d| d.target.as_str()).collect();
        assert_eq!(f.disks, targets);
        assert_eq!(f.guest_type, GuestType::Pv);
        c.vif.mac = None;
        assert!(c.render().contains("vif = [ 'bridge=xenbr0' ]\n"));
    }

    #[test]
    fn a_pvh_guest_differs_only_in_its_type() {
        let pv = busybox();
        let pvh = XlConfig {
            guest_type: GuestType::Pvh,
            ..busybox()
        };
        let t = pvh.render();
        assert!(t.starts_with("# Xen PVH guest \"busybox\""), "{t}");
        assert!(t.contains("\ntype = \"pvh\"\n"), "{t}");
        // Everything after the type line is the PV guest's: direct kernel
        // boot, the same disk, vif and actions.
        let body = |t: &str| {
            t.split_once("\ntype = ")
                .and_then(|(_, b)| b.split_once('\n'))
                .map(|(_, r)| r.to_string())
                .unwrap()
        };
        assert_eq!(body(&t), body(&pv.render()));
        assert!(
            body(&t).starts_with("name = \"busybox\"\nkernel = \"/srv/out/busybox/vmlinuz\"\n"),
            "{t}"
        );
        let f = XlFiles::parse(&t).unwrap();
        assert_eq!(f.guest_type, GuestType::Pvh);
        assert_eq!(f.kernel, pvh.kernel);
        assert_eq!(f.disks, ["/srv/out/busybox/rootfs.img"]);
    }

    #[test]
    fn the_type_as_xl_reads_it() {
        let t = |s: &str| {
            XlFiles::parse(&format!("name = 'g'\nkernel = '/k'\n{s}"))
                .map(|f| f.guest_type)
                .map_err(|e| e.to_string())
        };
        use GuestType::{Hvm, Pv, Pvh};
        assert_eq!(t(""), Ok(Pv));
        assert_eq!(t("type = \"pv\"\n"), Ok(Pv));
        assert_eq!(t("type = 'pvh' # direct kernel boot\n"), Ok(Pvh));
        assert_eq!(t("type = \"PVH\"\n"), Ok(Pvh));
        assert_eq!(t("type = \"hvm\"\n"), Ok(Hvm));
        assert_eq!(t("builder = \"hvm\"\n"), Ok(Hvm));
        assert_eq!(t("builder = \"generic\"\n"), Ok(Pv));
        // `type` wins over `builder`, the last `type` over earlier ones; a
        // commented-out line counts for nothing.
        assert_eq!(t("builder = 'hvm'\ntype = 'pvh'\n"), Ok(Pvh));
        assert_eq!(t("type = 'hvm'\ntype = 'pv'\n"), Ok(Pv));
        assert_eq!(t("#type = 'hvm'\n"), Ok(Pv));
        // Keys that only end in `type` are other keys.
        assert_eq!(t("device_model_type = 'hvm'\n"), Ok(Pv));
        assert_eq!(
            t("type = \"pvhvm\"\n"),
            Err("line 3: key type: `pvhvm` is not a Xen guest type; one of: pv, pvh, hvm".into())
        );
        assert_eq!(
            t("type = pvh\n"),
            Err("line 3: key type: expected a quoted word".into())
        );
        // A comment after a value is xl's too.
        let f = XlFiles::parse("name = \"g\" # the domain\nkernel = '/k'\n").unwrap();
        assert_eq!(f.name, "g");
    }

    #[test]
    fn disk_spec_forms() {
        assert_eq!(
            disk_target("format=raw, vdev=xvda, target=/a b,c"),
            Some("/a b,c".into())
        );
        assert_eq!(
            disk_target("file:/img/x.img,xvda,w"),
            Some("/img/x.img".into())
        );
        assert_eq!(
            disk_target("/dev/vg/lv,raw,xvda,rw"),
            Some("/dev/vg/lv".into())
        );
        assert_eq!(disk_target("vdev=xvda, access=rw"), None);
    }

    #[test]
    fn errors_name_line_and_key() {
        let e = XlFiles::parse("name = busybox\n").unwrap_err();
        assert_eq!(e.to_string(), "line 1: key name: expected a quoted string");
        let e = XlFiles::parse("name = \"b\"\n").unwrap_err();
        assert_eq!(e.to_string(), "missing key kernel");
        let e = XlFiles::parse("name='b'\nkernel='/k'\ndisk = [ 'vdev=xvda' ]\n").unwrap_err();
        assert!(e.to_string().contains("line 3: key disk: no target"), "{e}");
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
