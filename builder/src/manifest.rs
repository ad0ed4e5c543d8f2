//! Hashing the outputs for `manifest.json`. The manifest itself — its
//! fields, its JSON — is the contract's (`guest_contract::manifest`).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use guest_contract::cmdline::Platform;
use guest_contract::manifest::{Cmdlines, GuestFacts, GuestNet, Manifest, OutputFile};
use guest_contract::outputs::Output;
use sha2::{Digest as _, Sha256};

use crate::recipe::Recipe;

/// The manifest of `recipe`'s build, with its hashed `outputs`.
pub fn manifest_for(recipe: &Recipe, epoch: i64, kver: &str, outputs: Vec<OutputFile>) -> Manifest {
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
        },
        cmdline: Cmdlines {
            xen: recipe.kernel_cmdline(Platform::Xen),
            qemu: recipe.kernel_cmdline(Platform::Qemu),
        },
        outputs,
    }
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
