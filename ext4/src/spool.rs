//! The spool: one unlinked temporary file per [`crate::FsBuilder::add_tar`] call,
//! holding the contents of the archive's files until the image is written. Each
//! file gets a block-aligned stretch; a sparse member's holes are not written
//! (they are holes in the spool, where its filesystem has them, and in the image).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};

use crate::error::Error;
use crate::options::FileRegion;

pub(crate) struct Spool {
    file: Arc<File>,
    dir: PathBuf,
    /// Where the next stretch starts.
    end: u64,
    align: u64,
    buf: Vec<u8>,
}

/// An unlinked file in `dir`: `O_TMPFILE`, else a new name removed at once.
fn unlinked(dir: &std::path::Path) -> std::io::Result<File> {
    let rw = OFlags::RDWR | OFlags::CLOEXEC;
    match rustix::fs::open(dir, rw | OFlags::TMPFILE, Mode::from_raw_mode(0o600)) {
        Ok(fd) => return Ok(File::from(fd)),
        Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR | rustix::io::Errno::INVAL) => {
        }
        Err(e) => return Err(e.into()),
    }
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    loop {
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = dir.join(format!(".ext4fs-spool-{}-{n}", std::process::id()));
        match rustix::fs::open(
            &p,
            rw | OFlags::CREATE | OFlags::EXCL,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => {
                std::fs::remove_file(&p)?;
                return Ok(File::from(fd));
            }
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

impl Spool {
    /// A new spool in the temporary directory, its stretches aligned to `align` bytes.
    pub fn new(align: u32) -> Result<Spool, Error> {
        let dir = std::env::temp_dir();
        let file = unlinked(&dir).map_err(|source| Error::Spool {
            dir: dir.clone(),
            source,
        })?;
        Ok(Spool {
            file: Arc::new(file),
            dir,
            end: 0,
            align: u64::from(align.max(512)),
            buf: Vec::new(),
        })
    }

    /// Spools a file of `size` bytes whose data segments `map` ((offset, length),
    /// in order) are read, one after the other, by `read` (which fills the buffer
    /// it is given).
    pub fn take(
        &mut self,
        read: &mut dyn FnMut(&mut [u8]) -> Result<(), Error>,
        size: u64,
        mut map: Vec<(u64, u64)>,
    ) -> Result<FileRegion, Error> {
        let base = self.end.next_multiple_of(self.align);
        if self.buf.is_empty() {
            self.buf = vec![0u8; 1 << 20];
        }
        for &(off, len) in &map {
            let mut done = 0u64;
            while done < len {
                let k = (len - done).min(self.buf.len() as u64) as usize;
                read(&mut self.buf[..k])?;
                self.file
                    .write_all_at(&self.buf[..k], base + off + done)
                    .map_err(|source| Error::Spool {
                        dir: self.dir.clone(),
                        source,
                    })?;
                done += k as u64;
            }
        }
        self.end = base + size;
        map.retain(|&(_, l)| l > 0);
        map.sort_unstable();
        Ok(FileRegion::new(Arc::clone(&self.file), base, size)
            .with_data(map.into_iter().map(|(o, l)| (o, o + l)).collect()))
    }
}
