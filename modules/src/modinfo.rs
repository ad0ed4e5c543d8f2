//! The `.modinfo` section of a kernel module: NUL-separated `key=value`
//! strings (`name=`, `depends=`, `vermagic=`, `alias=`, `license=`, …).

use std::path::Path;

use crate::decompress::{self, DecompressError};

/// The parsed `.modinfo` of one module.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModInfo {
    /// Every `key=value` pair, in section order (keys may repeat, e.g. `alias`).
    pub fields: Vec<(String, String)>,
}

/// A module's `.modinfo` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ModInfoError {
    /// The file could not be read or decompressed.
    #[error(transparent)]
    Decompress(#[from] DecompressError),
    /// The bytes are not an ELF object goblin can parse.
    #[error("{what}: not a valid ELF module: {message}")]
    NotElf {
        /// The module (file path or `<memory>`).
        what: String,
        /// goblin's message.
        message: String,
    },
    /// The ELF object has no `.modinfo` section.
    #[error("{what}: no .modinfo section (not a kernel module?)")]
    NoModinfo {
        /// The module.
        what: String,
    },
    /// The `.modinfo` section lies outside the file.
    #[error("{what}: .modinfo section is out of the file's bounds")]
    Truncated {
        /// The module.
        what: String,
    },
}

impl ModInfo {
    /// Parses the raw contents of a `.modinfo` section. Empty strings (padding)
    /// and strings without `=` are ignored.
    pub fn parse_section(data: &[u8]) -> ModInfo {
        let fields = data
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .filter_map(|s| {
                let s = String::from_utf8_lossy(s);
                let (k, v) = s.split_once('=')?;
                Some((k.to_owned(), v.to_owned()))
            })
            .collect();
        ModInfo { fields }
    }

    /// Reads `.modinfo` from a plain (decompressed) ELF module held in memory;
    /// `what` names it in errors.
    pub fn from_elf(bytes: &[u8], what: &str) -> Result<ModInfo, ModInfoError> {
        let elf = goblin::elf::Elf::parse(bytes).map_err(|e| ModInfoError::NotElf {
            what: what.to_owned(),
            message: e.to_string(),
        })?;
        let sh = elf
            .section_headers
            .iter()
            .find(|sh| elf.shdr_strtab.get_at(sh.sh_name) == Some(".modinfo"))
            .ok_or_else(|| ModInfoError::NoModinfo {
                what: what.to_owned(),
            })?;
        let range = usize::try_from(sh.sh_offset)
            .ok()
            .zip(usize::try_from(sh.sh_size).ok())
            .and_then(|(off, len)| Some(off..off.checked_add(len)?));
        let data = range
            .and_then(|r| bytes.get(r))
            .ok_or_else(|| ModInfoError::Truncated {
                what: what.to_owned(),
            })?;
        Ok(ModInfo::parse_section(data))
    }

    /// Reads `.modinfo` from a module file (`.ko`, `.ko.xz`, `.ko.zst`, `.ko.gz`).
    pub fn from_file(path: &Path) -> Result<ModInfo, ModInfoError> {
        let bytes = decompress::read_module(path)?;
        ModInfo::from_elf(&bytes, &path.display().to_string())
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in section order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `name=` (the module's own name, as the kernel knows it).
    pub fn name(&self) -> Option<&str> {
        self.get("name")
    }

    /// `depends=`: the modules this one needs, comma-separated in the section.
    pub fn depends(&self) -> Vec<String> {
        self.get("depends")
            .map(|d| {
                d.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `vermagic=`, e.g. `6.1.0-56-amd64 SMP preempt mod_unload modversions`.
    pub fn vermagic(&self) -> Option<&str> {
        self.get("vermagic")
    }

    /// The kernel version the module was built for: the first word of `vermagic`.
    pub fn kernel_version(&self) -> Option<&str> {
        self.vermagic()?.split_whitespace().next()
    }

    /// `alias=` values (device match patterns).
    pub fn aliases(&self) -> Vec<&str> {
        self.get_all("alias").collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a minimal ELF64 little-endian relocatable object with a
    /// `.modinfo` section holding `modinfo` (test fixture; what the kernel
    /// build writes has more sections, which the reader must ignore).
    pub(crate) fn fake_module(modinfo: &[u8]) -> Vec<u8> {
        let shstrtab: &[u8] = b"\0.modinfo\0.shstrtab\0.text\0";
        let text: &[u8] = &[0xc3; 8];
        let ehsize = 64u64;
        let text_off = ehsize;
        let modinfo_off = text_off + text.len() as u64;
        let shstr_off = modinfo_off + modinfo.len() as u64;
        let sh_off = (shstr_off + shstrtab.len() as u64).next_multiple_of(8);
        let mut out = Vec::new();
        out.extend_from_slice(b"\x7fELF");
        out.extend_from_slice(&[2, 1, 1, 0]); // 64-bit, little endian, version 1, SysV
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&1u16.to_le_bytes()); // e_type ET_REL
        out.extend_from_slice(&62u16.to_le_bytes()); // e_machine x86-64
        out.extend_from_slice(&1u32.to_le_bytes()); // e_version
        out.extend_from_slice(&0u64.to_le_bytes()); // e_entry
        out.extend_from_slice(&0u64.to_le_bytes()); // e_phoff
        out.extend_from_slice(&sh_off.to_le_bytes()); // e_shoff
        out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        out.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
        out.extend_from_slice(&0u16.to_le_bytes()); // e_phentsize
        out.extend_from_slice(&0u16.to_le_bytes()); // e_phnum
        out.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
        out.extend_from_slice(&4u16.to_le_bytes()); // e_shnum
        out.extend_from_slice(&2u16.to_le_bytes()); // e_shstrndx
        out.extend_from_slice(text);
        out.extend_from_slice(modinfo);
        out.extend_from_slice(shstrtab);
        out.resize(usize::try_from(sh_off).unwrap(), 0);
        let mut sh = |name: u32, ty: u32, off: u64, size: u64| {
            out.extend_from_slice(&name.to_le_bytes());
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(&0u64.to_le_bytes()); // sh_flags
            out.extend_from_slice(&0u64.to_le_bytes()); // sh_addr
            out.extend_from_slice(&off.to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes()); // sh_link
            out.extend_from_slice(&0u32.to_le_bytes()); // sh_info
            out.extend_from_slice(&1u64.to_le_bytes()); // sh_addralign
            out.extend_from_slice(&0u64.to_le_bytes()); // sh_entsize
        };
        sh(0, 0, 0, 0);
        sh(1, 1, modinfo_off, modinfo.len() as u64); // .modinfo PROGBITS
        sh(10, 3, shstr_off, shstrtab.len() as u64); // .shstrtab STRTAB
        sh(20, 1, text_off, text.len() as u64); // .text
        out
    }

    const SECTION: &[u8] = b"alias=virtio:d00000001v*\0depends=net_failover,failover\0\0\0\
retpoline=Y\0intree=Y\0name=virtio_net\0vermagic=6.1.0-56-amd64 SMP preempt mod_unload modversions \0\
alias=virtio:d00000002v*\0license=GPL\0";

    #[test]
    fn section_fields() {
        let info = ModInfo::parse_section(SECTION);
        assert_eq!(info.name(), Some("virtio_net"));
        assert_eq!(info.depends(), ["net_failover", "failover"]);
        assert_eq!(info.kernel_version(), Some("6.1.0-56-amd64"));
        assert_eq!(info.aliases(), ["virtio:d00000001v*", "virtio:d00000002v*"]);
        assert_eq!(info.get("license"), Some("GPL"));
        assert_eq!(info.get("nope"), None);
        let none = ModInfo::parse_section(b"depends=\0");
        assert!(none.depends().is_empty());
        assert_eq!(none.kernel_version(), None);
    }

    #[test]
    fn reads_elf_objects() {
        let elf = fake_module(SECTION);
        let info = ModInfo::from_elf(&elf, "virtio_net.ko").unwrap();
        assert_eq!(info, ModInfo::parse_section(SECTION));
    }

    #[test]
    fn errors_name_the_module() {
        let err = ModInfo::from_elf(b"not an elf at all", "junk.ko").unwrap_err();
        assert!(matches!(err, ModInfoError::NotElf { .. }));
        assert!(err.to_string().starts_with("junk.ko:"), "{err}");

        let mut elf = fake_module(SECTION);
        // Rename the section so that there is no `.modinfo`.
        let pos = elf.windows(8).position(|w| w == b".modinfo").unwrap();
        elf[pos + 1] = b'X';
        let err = ModInfo::from_elf(&elf, "nomod.ko").unwrap_err();
        assert!(matches!(err, ModInfoError::NoModinfo { .. }), "{err}");
    }

    #[test]
    fn compressed_files() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("virtio_net.ko.xz");
        let mut enc = xz2::write::XzEncoder::new(Vec::new(), 6);
        enc.write_all(&fake_module(SECTION)).unwrap();
        std::fs::write(&p, enc.finish().unwrap()).unwrap();
        let info = ModInfo::from_file(&p).unwrap();
        assert_eq!(info.name(), Some("virtio_net"));
    }
}
