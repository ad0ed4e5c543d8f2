//! Local destinations of a push: a file (`file` storage), written as a new
//! sparse file beside the old one and renamed over it, and a block device
//! (`phy` storage), written in place with its holes zeroed by the kernel.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{FallocateFlags, Mode, OFlags};

use crate::storage::sink::{Sink, SinkError};

/// Why a local push failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// A file or device could not be opened, written or synced.
    #[error("{path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    /// The destination is the image itself.
    #[error("{path} is the image itself: it is already in place")]
    SameFile { path: PathBuf },
    /// `phy` storage that is not a block device.
    #[error("{path}: not a block device (phy storage is a device every Xen host has)")]
    NotBlockDevice { path: PathBuf },
}

fn io<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> LocalError + 'a {
    move |source| LocalError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// `file` storage: a new file of the image's size in the destination's
/// directory, renamed over the destination by [`Sink::finish`] (until
/// then the destination is untouched, and dropping removes the new file).
#[derive(Debug)]
pub struct LocalFile {
    dest: PathBuf,
    tmp: PathBuf,
    file: File,
    size: u64,
    renamed: bool,
}

impl LocalFile {
    /// Creates the new file beside `dest`, `size` bytes, all a hole.
    pub fn create(dest: &Path, image: &Path, size: u64) -> Result<LocalFile, LocalError> {
        if let (Ok(a), Ok(b)) = (std::fs::metadata(dest), std::fs::metadata(image)) {
            if (a.dev(), a.ino()) == (b.dev(), b.ino()) {
                return Err(LocalError::SameFile {
                    path: dest.to_path_buf(),
                });
            }
        }
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dest.with_file_name(format!(".{name}.imgrun-push-{}", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(io(&tmp, "cannot create"))?;
        let f = LocalFile {
            dest: dest.to_path_buf(),
            tmp,
            file,
            size,
            renamed: false,
        };
        f.file.set_len(size).map_err(io(&f.tmp, "cannot size"))?;
        Ok(f)
    }
}

impl Drop for LocalFile {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl Sink for LocalFile {
    fn describe(&self) -> String {
        format!("file {}", self.dest.display())
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn block_size(&self) -> u64 {
        512
    }

    fn max_write(&self) -> usize {
        4 << 20
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), SinkError> {
        Ok(self
            .file
            .write_all_at(data, offset)
            .map_err(io(&self.tmp, "cannot write"))?)
    }

    fn zero(&mut self, _offset: u64, _len: u64) -> Result<(), SinkError> {
        // A new file: its holes read as zeros already.
        Ok(())
    }

    fn zero_method(&self) -> &'static str {
        "left as holes in a new file"
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.file.sync_all().map_err(io(&self.tmp, "cannot sync"))?;
        std::fs::rename(&self.tmp, &self.dest)
            .map_err(io(&self.dest, "cannot rename the new file to"))?;
        self.renamed = true;
        if let Some(dir) = self.dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io(dir, "cannot sync the directory"))?;
        }
        Ok(())
    }

    fn wire_bytes(&self) -> u64 {
        0
    }

    fn interrupted_state(&self) -> &'static str {
        "is unchanged (the copy went to a temporary file, now removed)"
    }
}

/// `phy` storage: a block device, opened exclusively (not while mounted
/// or in use by a domain), written in place.
#[derive(Debug)]
pub struct LocalDevice {
    path: PathBuf,
    file: File,
    size: u64,
}

impl LocalDevice {
    /// Opens `path`, which must be a block device.
    pub fn open(path: &Path) -> Result<LocalDevice, LocalError> {
        let m = std::fs::metadata(path).map_err(io(path, "cannot open"))?;
        if !m.file_type().is_block_device() {
            return Err(LocalError::NotBlockDevice {
                path: path.to_path_buf(),
            });
        }
        let fd = rustix::fs::open(
            path,
            OFlags::WRONLY | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io(path, "cannot open exclusively (mounted, or in use?)")(e.into()))?;
        let mut file = File::from(fd);
        let size = file
            .seek(SeekFrom::End(0))
            .map_err(io(path, "cannot size"))?;
        Ok(LocalDevice {
            path: path.to_path_buf(),
            file,
            size,
        })
    }

    fn fallocate(&self, mode: FallocateFlags, offset: u64, len: u64) -> rustix::io::Result<()> {
        rustix::fs::fallocate(&self.file, mode | FallocateFlags::KEEP_SIZE, offset, len)
    }
}

impl Sink for LocalDevice {
    fn describe(&self) -> String {
        format!("device {}", self.path.display())
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn block_size(&self) -> u64 {
        512
    }

    fn max_write(&self) -> usize {
        4 << 20
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), SinkError> {
        Ok(self
            .file
            .write_all_at(data, offset)
            .map_err(io(&self.path, "cannot write"))?)
    }

    /// Hole punching, which a block device does only with a write-zeroes
    /// offload (no fallback to writing zeros).
    fn zero(&mut self, offset: u64, len: u64) -> Result<(), SinkError> {
        match self.fallocate(FallocateFlags::PUNCH_HOLE, offset, len) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::OPNOTSUPP) => Err(SinkError::CannotZero(format!(
                "{} cannot punch holes (no write-zeroes offload)",
                self.describe()
            ))),
            Err(e) => Err(io(&self.path, "cannot punch a hole")(e.into()).into()),
        }
    }

    fn zero_method(&self) -> &'static str {
        "hole punching"
    }

    /// The kernel's zeroing (`FALLOC_FL_ZERO_RANGE`, the call behind the
    /// `BLKZEROOUT` ioctl), which writes zeros where the device has no
    /// offload; plain zero blocks if even that is refused.
    fn write_zeros(&mut self, offset: u64, len: u64) -> Result<(), SinkError> {
        match self.fallocate(FallocateFlags::ZERO_RANGE, offset, len) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::OPNOTSUPP) => {
                let zeros = vec![0u8; 1 << 20];
                let mut done = 0;
                while done < len {
                    let n = (len - done).min(zeros.len() as u64);
                    self.write(offset + done, zeros.get(..n as usize).unwrap_or_default())?;
                    done += n;
                }
                Ok(())
            }
            Err(e) => Err(io(&self.path, "cannot zero a range")(e.into()).into()),
        }
    }

    fn write_zeros_method(&self) -> &'static str {
        "the kernel's zero-range (BLKZEROOUT)"
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(self
            .file
            .sync_all()
            .map_err(io(&self.path, "cannot sync"))?)
    }

    fn wire_bytes(&self) -> u64 {
        0
    }
}
