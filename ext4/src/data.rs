//! File contents: finding data ranges with SEEK_DATA/SEEK_HOLE and streaming them
//! into the image (copy_file_range, falling back to read/write).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Component;

use rustix::fs::{Mode, OFlags, SeekFrom};

use crate::error::Error;
use crate::extent::Extent;
use crate::options::FileRegion;

/// Longest path (in bytes) handed to the kernel in one piece; `PATH_MAX` is 4096
/// with the NUL.
const PATH_CHUNK: usize = 4000;

/// `openat` with `O_NOATIME` where the caller may use it (reading the source
/// leaves its access times alone), else without.
pub(crate) fn open_noatime<Fd: std::os::fd::AsFd>(
    dir: Fd,
    path: &[u8],
    flags: OFlags,
) -> rustix::io::Result<OwnedFd> {
    match rustix::fs::openat(&dir, path, flags | OFlags::NOATIME, Mode::empty()) {
        Err(rustix::io::Errno::PERM) => rustix::fs::openat(&dir, path, flags, Mode::empty()),
        r => r,
    }
}

/// Opens `path` with `flags` (and `O_NOATIME` where allowed), however long it
/// is: whole when it is shorter than `PATH_MAX`, else through `openat` from one
/// chunk of components to the next (intermediate chunks opened `O_PATH`, so only
/// search permission is needed, as for a whole path). Symlinks on the way are
/// followed as the kernel would.
pub(crate) fn open_long(path: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() < PATH_CHUNK {
        return open_noatime(rustix::fs::CWD, bytes, flags);
    }
    let mut dir: Option<OwnedFd> = None;
    let mut chunk: Vec<u8> = Vec::new();
    let comps: Vec<&[u8]> = path
        .components()
        .map(|c| match c {
            Component::RootDir => &b"/"[..],
            Component::CurDir => &b"."[..],
            Component::ParentDir => &b".."[..],
            Component::Normal(n) => n.as_bytes(),
            Component::Prefix(p) => p.as_os_str().as_bytes(),
        })
        .collect();
    let open_at = |dir: &Option<OwnedFd>, p: &[u8], flags: OFlags| match (dir, flags) {
        (Some(d), f) if f.contains(OFlags::PATH) => rustix::fs::openat(d, p, f, Mode::empty()),
        (None, f) if f.contains(OFlags::PATH) => {
            rustix::fs::openat(rustix::fs::CWD, p, f, Mode::empty())
        }
        (Some(d), f) => open_noatime(d, p, f),
        (None, f) => open_noatime(rustix::fs::CWD, p, f),
    };
    let step = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let last = comps.len().saturating_sub(1);
    for (i, c) in comps.iter().enumerate() {
        if !chunk.is_empty() && chunk.len() + 1 + c.len() >= PATH_CHUNK {
            dir = Some(open_at(&dir, &chunk, step)?);
            chunk.clear();
        }
        if !chunk.is_empty() && chunk != b"/" {
            chunk.push(b'/');
        }
        chunk.extend_from_slice(c);
        if i == last {
            return open_at(&dir, &chunk, flags);
        }
    }
    open_at(&dir, b".", flags)
}

/// Opens a host file for reading, however long its path.
pub(crate) fn open_source(path: &Path) -> Result<File, Error> {
    open_long(path, OFlags::RDONLY | OFlags::CLOEXEC)
        .map(File::from)
        .map_err(|e| Error::SourceRead {
            path: path.to_owned(),
            source: e.into(),
        })
}

/// Logical block ranges `[start, end)` holding data in a file of `size` bytes.
pub(crate) fn data_block_ranges(
    file: &File,
    path: &Path,
    size: u64,
    block_size: u32,
) -> Result<Vec<(u64, u64)>, Error> {
    let bs = u64::from(block_size);
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let data = match rustix::fs::seek(file, SeekFrom::Data(pos)) {
            Ok(d) => d,
            Err(rustix::io::Errno::NXIO) => break,
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOTSUP) => {
                // No hole support: all data.
                return Ok(vec![(0, size.div_ceil(bs))]);
            }
            Err(e) => {
                return Err(Error::SourceRead {
                    path: path.to_owned(),
                    source: e.into(),
                });
            }
        };
        if data >= size {
            break;
        }
        let hole = match rustix::fs::seek(file, SeekFrom::Hole(data)) {
            Ok(h) => h.min(size),
            Err(e) => {
                return Err(Error::SourceRead {
                    path: path.to_owned(),
                    source: e.into(),
                });
            }
        };
        let (s, e) = (data / bs, hole.div_ceil(bs));
        match out.last_mut() {
            Some(last) if last.1 >= s => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
        pos = hole.max(data + 1);
    }
    Ok(out)
}

/// Copies `len` bytes from `src` at `src_off` to `out` at `dst_off`.
/// Returns how many bytes were copied before the source ended.
fn copy_range(
    src: &File,
    out: &File,
    mut src_off: u64,
    mut dst_off: u64,
    len: u64,
    use_cfr: &mut bool,
    buf: &mut Vec<u8>,
) -> io::Result<u64> {
    let mut done = 0;
    while done < len && *use_cfr {
        let want = usize::try_from(len - done)
            .unwrap_or(usize::MAX)
            .min(1 << 30);
        match rustix::fs::copy_file_range(src, Some(&mut src_off), out, Some(&mut dst_off), want) {
            Ok(0) => return Ok(done),
            Ok(n) => done += n as u64,
            Err(
                rustix::io::Errno::XDEV
                | rustix::io::Errno::NOSYS
                | rustix::io::Errno::INVAL
                | rustix::io::Errno::NOTSUP,
            ) => {
                *use_cfr = false;
            }
            Err(e) => return Err(e.into()),
        }
    }
    if buf.is_empty() && done < len {
        buf.resize(1 << 20, 0);
    }
    while done < len {
        let want = usize::try_from(len - done)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = src.read_at(&mut buf[..want], src_off)?;
        if n == 0 {
            return Ok(done);
        }
        out.write_all_at(&buf[..n], dst_off)?;
        src_off += n as u64;
        dst_off += n as u64;
        done += n as u64;
    }
    Ok(done)
}

/// Streams a host file's data blocks into the image at its extents; checks the size held.
pub(crate) struct Copier {
    use_cfr: bool,
    buf: Vec<u8>,
}

impl Copier {
    pub fn new() -> Self {
        Copier {
            use_cfr: true,
            buf: Vec::new(),
        }
    }

    pub fn copy_file(
        &mut self,
        path: &Path,
        size: u64,
        extents: &[Extent],
        block_size: u32,
        out: &File,
        out_path: &Path,
    ) -> Result<(), Error> {
        let src = open_source(path)?;
        let bs = u64::from(block_size);
        let changed = |actual| Error::SourceChanged {
            path: path.to_owned(),
            expected: size,
            actual,
        };
        for x in extents {
            let src_off = u64::from(x.ee_block) * bs;
            let len = (u64::from(x.ee_len) * bs).min(size.saturating_sub(src_off));
            let n = copy_range(
                &src,
                out,
                src_off,
                x.start.0 * bs,
                len,
                &mut self.use_cfr,
                &mut self.buf,
            )
            .map_err(|e| {
                // Tell a source read failure from an image write failure by asking the source.
                match src.metadata() {
                    Ok(_) if e.kind() != io::ErrorKind::InvalidData => Error::Output {
                        path: out_path.to_owned(),
                        source: e,
                    },
                    _ => Error::SourceRead {
                        path: path.to_owned(),
                        source: e,
                    },
                }
            })?;
            if n < len {
                return Err(changed(src_off + n));
            }
        }
        let now = src
            .metadata()
            .map_err(|e| Error::SourceRead {
                path: path.to_owned(),
                source: e,
            })?
            .len();
        if now != size {
            return Err(changed(now));
        }
        Ok(())
    }

    /// Copies a [`FileRegion`]'s data blocks into the image at its extents.
    pub fn copy_region(
        &mut self,
        r: &FileRegion,
        extents: &[Extent],
        block_size: u32,
        out: &File,
        out_path: &Path,
    ) -> Result<(), Error> {
        let bs = u64::from(block_size);
        for x in extents {
            let off = u64::from(x.ee_block) * bs;
            let len = (u64::from(x.ee_len) * bs).min(r.size().saturating_sub(off));
            let n = copy_range(
                r.file(),
                out,
                r.offset() + off,
                x.start.0 * bs,
                len,
                &mut self.use_cfr,
                &mut self.buf,
            )
            .map_err(|e| Error::Output {
                path: out_path.to_owned(),
                source: e,
            })?;
            if n < len {
                return Err(Error::Output {
                    path: out_path.to_owned(),
                    source: io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "a spooled file region ends early",
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Logical block ranges `[start, end)` covering a region's data ranges.
pub(crate) fn region_block_ranges(r: &FileRegion, block_size: u32) -> Vec<(u64, u64)> {
    let bs = u64::from(block_size);
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &(s, e) in r.data() {
        let e = e.min(r.size());
        if e <= s {
            continue;
        }
        let (s, e) = (s / bs, e.div_ceil(bs));
        match out.last_mut() {
            Some(last) if last.1 >= s => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}
