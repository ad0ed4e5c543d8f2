//! Hashing the outputs for `manifest.json`. The manifest itself — its
//! fields, its JSON — is the contract's (`guest_contract::manifest`).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use guest_contract::cmdline::Platform;
use guest_contract::manifest::{
    Cmdlines, GuestFacts, GuestNet, InputRecord, InputSource, Manifest, OutputFile,
};
use guest_contract::outputs::Output;
use guest_contract::storage::Storage;
use sha2::{Digest as _, Sha256};

use crate::recipe::Recipe;
use crate::sources::Origin;

/// The manifest of `recipe`'s build, whose root disk is on `storage`, with
/// its hashed `outputs`.
pub fn manifest_for(
    recipe: &Recipe,
    epoch: i64,
    kver: &str,
    storage: Storage,
    inputs: Vec<InputRecord>,
    outputs: Vec<OutputFile>,
) -> Manifest {
    Manifest {
        name: recipe.guest.name.clone(),
        source_date_epoch: epoch,
        kernel_version: kver.to_owned(),
        guest: GuestFacts {
            hostname: recipe.guest.hostname.clone(),
            memory_mib: recipe.guest.memory_mib,
            vcpus: recipe.guest.vcpus,
            network: recipe.network.as_ref().map(|n| GuestNet {
                mac: n.mac,
                address: n.address,
                gateway: n.gateway,
            }),
            status_port: recipe
                .init
                .status_enabled
                .then_some(recipe.init.status_port),
            root_label: recipe.rootfs.label.clone(),
            xen_type: Some(recipe.xen.guest_type),
        },
        storage: Some(storage),
        cmdline: Cmdlines {
            xen: recipe.kernel_cmdline(Platform::Xen),
            qemu: recipe.kernel_cmdline(Platform::Qemu),
        },
        inputs,
        outputs,
    }
}

/// The manifest's record of input `input` (`kernel`, `busybox`) from
/// `origin`: for a package, what was requested and the `.deb` used; for a
/// local `.deb`, its path and SHA-256; for a local file or directory,
/// `used` (the kernel image or busybox binary taken from it) and its
/// SHA-256.
pub fn input_record(input: &str, origin: &Origin, used: &Path) -> io::Result<InputRecord> {
    let source = match origin {
        Origin::Package { requested, deb } => InputSource::Package {
            requested: requested.to_string(),
            package: deb.package.clone(),
            version: deb.version.clone(),
            architecture: deb.architecture.clone(),
            sha256: deb.sha256.clone(),
        },
        Origin::LocalDeb { path, sha256 } => InputSource::Path {
            path: path.display().to_string(),
            sha256: sha256.clone(),
        },
        Origin::Local { .. } => InputSource::Path {
            path: std::path::absolute(used)?.display().to_string(),
            sha256: digest(used)?.sha256,
        },
    };
    Ok(InputRecord {
        input: input.to_owned(),
        source,
        busybox_version: None,
    })
}

/// The version the busybox binary at `busybox` reports (`1.35.0` from the
/// first line of `busybox --help`, "BusyBox v1.35.0 (Debian …) multi-call
/// binary."); `None` if it says none. It runs on the build host, as for
/// `--list-full`.
pub fn busybox_version(busybox: &Path) -> Option<String> {
    let out = std::process::Command::new(busybox)
        .arg("--help")
        .env_clear()
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = [out.stdout, out.stderr].concat();
    parse_busybox_version(&String::from_utf8_lossy(&text))
}

/// `1.35.0` from a line "BusyBox v1.35.0 (…) multi-call binary.".
pub fn parse_busybox_version(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.trim().strip_prefix("BusyBox v")?;
        let v = v.split_whitespace().next()?;
        v.starts_with(|c: char| c.is_ascii_digit())
            .then(|| v.to_owned())
    })
}

/// A file's apparent size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// Apparent size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the contents.
    pub sha256: String,
}

/// Hashes `path`. Holes of a sparse file are hashed as the zeros they read
/// as, without reading them.
pub fn digest(path: &Path) -> io::Result<Digest> {
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
    Ok(Digest {
        size,
        sha256: hex(&h.finalize()),
    })
}

/// The manifest entry of `output`, hashed from `path`.
pub fn output_file(output: Output, file: &str, path: &Path) -> io::Result<OutputFile> {
    let d = digest(path)?;
    Ok(OutputFile {
        output,
        file: file.to_owned(),
        size: d.size,
        sha256: d.sha256,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busybox_versions() {
        let help = "BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) multi-call binary.\nBusyBox is copyrighted by many authors\n";
        assert_eq!(parse_busybox_version(help).as_deref(), Some("1.35.0"));
        assert_eq!(
            parse_busybox_version("BusyBox v1.37.0.git (2024-01-01) multi-call binary.").as_deref(),
            Some("1.37.0.git")
        );
        assert_eq!(parse_busybox_version("sh: busybox: not found"), None);
        assert_eq!(parse_busybox_version("BusyBox vX"), None);
        let host = Path::new("/bin/busybox");
        if host.exists() {
            assert!(busybox_version(host).is_some());
        }
    }

    #[test]
    fn input_records() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("busybox");
        std::fs::write(&bin, b"abc").unwrap();
        let r = input_record(
            "busybox",
            &Origin::Local {
                path: dir.path().into(),
            },
            &bin,
        )
        .unwrap();
        assert_eq!(
            r.source,
            InputSource::Path {
                path: bin.display().to_string(),
                sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into()
            }
        );
        let deb = crate::sources::FetchedDeb {
            path: dir.path().join("k.deb"),
            package: "linux-image-6.1.0-57-amd64".into(),
            version: "6.1.192-3".into(),
            architecture: "amd64".into(),
            sha256: "0".repeat(64),
        };
        let origin = Origin::Package {
            requested: "linux-image-amd64".parse().unwrap(),
            deb,
        };
        let r = input_record("kernel", &origin, &bin).unwrap();
        assert_eq!(r.input, "kernel");
        assert_eq!(
            r.source,
            InputSource::Package {
                requested: "linux-image-amd64".into(),
                package: "linux-image-6.1.0-57-amd64".into(),
                version: "6.1.192-3".into(),
                architecture: "amd64".into(),
                sha256: "0".repeat(64),
            }
        );
    }

    #[test]
    fn hashes_a_file() {
        let dir = std::env::temp_dir().join(format!("imgbuild-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x");
        std::fs::write(&p, b"abc").unwrap();
        let o = digest(&p).unwrap();
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
        let o = digest(&p).unwrap();
        assert_eq!(o.size, 12 << 20);
        assert_eq!(o.sha256, hex(&Sha256::digest(&full)));
    }
}
