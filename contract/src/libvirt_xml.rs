//! libvirt domain XML (<https://libvirt.org/formatdomain.html>): what the
//! builder writes next to the xl.cfg, `<name>.xen.xml` for libvirt's libxl
//! driver and `<name>.qemu.xml` for its QEMU driver ([`DomainXml::render`]).
//!
//! Both boot the kernel directly (`<kernel>`, `<initrd>`, `<cmdline>`):
//!
//! - [`Hypervisor::Xen`]: `<domain type='xen'>`, a PV guest
//!   (`<type machine='xenpv'>linux</type>`) or a PVH one
//!   (`<type machine='xenpvh'>xenpvh</type>`), the root disk as `xvda` on the
//!   Xen bus, a `<console>` on the Xen console.
//! - [`Hypervisor::Kvm`]: `<domain type='kvm'>` on a `q35` machine, a virtio
//!   disk and NIC, a serial console. Without KVM (QEMU's TCG), the same file
//!   with `type='qemu'`: `sed "s/type='kvm'/type='qemu'/"` (the only
//!   attribute with that value).
//!
//! Every value is escaped by one helper, [`escape`]. No UUID: libvirt picks
//! one at `virsh define`.

use std::fmt::Write as _;

use crate::guest_type::GuestType;
use crate::net::Mac;

/// Which libvirt driver the domain is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hypervisor {
    /// libvirt's libxl driver, a PV or PVH guest.
    Xen(GuestType),
    /// libvirt's QEMU driver with KVM (see the module doc for TCG).
    Kvm,
}

/// Where the root disk's data is, as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskSource {
    /// An image file: `<disk type='file'>`.
    File(String),
    /// A block device (a LUN, an NBD device the host is attached to):
    /// `<disk type='block'>`.
    Block(String),
}

/// A domain as imgbuild writes it for libvirt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainXml {
    /// The driver.
    pub hypervisor: Hypervisor,
    /// `<name>`.
    pub name: String,
    /// `<memory unit='MiB'>`.
    pub memory_mib: u32,
    /// `<vcpu>`.
    pub vcpus: u32,
    /// `<kernel>`, as the host sees it.
    pub kernel: String,
    /// `<initrd>`, as the host sees it.
    pub initrd: String,
    /// `<cmdline>`.
    pub cmdline: String,
    /// The root disk (`xvda` on Xen, `vda` on KVM).
    pub disk: DiskSource,
    /// The NIC's fixed MAC, if the recipe has one.
    pub mac: Option<Mac>,
    /// The bridge the NIC joins.
    pub bridge: String,
    /// xl's action words (xl.cfg(5) `on_poweroff`, …), mapped by
    /// [`libvirt_action`].
    pub on_poweroff: String,
    /// See `on_poweroff`.
    pub on_reboot: String,
    /// See `on_poweroff`.
    pub on_crash: String,
}

/// The event an action is for: libvirt allows the `coredump-*` actions only
/// on a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `<on_poweroff>`
    Poweroff,
    /// `<on_reboot>`
    Reboot,
    /// `<on_crash>`
    Crash,
}

/// libvirt's word for xl's action `xl` on `event`: the same word where
/// libvirt's schema has it; otherwise the nearest — `soft-reset` (restart
/// keeping the memory, which libvirt has no element for) is `restart`, and
/// on a power-off or reboot `coredump-destroy` is `destroy` and
/// `coredump-restart` is `restart`. A word xl does not know is `destroy`
/// (the recipe check refuses one before this is reached).
pub fn libvirt_action(xl: &str, event: Event) -> &'static str {
    match (xl, event) {
        ("restart", _) | ("soft-reset", _) => "restart",
        ("preserve", _) => "preserve",
        ("rename-restart", _) => "rename-restart",
        ("coredump-destroy", Event::Crash) => "coredump-destroy",
        ("coredump-restart", Event::Crash) => "coredump-restart",
        ("coredump-restart", _) => "restart",
        _ => "destroy",
    }
}

/// Escapes `s` for XML text and for an attribute quoted with `'` or `"`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Where the QEMU domain's serial console is logged on its host.
pub fn qemu_console_log(name: &str) -> String {
    format!("/var/log/libvirt/qemu/{name}-console.log")
}

impl DomainXml {
    /// The file's text.
    pub fn render(&self) -> String {
        let e = escape;
        let mut s = String::new();
        // Writing to a String cannot fail.
        let (domain_type, comment) = match self.hypervisor {
            Hypervisor::Xen(t) => ("xen", format!("Xen {t} guest, libvirt's libxl driver")),
            Hypervisor::Kvm => (
                "kvm",
                "QEMU/KVM guest; without KVM: sed \"s/type='kvm'/type='qemu'/\"".to_string(),
            ),
        };
        let _ = writeln!(
            s,
            "<!-- {}, written by imgbuild. Start it with: virsh create FILE -->",
            comment.replace("--", "- -")
        );
        let _ = writeln!(s, "<domain type='{domain_type}'>");
        let _ = writeln!(s, "  <name>{}</name>", e(&self.name));
        let _ = writeln!(s, "  <memory unit='MiB'>{}</memory>", self.memory_mib);
        let _ = writeln!(s, "  <vcpu>{}</vcpu>", self.vcpus);
        let _ = writeln!(s, "  <os>");
        let os_type = match self.hypervisor {
            Hypervisor::Xen(GuestType::Pvh) => "<type arch='x86_64' machine='xenpvh'>xenpvh</type>",
            Hypervisor::Xen(_) => "<type arch='x86_64' machine='xenpv'>linux</type>",
            Hypervisor::Kvm => "<type arch='x86_64' machine='q35'>hvm</type>",
        };
        let _ = writeln!(s, "    {os_type}");
        let _ = writeln!(s, "    <kernel>{}</kernel>", e(&self.kernel));
        let _ = writeln!(s, "    <initrd>{}</initrd>", e(&self.initrd));
        let _ = writeln!(s, "    <cmdline>{}</cmdline>", e(&self.cmdline));
        let _ = writeln!(s, "  </os>");
        if self.hypervisor == Hypervisor::Kvm {
            let _ = writeln!(s, "  <features>\n    <acpi/>\n  </features>");
        }
        for (tag, action, event) in [
            ("on_poweroff", &self.on_poweroff, Event::Poweroff),
            ("on_reboot", &self.on_reboot, Event::Reboot),
            ("on_crash", &self.on_crash, Event::Crash),
        ] {
            let _ = writeln!(s, "  <{tag}>{}</{tag}>", libvirt_action(action, event));
        }
        let _ = writeln!(s, "  <devices>");
        // QEMU: cache='none', which libvirt requires to call a live
        // migration safe on shared storage (the page cache of the source
        // would otherwise hold writes the destination cannot see).
        let (file_driver, target) = match self.hypervisor {
            // Xen: no driver, so libxl picks the backend as it does for the
            // xl.cfg's disk (a loop device under blkback for a raw file; the
            // `qemu` driver would need a device model, which PV and PVH
            // hosts need not have).
            Hypervisor::Xen(_) => ("", "<target dev='xvda' bus='xen'/>"),
            Hypervisor::Kvm => (
                "<driver name='qemu' type='raw' cache='none'/>",
                "<target dev='vda' bus='virtio'/>",
            ),
        };
        match &self.disk {
            DiskSource::File(path) => {
                let _ = writeln!(s, "    <disk type='file' device='disk'>");
                if !file_driver.is_empty() {
                    let _ = writeln!(s, "      {file_driver}");
                }
                let _ = writeln!(s, "      <source file='{}'/>", e(path));
            }
            DiskSource::Block(dev) => {
                let _ = writeln!(s, "    <disk type='block' device='disk'>");
                let driver = match self.hypervisor {
                    Hypervisor::Xen(_) => "<driver name='phy'/>",
                    Hypervisor::Kvm => "<driver name='qemu' type='raw' cache='none'/>",
                };
                let _ = writeln!(s, "      {driver}");
                let _ = writeln!(s, "      <source dev='{}'/>", e(dev));
            }
        }
        let _ = writeln!(s, "      {target}\n    </disk>");
        let _ = writeln!(s, "    <interface type='bridge'>");
        if let Some(m) = &self.mac {
            let _ = writeln!(s, "      <mac address='{m}'/>");
        }
        let _ = writeln!(s, "      <source bridge='{}'/>", e(&self.bridge));
        if self.hypervisor == Hypervisor::Kvm {
            let _ = writeln!(s, "      <model type='virtio'/>");
        }
        let _ = writeln!(s, "    </interface>");
        match self.hypervisor {
            Hypervisor::Xen(_) => {
                let _ = writeln!(
                    s,
                    "    <console type='pty'>\n      <target type='xen' port='0'/>\n    </console>"
                );
            }
            Hypervisor::Kvm => {
                // The console also goes to a file (as xenconsoled's
                // guest-NAME.log under Xen), for whoever debugs a boot.
                let _ = writeln!(
                    s,
                    "    <serial type='pty'>\n      <log file='{}' append='on'/>\n      <target port='0'/>\n    </serial>",
                    e(&qemu_console_log(&self.name))
                );
                let _ = writeln!(
                    s,
                    "    <console type='pty'>\n      <target type='serial' port='0'/>\n    </console>"
                );
            }
        }
        let _ = writeln!(s, "  </devices>\n</domain>");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xen() -> DomainXml {
        DomainXml {
            hypervisor: Hypervisor::Xen(GuestType::Pv),
            name: "busybox".into(),
            memory_mib: 512,
            vcpus: 1,
            kernel: "/srv/out/busybox/vmlinuz".into(),
            initrd: "/srv/out/busybox/initrd.img".into(),
            cmdline: "root=/dev/xvda ro console=hvc0".into(),
            disk: DiskSource::File("/srv/out/busybox/rootfs.img".into()),
            mac: Some("00:16:3e:5a:01:02".parse().unwrap()),
            bridge: "xenbr0".into(),
            on_poweroff: "destroy".into(),
            on_reboot: "restart".into(),
            on_crash: "destroy".into(),
        }
    }

    /// Undoes [`escape`], as an XML reader would.
    fn unescape(s: &str) -> String {
        s.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&apos;", "'")
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
    }

    /// The text between `open` and the next `close`.
    fn between<'a>(t: &'a str, open: &str, close: &str) -> &'a str {
        let (_, rest) = t.split_once(open).unwrap();
        rest.split_once(close).unwrap().0
    }

    #[test]
    fn snapshot_xen_pv() {
        let want = "<!-- Xen PV guest, libvirt's libxl driver, written by imgbuild. Start it with: virsh create FILE -->
<domain type='xen'>
  <name>busybox</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='xenpv'>linux</type>
    <kernel>/srv/out/busybox/vmlinuz</kernel>
    <initrd>/srv/out/busybox/initrd.img</initrd>
    <cmdline>root=/dev/xvda ro console=hvc0</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <source file='/srv/out/busybox/rootfs.img'/>
      <target dev='xvda' bus='xen'/>
    </disk>
    <interface type='bridge'>
      <mac address='00:16:3e:5a:01:02'/>
      <source bridge='xenbr0'/>
    </interface>
    <console type='pty'>
      <target type='xen' port='0'/>
    </console>
  </devices>
</domain>
";
        assert_eq!(xen().render(), want);
    }

    #[test]
    fn pvh_block_disk_and_no_mac() {
        let d = DomainXml {
            hypervisor: Hypervisor::Xen(GuestType::Pvh),
            disk: DiskSource::Block("/dev/vg0/busybox".into()),
            mac: None,
            ..xen()
        };
        let t = d.render();
        assert!(
            t.contains("<type arch='x86_64' machine='xenpvh'>xenpvh</type>"),
            "{t}"
        );
        assert!(
            t.contains("<disk type='block' device='disk'>\n      <driver name='phy'/>\n      <source dev='/dev/vg0/busybox'/>\n      <target dev='xvda' bus='xen'/>"),
            "{t}"
        );
        assert!(!t.contains("<mac"), "{t}");
    }

    #[test]
    fn kvm_domain() {
        let d = DomainXml {
            hypervisor: Hypervisor::Kvm,
            cmdline: "root=/dev/vda ro console=ttyS0".into(),
            bridge: "virbr0".into(),
            ..xen()
        };
        let t = d.render();
        assert!(t.contains("\n<domain type='kvm'>\n"), "{t}");
        // The TCG switch of the module doc touches only the domain type.
        assert_eq!(t.matches("type='kvm'").count(), 2, "{t}");
        assert!(t.contains("<type arch='x86_64' machine='q35'>hvm</type>"));
        assert!(t.contains("<target dev='vda' bus='virtio'/>"));
        assert!(
            t.contains("<driver name='qemu' type='raw' cache='none'/>"),
            "{t}"
        );
        assert!(t.contains("<source bridge='virbr0'/>\n      <model type='virtio'/>"));
        assert!(t.contains("<serial type='pty'>\n      <log file='/var/log/libvirt/qemu/busybox-console.log' append='on'/>"), "{t}");
        assert!(t.contains("<target type='serial' port='0'/>"));
        assert!(!t.contains("bus='xen'"));
    }

    #[test]
    fn every_value_is_escaped_and_round_trips() {
        let odd = "a<b&c'd\"e>f";
        let d = DomainXml {
            name: odd.into(),
            kernel: format!("/k/{odd}"),
            cmdline: format!("x={odd}"),
            disk: DiskSource::File(format!("/img/{odd}")),
            bridge: odd.into(),
            ..xen()
        };
        let t = d.render();
        for c in ['&', '<', '\'', '"'] {
            let inside = between(&t, "<name>", "</name>");
            assert!(!inside.contains(c) || c == '&', "{t}");
        }
        assert_eq!(unescape(between(&t, "<name>", "</name>")), odd);
        assert_eq!(unescape(between(&t, "<kernel>", "</kernel>")), d.kernel);
        assert_eq!(unescape(between(&t, "<cmdline>", "</cmdline>")), d.cmdline);
        assert_eq!(
            unescape(between(&t, "<source file='", "'/>")),
            format!("/img/{odd}")
        );
        assert_eq!(unescape(between(&t, "<source bridge='", "'/>")), odd);
        assert_eq!(escape(odd), "a&lt;b&amp;c&apos;d&quot;e&gt;f");
        assert_eq!(unescape(&escape("&amp;")), "&amp;");
    }

    #[test]
    fn xl_actions_in_libvirts_words() {
        use Event::{Crash, Poweroff, Reboot};
        for w in ["destroy", "restart", "preserve", "rename-restart"] {
            for ev in [Poweroff, Reboot, Crash] {
                assert_eq!(libvirt_action(w, ev), w);
            }
        }
        assert_eq!(
            libvirt_action("coredump-destroy", Crash),
            "coredump-destroy"
        );
        assert_eq!(
            libvirt_action("coredump-restart", Crash),
            "coredump-restart"
        );
        assert_eq!(libvirt_action("coredump-destroy", Poweroff), "destroy");
        assert_eq!(libvirt_action("coredump-restart", Reboot), "restart");
        assert_eq!(libvirt_action("soft-reset", Crash), "restart");
        let d = DomainXml {
            on_crash: "soft-reset".into(),
            ..xen()
        };
        assert!(d.render().contains("<on_crash>restart</on_crash>"));
    }
}
