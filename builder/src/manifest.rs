//! `out/<name>/manifest.json`: what was built, with sizes and SHA-256.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The manifest (schema in CONTRACTS.md).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Manifest {
    /// Guest name.
    pub name: String,
    /// The SOURCE_DATE_EPOCH used for every timestamp.
    pub source_date_epoch: i64,
    /// `uname -r` of the guest kernel.
    pub kernel_version: String,
    /// Guest facts the runner needs.
    pub guest: GuestFacts,
    /// Output files.
    pub outputs: Vec<OutputFile>,
}

/// Guest facts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GuestFacts {
    /// Hostname.
    pub hostname: String,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// vCPUs.
    pub vcpus: u32,
    /// eth0 MAC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// eth0 address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Prefix length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<u8>,
    /// Gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Status service port (absent when the service is disabled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_port: Option<u16>,
    /// Kernel command line in the xl config.
    pub xen_cmdline: String,
    /// Root filesystem label.
    pub root_label: String,
}

/// One output file.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OutputFile {
    /// File name inside the output directory.
    pub file: String,
    /// Apparent size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the contents.
    pub sha256: String,
}

impl OutputFile {
    /// Hashes `path` and records it under `file`. Holes of a sparse file
    /// are hashed as the zeros they read as, without reading them.
    pub fn of(file: &str, path: &Path) -> io::Result<OutputFile> {
        let f = File::open(path)?;
        let size = f.metadata()?.len();
        let mut h = Sha256::new();
        let zeros = vec![0u8; CHUNK];
        let mut buf = vec![0u8; CHUNK];
        let mut pos = 0u64;
        while pos < size {
            let (data, hole) = next_data(&f, pos, size);
            feed_zeros(&mut h, &zeros, data - pos);
            let mut at = data;
            while at < hole {
                let n = usize::try_from((hole - at).min(CHUNK as u64)).unwrap_or(CHUNK);
                f.read_exact_at(&mut buf[..n], at)?;
                h.update(&buf[..n]);
                at += n as u64;
            }
            pos = hole;
        }
        Ok(OutputFile {
            file: file.to_owned(),
            size,
            sha256: hex(&h.finalize()),
        })
    }
}

const CHUNK: usize = 1 << 20;

fn feed_zeros(h: &mut Sha256, zeros: &[u8], mut n: u64) {
    while n > 0 {
        let k = usize::try_from(n.min(zeros.len() as u64)).unwrap_or(zeros.len());
        h.update(&zeros[..k]);
        n -= k as u64;
    }
}

/// The next data range `[data, hole)` at or after `pos` (SEEK_DATA /
/// SEEK_HOLE); where the filesystem cannot tell, everything is data.
fn next_data(f: &File, pos: u64, size: u64) -> (u64, u64) {
    use rustix::fs::{SeekFrom, seek};
    let data = match seek(f, SeekFrom::Data(pos)) {
        Ok(d) => d.min(size),
        Err(rustix::io::Errno::NXIO) => size,
        Err(_) => return (pos, size),
    };
    let hole = match seek(f, SeekFrom::Hole(data)) {
        Ok(h) => h.min(size),
        Err(_) => size,
    };
    (data, hole.max(data))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Manifest {
    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_a_file() {
        let dir = std::env::temp_dir().join(format!("imgbuild-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x");
        std::fs::write(&p, b"abc").unwrap();
        let o = OutputFile::of("x", &p).unwrap();
        assert_eq!(o.size, 3);
        assert_eq!(
            o.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sparse_file_hash_equals_full_read() {
        use std::io::{Seek, SeekFrom, Write};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sparse");
        let mut f = File::create(&p).unwrap();
        f.seek(SeekFrom::Start(5 << 20)).unwrap();
        f.write_all(b"middle").unwrap();
        f.seek(SeekFrom::Start(9 << 20)).unwrap();
        f.write_all(&vec![7u8; 70_000]).unwrap();
        f.set_len(12 << 20).unwrap();
        drop(f);
        let full = std::fs::read(&p).unwrap();
        let o = OutputFile::of("sparse", &p).unwrap();
        assert_eq!(o.size, 12 << 20);
        assert_eq!(o.sha256, hex(&Sha256::digest(&full)));
    }

    #[test]
    fn json_shape() {
        let m = Manifest {
            name: "busybox".into(),
            source_date_epoch: 0,
            kernel_version: "6.1.0-1-amd64".into(),
            guest: GuestFacts {
                hostname: "busybox".into(),
                memory_mib: 512,
                vcpus: 1,
                mac: Some("00:16:3e:00:00:01".into()),
                address: Some("10.99.0.2".into()),
                prefix: Some(24),
                gateway: Some("10.99.0.1".into()),
                status_port: Some(5115),
                xen_cmdline: "root=/dev/xvda".into(),
                root_label: "busybox-root".into(),
            },
            outputs: vec![OutputFile {
                file: "vmlinuz".into(),
                size: 1,
                sha256: "00".into(),
            }],
        };
        let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(v["guest"]["memory_mib"], 512);
        assert_eq!(v["guest"]["status_port"], 5115);
        assert_eq!(v["outputs"][0]["file"], "vmlinuz");
        assert_eq!(v["kernel_version"], "6.1.0-1-amd64");
    }
}
