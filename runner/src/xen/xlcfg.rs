//! The parts of an xl.cfg(5) file the runner needs: the domain name and the
//! files the Xen host must see (kernel, ramdisk, disk targets).

use std::path::{Path, PathBuf};

/// Errors reading an xl.cfg.
#[derive(Debug, thiserror::Error)]
pub enum XlCfgError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: line {line}: key {key}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
    #[error("{path}: missing key {key}")]
    Missing { path: PathBuf, key: &'static str },
}

/// What the runner takes from an xl.cfg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XlCfg {
    pub path: PathBuf,
    pub name: String,
    pub kernel: PathBuf,
    pub ramdisk: Option<PathBuf>,
    /// Disk targets (files or block devices), in config order.
    pub disks: Vec<PathBuf>,
}

/// Strips one level of '…' or "…" quoting (with \" and \\ escapes in "…").
fn unquote(v: &str) -> Option<String> {
    let v = v.trim();
    let (q, body) = match v.as_bytes().first()? {
        b'"' => ('"', &v[1..]),
        b'\'' => ('\'', &v[1..]),
        _ => return None,
    };
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && q == '"' {
            out.push(chars.next()?);
        } else if c == q {
            return chars.as_str().trim().is_empty().then_some(out);
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
    while !rest.is_empty() {
        let q = rest.chars().next()?;
        if q != '\'' && q != '"' {
            return None;
        }
        let end = rest[1..].find(q)? + 1;
        items.push(rest[1..end].to_string());
        rest = rest[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Some(items)
}

/// The target of one disk spec (xl-disk-configuration(5)): `target=` takes the
/// rest of the string; otherwise the first positional parameter.
pub fn disk_target(spec: &str) -> Option<PathBuf> {
    if let Some(i) = spec.find("target=") {
        let t = spec[i + "target=".len()..].trim();
        return (!t.is_empty()).then(|| PathBuf::from(t));
    }
    let first = spec.split(',').map(str::trim).find(|p| !p.contains('='))?;
    let first = first
        .strip_prefix("file:")
        .or_else(|| first.strip_prefix("phy:"))
        .or_else(|| first.strip_prefix("raw:"))
        .unwrap_or(first);
    (!first.is_empty()).then(|| PathBuf::from(first))
}

impl XlCfg {
    pub fn load(path: &Path) -> Result<XlCfg, XlCfgError> {
        let text = std::fs::read_to_string(path).map_err(|source| XlCfgError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        XlCfg::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<XlCfg, XlCfgError> {
        let (mut name, mut kernel, mut ramdisk, mut disks) = (None, None, None, Vec::new());
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
                path: path.to_path_buf(),
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
        let missing = |key| XlCfgError::Missing {
            path: path.to_path_buf(),
            key,
        };
        Ok(XlCfg {
            path: path.to_path_buf(),
            name: name.ok_or_else(|| missing("name"))?,
            kernel: PathBuf::from(kernel.ok_or_else(|| missing("kernel"))?),
            ramdisk: ramdisk.map(PathBuf::from),
            disks,
        })
    }

    /// Every file the Xen host reads for this domain, the config itself first.
    pub fn files(&self) -> Vec<&Path> {
        let mut v = vec![self.path.as_path(), self.kernel.as_path()];
        v.extend(self.ramdisk.as_deref());
        v.extend(self.disks.iter().map(PathBuf::as_path));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILDER: &str = r#"# Xen PV guest "busybox", written by imgbuild. Start it with: xl create busybox.cfg
type = "pv"
name = "busybox"
kernel = "/srv/out/busybox/vmlinuz"
ramdisk = "/srv/out/busybox/initrd.img"
cmdline = "root=/dev/xvda ro console=hvc0 ip=10.99.0.2::10.99.0.1:255.255.255.0:busybox:eth0:off"
memory = 512
disk = [ 'format=raw, vdev=xvda, access=rw, target=/srv/out/busybox/rootfs.img' ]
vif = [ 'mac=00:16:3e:5a:01:02, bridge=xenbr0' ]
"#;

    #[test]
    fn reads_the_builders_config() {
        let c = XlCfg::parse(BUILDER, Path::new("/srv/out/busybox/busybox.cfg")).unwrap();
        assert_eq!(c.name, "busybox");
        assert_eq!(c.kernel, Path::new("/srv/out/busybox/vmlinuz"));
        assert_eq!(
            c.ramdisk.as_deref(),
            Some(Path::new("/srv/out/busybox/initrd.img"))
        );
        assert_eq!(c.disks, vec![PathBuf::from("/srv/out/busybox/rootfs.img")]);
        assert_eq!(c.files().len(), 4);
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
        let e = XlCfg::parse("name = busybox\n", Path::new("/x.cfg")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/x.cfg: line 1: key name: expected a quoted string"
        );
        let e = XlCfg::parse("name = \"b\"\n", Path::new("/x.cfg")).unwrap_err();
        assert_eq!(e.to_string(), "/x.cfg: missing key kernel");
        let e = XlCfg::parse(
            "name='b'\nkernel='/k'\ndisk = [ 'vdev=xvda' ]\n",
            Path::new("/x.cfg"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("line 3: key disk: no target"), "{e}");
    }
}
