//! The image's data runs and holes, from SEEK_DATA / SEEK_HOLE (as the ext4
//! writer finds a source file's data), in units of the destination's
//! block: a run is widened to whole blocks, a hole narrowed to them, so
//! every byte of data is sent and only whole blocks are zeroed.

use std::fs::File;
use std::io;

use rustix::fs::SeekFrom;

/// A byte range `[start, end)` of the image, block-aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub start: u64,
    pub end: u64,
}

impl Run {
    /// Its length, bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// The image's layout at some block size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The image size rounded up to the block size: what the destination
    /// must hold.
    pub size: u64,
    /// Ranges holding data, in order, disjoint.
    pub data: Vec<Run>,
    /// The rest of `[0, size)`, in order.
    pub holes: Vec<Run>,
}

impl Layout {
    /// Bytes of data.
    pub fn data_bytes(&self) -> u64 {
        self.data.iter().map(Run::len).sum()
    }

    /// Bytes of holes.
    pub fn hole_bytes(&self) -> u64 {
        self.holes.iter().map(Run::len).sum()
    }
}

/// Byte ranges of `file` (of `size` bytes) that hold data, as the file
/// system reports them. A file system without SEEK_DATA reports one run.
pub fn data_ranges(file: &File, size: u64) -> io::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let data = match rustix::fs::seek(file, SeekFrom::Data(pos)) {
            Ok(d) => d,
            Err(rustix::io::Errno::NXIO) => break,
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOTSUP) => {
                return Ok(vec![(0, size)]);
            }
            Err(e) => return Err(e.into()),
        };
        if data >= size {
            break;
        }
        let hole = rustix::fs::seek(file, SeekFrom::Hole(data))?.min(size);
        out.push((data, hole));
        pos = hole.max(data + 1);
    }
    Ok(out)
}

/// Lays `ranges` (of an image of `size` bytes) out in `block`-byte units.
pub fn layout(ranges: &[(u64, u64)], size: u64, block: u64) -> Layout {
    let block = block.max(1);
    let total = size.div_ceil(block) * block;
    let mut data: Vec<Run> = Vec::new();
    for &(s, e) in ranges {
        let start = s / block * block;
        let end = (e.div_ceil(block) * block).min(total);
        if end <= start {
            continue;
        }
        match data.last_mut() {
            Some(last) if last.end >= start => last.end = last.end.max(end),
            _ => data.push(Run { start, end }),
        }
    }
    let mut holes = Vec::new();
    let mut at = 0;
    for r in &data {
        if r.start > at {
            holes.push(Run {
                start: at,
                end: r.start,
            });
        }
        at = r.end;
    }
    if at < total {
        holes.push(Run {
            start: at,
            end: total,
        });
    }
    Layout {
        size: total,
        data,
        holes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn runs_widen_and_holes_narrow_to_blocks() {
        let l = layout(&[(100, 600), (4096, 8192), (8192, 9000)], 20_000, 512);
        assert_eq!(l.size, 20_480);
        assert_eq!(
            l.data,
            vec![
                Run {
                    start: 0,
                    end: 1024
                },
                Run {
                    start: 4096,
                    end: 9216
                }
            ]
        );
        assert_eq!(
            l.holes,
            vec![
                Run {
                    start: 1024,
                    end: 4096
                },
                Run {
                    start: 9216,
                    end: 20_480
                }
            ]
        );
        assert_eq!(l.data_bytes() + l.hole_bytes(), l.size);
        // Data up to the end; an image of no data is one hole.
        let l = layout(&[(0, 1000)], 1000, 4096);
        assert_eq!((l.size, l.holes.len()), (4096, 0));
        assert_eq!(
            layout(&[], 8192, 4096).holes,
            vec![Run {
                start: 0,
                end: 8192
            }]
        );
        assert_eq!(layout(&[], 0, 4096).holes, vec![]);
    }

    #[test]
    fn seek_data_finds_the_written_ranges() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("img");
        let f = File::create(&p).unwrap();
        let mib = 1 << 20;
        f.set_len(8 * mib).unwrap();
        f.write_all_at(b"x", 0).unwrap();
        f.write_all_at(&vec![7u8; 2 * mib as usize], 3 * mib)
            .unwrap();
        let f = File::open(&p).unwrap();
        let r = data_ranges(&f, 8 * mib).unwrap();
        // tmpfs and ext4 report holes; a file system without them one run.
        if r.len() > 1 {
            assert_eq!(r[0].0, 0);
            assert!(r[0].1 <= mib, "{r:?}");
            assert_eq!(r[1], (3 * mib, 5 * mib));
        } else {
            assert_eq!(r, vec![(0, 8 * mib)]);
        }
    }
}
