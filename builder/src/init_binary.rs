//! The init binary put in both images: the one embedded at build time (see
//! `build.rs`), or `IMGBUILD_INIT=/path` at run time. Either way it must be a
//! static x86_64 ELF executable: no `PT_INTERP`, no `DT_NEEDED`.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use goblin::elf::Elf;
use goblin::elf::header::{EM_X86_64, ET_DYN, ET_EXEC};
use goblin::elf::program_header::PT_INTERP;

/// The init built by `build.rs` (empty if that build failed).
static EMBEDDED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/imgbuild-init"));

/// Environment variable naming an init binary to use instead of the embedded one.
pub const ENV_OVERRIDE: &str = "IMGBUILD_INIT";

/// Why the init binary cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InitBinaryError {
    /// No embedded init and no override.
    #[error(
        "this imgbuild has no embedded init (its nested build failed); set {ENV_OVERRIDE}=/path/to/static/imgbuild-init"
    )]
    Missing,
    /// The override cannot be read.
    #[error("cannot read init binary {path} (from {ENV_OVERRIDE}): {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not an ELF file we can run.
    #[error("init binary {what} is not an x86_64 ELF executable: {reason}")]
    NotElf {
        /// Which binary.
        what: String,
        /// Why.
        reason: String,
    },
    /// Dynamically linked: it would not run as PID 1 in a guest without libc.
    #[error(
        "init binary {what} is not static: {reason}; PID 1 must be statically linked (build with -C target-feature=+crt-static)"
    )]
    Dynamic {
        /// Which binary.
        what: String,
        /// Why.
        reason: String,
    },
}

/// The init binary to install, checked to be static.
#[derive(Debug, Clone)]
pub struct InitBinary {
    /// Its bytes.
    pub bytes: Cow<'static, [u8]>,
    /// Where it came from, for messages.
    pub origin: String,
}

impl InitBinary {
    /// The override from `IMGBUILD_INIT` if set, else the embedded init.
    pub fn locate() -> Result<InitBinary, InitBinaryError> {
        match std::env::var_os(ENV_OVERRIDE) {
            Some(p) if !p.is_empty() => InitBinary::from_path(Path::new(&p)),
            _ => InitBinary::embedded(),
        }
    }

    /// The embedded init.
    pub fn embedded() -> Result<InitBinary, InitBinaryError> {
        if EMBEDDED.is_empty() {
            return Err(InitBinaryError::Missing);
        }
        check_static(EMBEDDED, "(embedded)")?;
        Ok(InitBinary {
            bytes: Cow::Borrowed(EMBEDDED),
            origin: "embedded".into(),
        })
    }

    /// An init binary from a file.
    pub fn from_path(path: &Path) -> Result<InitBinary, InitBinaryError> {
        let bytes = std::fs::read(path).map_err(|source| InitBinaryError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let origin = path.display().to_string();
        check_static(&bytes, &origin)?;
        Ok(InitBinary {
            bytes: Cow::Owned(bytes),
            origin,
        })
    }
}

/// Refuses anything but a static x86_64 ELF executable.
pub fn check_static(bytes: &[u8], what: &str) -> Result<(), InitBinaryError> {
    let elf = Elf::parse(bytes).map_err(|e| InitBinaryError::NotElf {
        what: what.into(),
        reason: e.to_string(),
    })?;
    if !elf.is_64 || elf.header.e_machine != EM_X86_64 {
        return Err(InitBinaryError::NotElf {
            what: what.into(),
            reason: "not a 64-bit x86_64 binary".into(),
        });
    }
    if elf.header.e_type != ET_EXEC && elf.header.e_type != ET_DYN {
        return Err(InitBinaryError::NotElf {
            what: what.into(),
            reason: "not an executable".into(),
        });
    }
    if let Some(ph) = elf.program_headers.iter().find(|p| p.p_type == PT_INTERP) {
        let interp = elf
            .interpreter
            .map(str::to_owned)
            .unwrap_or_else(|| format!("at offset {:#x}", ph.p_offset));
        return Err(InitBinaryError::Dynamic {
            what: what.into(),
            reason: format!("it has a program interpreter (PT_INTERP {interp})"),
        });
    }
    if !elf.libraries.is_empty() {
        return Err(InitBinaryError::Dynamic {
            what: what.into(),
            reason: format!(
                "it needs shared libraries (DT_NEEDED {})",
                elf.libraries.join(", ")
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_dynamic_binary() {
        let e = InitBinary::from_path(Path::new("/bin/true")).unwrap_err();
        assert!(matches!(e, InitBinaryError::Dynamic { .. }), "{e}");
        assert!(e.to_string().contains("PT_INTERP"), "{e}");
    }

    #[test]
    fn refuses_non_elf() {
        let e = check_static(b"#!/bin/sh\necho hi\n", "script").unwrap_err();
        assert!(matches!(e, InitBinaryError::NotElf { .. }), "{e}");
    }

    #[test]
    fn accepts_static_busybox_if_present() {
        // Debian's busybox-static (if installed on the build host) is a static ELF.
        let p = Path::new("/bin/busybox");
        if let Ok(bytes) = std::fs::read(p) {
            if Elf::parse(&bytes)
                .map(|e| e.interpreter.is_none())
                .unwrap_or(false)
            {
                check_static(&bytes, "busybox").unwrap();
            }
        }
    }

    #[test]
    fn embedded_init_is_static_when_present() {
        if !EMBEDDED.is_empty() {
            check_static(EMBEDDED, "embedded").unwrap();
        }
    }
}
