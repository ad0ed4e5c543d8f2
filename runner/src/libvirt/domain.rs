//! The guest's libvirt domain XML as the builder wrote it
//! (`<name>.xen.xml`, `<name>.qemu.xml`): what the backend needs from it
//! (the domain type and name, the files it boots from) and, for a QEMU
//! host without KVM, the TCG variant the file's own comment names.

use std::path::{Path, PathBuf};

/// A domain XML file, read.
#[derive(Debug, Clone)]
pub struct DomainFile {
    pub path: PathBuf,
    pub text: String,
    /// `<domain type=…>`: `xen`, `kvm`, `qemu`.
    pub domain_type: String,
    pub name: String,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    /// `<disk type='file'>`'s source file.
    pub disk_file: Option<PathBuf>,
    /// `<disk type='block'>`'s source device.
    pub disk_dev: Option<String>,
}

/// Why the XML cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a libvirt domain XML: {why}")]
    Parse { path: PathBuf, why: String },
}

/// The first child element of `n` named `tag`.
fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, tag: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == tag)
}

impl DomainFile {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<DomainFile, DomainError> {
        let text = std::fs::read_to_string(path).map_err(|source| DomainError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        DomainFile::parse(path, text)
    }

    /// Parses `text` (read from `path`).
    pub fn parse(path: &Path, text: String) -> Result<DomainFile, DomainError> {
        let bad = |why: String| DomainError::Parse {
            path: path.to_path_buf(),
            why,
        };
        let doc = roxmltree::Document::parse(&text).map_err(|e| bad(e.to_string()))?;
        let root = doc.root_element();
        if root.tag_name().name() != "domain" {
            return Err(bad(format!(
                "the root element is <{}>",
                root.tag_name().name()
            )));
        }
        let domain_type = root
            .attribute("type")
            .ok_or_else(|| bad("<domain> has no type".into()))?
            .to_string();
        let name = child(root, "name")
            .and_then(|n| n.text())
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("no <name>".into()))?
            .to_string();
        // It goes into virsh's argv and into paths on the hosts.
        if name.starts_with(['-', '.'])
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(bad(format!(
                "domain name {name:?}: imgrun takes letters, digits, . _ - (not first: - .)"
            )));
        }
        let os = child(root, "os");
        let os_path = |tag: &str| {
            os.and_then(|o| child(o, tag))
                .and_then(|n| n.text())
                .map(|t| PathBuf::from(t.trim()))
        };
        let disk = child(root, "devices").and_then(|d| {
            d.children().find(|c| {
                c.is_element()
                    && c.tag_name().name() == "disk"
                    && c.attribute("device").unwrap_or("disk") == "disk"
            })
        });
        let source = disk.and_then(|d| child(d, "source"));
        Ok(DomainFile {
            path: path.to_path_buf(),
            kernel: os_path("kernel"),
            initrd: os_path("initrd"),
            disk_file: source.and_then(|s| s.attribute("file")).map(PathBuf::from),
            disk_dev: source.and_then(|s| s.attribute("dev")).map(str::to_string),
            text,
            domain_type,
            name,
        })
    }

    /// The files the domain boots from that must be on its host.
    pub fn files(&self) -> Vec<&Path> {
        [&self.kernel, &self.initrd, &self.disk_file]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
            .collect()
    }

    /// The same domain as `<domain type='qemu'>` (TCG), for a host without
    /// KVM: the one change the builder's comment in the file names.
    pub fn as_tcg(&self) -> Result<String, DomainError> {
        let bad = |why: String| DomainError::Parse {
            path: self.path.clone(),
            why,
        };
        if self.domain_type != "kvm" {
            return Err(bad(format!(
                "<domain type='{}'> has no TCG variant (only kvm does)",
                self.domain_type
            )));
        }
        let doc = roxmltree::Document::parse(&self.text).map_err(|e| bad(e.to_string()))?;
        let attr = doc
            .root_element()
            .attributes()
            .find(|a| a.name() == "type")
            .ok_or_else(|| bad("<domain> has no type".into()))?;
        let range = attr.range_value();
        let mut out = self.text.clone();
        out.replace_range(range, "qemu");
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QEMU: &str = "<!-- QEMU/KVM guest; without KVM: sed \"s/type='kvm'/type='qemu'/\" -->
<domain type='kvm'>
  <name>busybox</name>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>/o/busybox/vmlinuz</kernel>
    <initrd>/o/busybox/initrd.img</initrd>
    <cmdline>root=/dev/vda</cmdline>
  </os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='none'/>
      <source file='/o/busybox/rootfs.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
";

    #[test]
    fn reads_what_the_backend_needs() {
        let d = DomainFile::parse(Path::new("b.qemu.xml"), QEMU.into()).unwrap();
        assert_eq!(d.domain_type, "kvm");
        assert_eq!(d.name, "busybox");
        assert_eq!(
            d.files(),
            [
                Path::new("/o/busybox/vmlinuz"),
                Path::new("/o/busybox/initrd.img"),
                Path::new("/o/busybox/rootfs.img")
            ]
        );
        assert_eq!(d.disk_dev, None);
    }

    #[test]
    fn tcg_variant_changes_the_domain_type_only() {
        let d = DomainFile::parse(Path::new("b.qemu.xml"), QEMU.into()).unwrap();
        let t = d.as_tcg().unwrap();
        assert_eq!(
            t,
            QEMU.replacen("<domain type='kvm'>", "<domain type='qemu'>", 1)
        );
        // The comment still says kvm: only the attribute changed.
        assert!(t.contains("s/type='kvm'/type='qemu'/"));
        let again = DomainFile::parse(Path::new("x"), t).unwrap();
        assert_eq!(again.domain_type, "qemu");
        assert!(again.as_tcg().is_err());
    }

    #[test]
    fn block_disk_and_bad_files() {
        let xen = "<domain type='xen'><name>g</name><devices><disk type='block' device='disk'><source dev='/dev/disk/by-path/x'/></disk></devices></domain>";
        let d = DomainFile::parse(Path::new("g.xen.xml"), xen.into()).unwrap();
        assert_eq!(d.disk_dev.as_deref(), Some("/dev/disk/by-path/x"));
        assert!(d.files().is_empty());
        for (text, want) in [
            ("<domain", "g.xml: not a libvirt domain XML"),
            ("<network/>", "root element is <network>"),
            ("<domain type='kvm'/>", "no <name>"),
            ("<domain><name>x</name></domain>", "no type"),
            (
                "<domain type='kvm'><name>-x</name></domain>",
                "domain name \"-x\"",
            ),
            (
                "<domain type='kvm'><name>a b</name></domain>",
                "domain name \"a b\"",
            ),
        ] {
            let e = DomainFile::parse(Path::new("g.xml"), text.into()).unwrap_err();
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
    }
}
