//! The guest's own kernel, uncompressed for QEMU's PVH entry.
//!
//! A bzImage makes TCG emulate real mode, the decompressor and its
//! relocation before the kernel runs (≈ 3 s of a 6 s boot here). The same
//! kernel's ELF image (`vmlinux`, inside the bzImage as its compressed
//! payload) carries Xen's `XEN_ELFNOTE_PHYS32_ENTRY` note when built with
//! `CONFIG_PVH=y`, and QEMU then enters it directly in 32-bit protected
//! mode. Nothing about the guest changes: the bytes run are the bzImage's
//! own payload, unpacked once and kept in a cache keyed by the bzImage's
//! sha256.

use std::path::{Path, PathBuf};

use imgbuild_modules::decompress::{self, DecompressError};

use super::boot_cache;

/// Why the PVH image could not be had (the runner then boots the bzImage).
#[derive(Debug, thiserror::Error)]
pub enum PvhError {
    #[error("cannot read the kernel {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a bzImage: {why}")]
    NotBzImage { path: PathBuf, why: &'static str },
    #[error("{path}: {source}")]
    Decompress {
        path: PathBuf,
        source: DecompressError,
    },
    #[error("{path}: its payload is not an ELF image of the size the bzImage says")]
    NotElf { path: PathBuf },
    #[error("{path} has no PVH entry (XEN_ELFNOTE_PHYS32_ENTRY; built without CONFIG_PVH)")]
    NoPvhNote { path: PathBuf },
    #[error("cannot write the cached kernel {path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `XEN_ELFNOTE_PHYS32_ENTRY` (xen/include/public/elfnote.h).
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
const PT_NOTE: u32 = 4;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The compressed kernel inside a bzImage (boot protocol ≥ 2.08:
/// `payload_offset`/`payload_length`, counted from the end of the setup
/// sectors; Documentation/x86/boot.rst).
pub fn payload(bz: &[u8]) -> Result<&[u8], &'static str> {
    if bz.get(0x202..0x206) != Some(b"HdrS".as_slice()) {
        return Err("no HdrS boot header");
    }
    let version = u16_at(bz, 0x206).ok_or("truncated header")?;
    if version < 0x208 {
        return Err("boot protocol older than 2.08 (no payload fields)");
    }
    let setup_sects = match bz[0x1f1] {
        0 => 4,
        n => usize::from(n),
    };
    let base = (setup_sects + 1) * 512;
    let off = u32_at(bz, 0x248).ok_or("truncated header")? as usize;
    let len = u32_at(bz, 0x24c).ok_or("truncated header")? as usize;
    base.checked_add(off)
        .and_then(|s| Some((s, s.checked_add(len)?)))
        .and_then(|(s, e)| bz.get(s..e))
        .ok_or("payload outside the file")
}

/// Whether a 64-bit little-endian ELF image has a Xen PVH entry note.
pub fn has_pvh_note(elf: &[u8]) -> bool {
    pvh_note(elf).unwrap_or(false)
}

fn pvh_note(elf: &[u8]) -> Option<bool> {
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return Some(false);
    }
    let phoff = usize::try_from(u64_at(elf, 0x20)?).ok()?;
    let phentsize = usize::from(u16_at(elf, 0x36)?);
    let phnum = usize::from(u16_at(elf, 0x38)?);
    for i in 0..phnum {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(elf, ph)? != PT_NOTE {
            continue;
        }
        let off = usize::try_from(u64_at(elf, ph + 8)?).ok()?;
        let size = usize::try_from(u64_at(elf, ph + 32)?).ok()?;
        let notes = elf.get(off..off.checked_add(size)?)?;
        let mut at = 0;
        // Each note: namesz, descsz, type, name (padded to 4), desc (padded to 4).
        while at + 12 <= notes.len() {
            let namesz = u32_at(notes, at)? as usize;
            let descsz = u32_at(notes, at + 4)? as usize;
            let ty = u32_at(notes, at + 8)?;
            let name = notes.get(at + 12..at + 12 + namesz)?;
            if ty == XEN_ELFNOTE_PHYS32_ENTRY && name.starts_with(b"Xen") {
                return Some(true);
            }
            at += 12 + namesz.div_ceil(4) * 4 + descsz.div_ceil(4) * 4;
        }
    }
    Some(false)
}

/// The PVH-bootable ELF image of the bzImage at `kernel`, from
/// `cache_dir/pvh/<sha256>.vmlinux`, unpacked there first if it is not yet.
/// The cache file only ever appears whole (written aside, then renamed).
pub fn vmlinux(kernel: &Path, cache_dir: &Path) -> Result<PathBuf, PvhError> {
    let bz = std::fs::read(kernel).map_err(|source| PvhError::Read {
        path: kernel.to_path_buf(),
        source,
    })?;
    boot_cache::derived(
        &cache_dir.join("pvh"),
        &bz,
        "vmlinux",
        |bz| unpack(kernel, bz),
        |path, source| PvhError::Cache { path, source },
    )
}

/// The bzImage's ELF image, checked to be whole and to have a PVH entry.
fn unpack(kernel: &Path, bz: &[u8]) -> Result<Vec<u8>, PvhError> {
    let packed = payload(bz).map_err(|why| PvhError::NotBzImage {
        path: kernel.to_path_buf(),
        why,
    })?;
    // The build appends the uncompressed size (4 bytes, little-endian)
    // after the compressed stream (arch/x86/boot/compressed: `*_with_size`).
    let (stream, size) = packed.split_last_chunk::<4>().ok_or(PvhError::NotBzImage {
        path: kernel.to_path_buf(),
        why: "payload too short",
    })?;
    let elf = decompress::decompress(stream, &kernel.display().to_string()).map_err(|source| {
        PvhError::Decompress {
            path: kernel.to_path_buf(),
            source,
        }
    })?;
    if !elf.starts_with(b"\x7fELF") || elf.len() != u32::from_le_bytes(*size) as usize {
        return Err(PvhError::NotElf {
            path: kernel.to_path_buf(),
        });
    }
    if !has_pvh_note(&elf) {
        return Err(PvhError::NoPvhNote {
            path: kernel.to_path_buf(),
        });
    }
    Ok(elf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A 64-bit ELF header with one PT_NOTE program header over `notes`.
    fn elf_with_notes(notes: &[u8]) -> Vec<u8> {
        let mut e = vec![0u8; 0x40 + 56];
        e[..6].copy_from_slice(b"\x7fELF\x02\x01");
        e[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        e[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        e[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        let ph = 0x40;
        e[ph..ph + 4].copy_from_slice(&PT_NOTE.to_le_bytes());
        let off = e.len() as u64;
        e[ph + 8..ph + 16].copy_from_slice(&off.to_le_bytes());
        e[ph + 32..ph + 40].copy_from_slice(&(notes.len() as u64).to_le_bytes());
        e.extend_from_slice(notes);
        e
    }

    fn note(name: &[u8], ty: u32, desc: &[u8]) -> Vec<u8> {
        let mut n = Vec::new();
        n.extend_from_slice(&(name.len() as u32).to_le_bytes());
        n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        n.extend_from_slice(&ty.to_le_bytes());
        n.extend_from_slice(name);
        n.resize(n.len().div_ceil(4) * 4, 0);
        n.extend_from_slice(desc);
        n.resize(n.len().div_ceil(4) * 4, 0);
        n
    }

    /// A bzImage-shaped file: 1 setup sector after the boot sector, the
    /// header fields `payload` reads, then `packed`.
    fn bzimage(packed: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 2 * 512];
        b[0x1f1] = 1;
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
        b[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
        b[0x24c..0x250].copy_from_slice(&(packed.len() as u32).to_le_bytes());
        // What follows the payload in the file is not part of it.
        b.extend_from_slice(&[0xaa; 16]);
        b.extend_from_slice(packed);
        b.extend_from_slice(&[0xbb; 4]);
        b
    }

    /// `elf` xz-compressed with its size appended, as the kernel build does.
    fn packed(elf: &[u8]) -> Vec<u8> {
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(elf).unwrap();
        let mut p = xz.finish().unwrap();
        p.extend_from_slice(&(elf.len() as u32).to_le_bytes());
        p
    }

    #[test]
    fn finds_the_pvh_note_among_others() {
        let mut notes = note(b"Xen\0", 6, b"linux\0");
        notes.extend(note(b"GNU\0", XEN_ELFNOTE_PHYS32_ENTRY, &[0; 4]));
        assert!(
            !has_pvh_note(&elf_with_notes(&notes)),
            "a GNU note of that type is not Xen's"
        );
        notes.extend(note(
            b"Xen\0",
            XEN_ELFNOTE_PHYS32_ENTRY,
            &0x100_0000u32.to_le_bytes(),
        ));
        assert!(has_pvh_note(&elf_with_notes(&notes)));
    }

    #[test]
    fn truncated_or_foreign_elf_has_no_note() {
        let full = elf_with_notes(&note(b"Xen\0", XEN_ELFNOTE_PHYS32_ENTRY, &[0; 4]));
        assert!(!has_pvh_note(&full[..full.len() - 8]));
        assert!(!has_pvh_note(b"\x7fELF\x01\x01"));
        assert!(!has_pvh_note(b""));
    }

    #[test]
    fn payload_follows_the_setup_header() {
        let b = bzimage(b"PAYLOAD");
        assert_eq!(payload(&b), Ok(b"PAYLOAD".as_slice()));
        let mut old = b.clone();
        old[0x206..0x208].copy_from_slice(&0x207u16.to_le_bytes());
        assert!(payload(&old).is_err());
        assert_eq!(payload(&b[..600]), Err("payload outside the file"));
        let mut long = b;
        long[0x24c..0x250].copy_from_slice(&1_000_000u32.to_le_bytes());
        assert_eq!(payload(&long), Err("payload outside the file"));
        assert_eq!(payload(b"MZ"), Err("no HdrS boot header"));
    }

    #[test]
    fn unpacks_once_into_the_cache() {
        let elf = elf_with_notes(&note(b"Xen\0", XEN_ELFNOTE_PHYS32_ENTRY, &[0; 4]));
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("vmlinuz");
        std::fs::write(&kernel, bzimage(&packed(&elf))).unwrap();
        let cache = dir.path().join("cache");
        let v = vmlinux(&kernel, &cache).unwrap();
        assert_eq!(std::fs::read(&v).unwrap(), elf);
        assert_eq!(vmlinux(&kernel, &cache).unwrap(), v);
        assert_eq!(std::fs::read_dir(cache.join("pvh")).unwrap().count(), 1);
    }

    #[test]
    fn a_kernel_without_pvh_is_refused_and_nothing_cached() {
        let elf = elf_with_notes(&note(b"Xen\0", 6, b"linux\0"));
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("vmlinuz");
        std::fs::write(&kernel, bzimage(&packed(&elf))).unwrap();
        let err = vmlinux(&kernel, &dir.path().join("c")).unwrap_err();
        assert!(matches!(err, PvhError::NoPvhNote { .. }), "{err}");
        assert!(!dir.path().join("c").exists());
        std::fs::write(&kernel, b"not a kernel").unwrap();
        let err = vmlinux(&kernel, &dir.path().join("c")).unwrap_err();
        assert!(err.to_string().contains("is not a bzImage"), "{err}");
        // A size that disagrees with the stream: not taken.
        let mut p = packed(&elf_with_notes(&note(
            b"Xen\0",
            XEN_ELFNOTE_PHYS32_ENTRY,
            &[0; 4],
        )));
        let n = p.len();
        p[n - 4] ^= 1;
        std::fs::write(&kernel, bzimage(&p)).unwrap();
        let err = vmlinux(&kernel, &dir.path().join("c")).unwrap_err();
        assert!(matches!(err, PvhError::NotElf { .. }), "{err}");
        assert!(!dir.path().join("c").exists());
    }
}
