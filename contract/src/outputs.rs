//! The files in `out/<name>/`: what `imgbuild recipe` writes and the runner
//! boots. Each has a role (the manifest's `outputs[].role`) and a file name.

use std::fmt;

/// `out/<name>/manifest.json`.
pub const MANIFEST_FILE: &str = "manifest.json";

/// One of the files a build writes besides the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Output {
    /// The sparse ext4 root image.
    RootImage,
    /// The initramfs (cpio newc + gzip).
    Initramfs,
    /// The kernel.
    Kernel,
    /// The Xen domain configuration, xl.cfg(5).
    XlConfig,
    /// The libvirt domain XML for the libxl (Xen) driver.
    XenDomainXml,
    /// The libvirt domain XML for the QEMU driver (KVM).
    QemuDomainXml,
}

impl Output {
    /// Every output, in the order the manifest lists them.
    pub const ALL: [Output; 6] = [
        Output::RootImage,
        Output::Initramfs,
        Output::Kernel,
        Output::XlConfig,
        Output::XenDomainXml,
        Output::QemuDomainXml,
    ];

    /// The role's name in the manifest.
    pub fn role(self) -> &'static str {
        match self {
            Output::RootImage => "rootfs",
            Output::Initramfs => "initrd",
            Output::Kernel => "kernel",
            Output::XlConfig => "xl-config",
            Output::XenDomainXml => "libvirt-xen",
            Output::QemuDomainXml => "libvirt-qemu",
        }
    }

    /// The output with this role name.
    pub fn from_role(role: &str) -> Option<Output> {
        Output::ALL.into_iter().find(|o| o.role() == role)
    }

    /// The file's name in the output directory of guest `name`.
    pub fn file_name(self, name: &str) -> String {
        match self {
            Output::RootImage => "rootfs.img".to_owned(),
            Output::Initramfs => "initrd.img".to_owned(),
            Output::Kernel => "vmlinuz".to_owned(),
            Output::XlConfig => format!("{name}.cfg"),
            Output::XenDomainXml => format!("{name}.xen.xml"),
            Output::QemuDomainXml => format!("{name}.qemu.xml"),
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.role())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_names() {
        for o in Output::ALL {
            assert_eq!(Output::from_role(o.role()), Some(o));
        }
        assert_eq!(Output::from_role("nope"), None);
        let names: Vec<String> = Output::ALL.iter().map(|o| o.file_name("busybox")).collect();
        assert_eq!(
            names,
            [
                "rootfs.img",
                "initrd.img",
                "vmlinuz",
                "busybox.cfg",
                "busybox.xen.xml",
                "busybox.qemu.xml"
            ]
        );
    }
}
