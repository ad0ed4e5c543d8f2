//! `imgrun storage push`: the guest's root image onto its storage, sparsely.
//! The image's holes are zeroed by the destination (NBD_CMD_WRITE_ZEROES,
//! WRITE SAME, hole punching: a few bytes on the wire each), then its data
//! runs are written; zeros are sent only when the user allows it
//! (`--zero-holes`) and the destination cannot zero, and not even zeroed
//! when the user says the destination is fresh (`--assume-zeroed`).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use guest_contract::storage::Storage;

use crate::cancel::Cancel;
use crate::storage::iscsi::IscsiTarget;
use crate::storage::iscsi_lun::IscsiLun;
use crate::storage::local::{LocalDevice, LocalFile};
use crate::storage::nbd::NbdClient;
use crate::storage::runs::{self, Run};
use crate::storage::sink::{Sink, SinkError};

pub use crate::storage::push_summary::{PushEvent, PushSummary, human};

/// The most bytes one zeroing or writing step covers: a Ctrl-C is noticed
/// between steps, and progress is reported after them.
const STEP: u64 = 256 << 20;
/// The largest write buffer.
const MAX_CHUNK: usize = 4 << 20;

/// What to do with the image's holes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holes {
    /// Have the destination zero them; fail if it cannot.
    Zero,
    /// As [`Holes::Zero`], but send zeros where the destination cannot
    /// zero (`--zero-holes`).
    ZeroOrSend,
    /// Leave them: the destination is known to read as zeros (`--assume-zeroed`).
    Skip,
}

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    pub holes: Holes,
    /// How long a server may make no progress.
    pub timeout: Duration,
    /// Our iSCSI name ([`crate::storage::iscsi::initiator_name`]).
    pub initiator: String,
}

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The image could not be read.
    #[error("{path}: {source}")]
    Image {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The destination could not be opened (or failed while being written).
    #[error(transparent)]
    Sink(SinkError),
    /// The destination is smaller than the image.
    #[error("{destination} holds {} ({size} bytes), smaller than the image's {} ({image} bytes)", human(*size), human(*image))]
    TooSmall {
        destination: String,
        size: u64,
        image: u64,
    },
    /// The destination cannot zero the image's holes, and the user allowed
    /// neither sending zeros nor skipping them.
    #[error("{why}; the image has {} of holes in {ranges} ranges: pass --assume-zeroed if the destination is new (reads as zeros), or --zero-holes to send zeros for them", human(*hole_bytes))]
    CannotZero {
        why: String,
        hole_bytes: u64,
        ranges: usize,
    },
    /// Ctrl-C (or SIGTERM) arrived.
    #[error("interrupted after {} of {}: {destination} {state}", human(*done), human(*total))]
    Interrupted {
        destination: String,
        state: &'static str,
        done: u64,
        total: u64,
    },
}

/// The destination `storage` names, as the summary names an open one.
pub fn describe(storage: &Storage) -> String {
    match storage {
        Storage::File { path } => format!("file {path}"),
        Storage::Phy { device } => format!("device {device}"),
        Storage::Iscsi {
            target,
            portal,
            lun,
        } => format!("iscsi {target}@{portal} lun {lun}"),
        Storage::Nbd { server, export } => format!("nbd {server} export {:?}", export.as_str()),
    }
}

/// Opens the destination `storage` names for an image of `image_size` bytes.
pub fn open(
    storage: &Storage,
    image: &Path,
    image_size: u64,
    o: &PushOptions,
    cancel: &Cancel,
) -> Result<Box<dyn Sink>, PushError> {
    open_sink(storage, image, image_size, o, cancel).map_err(|e| match e {
        PushError::Sink(SinkError::Interrupted) => PushError::Interrupted {
            destination: describe(storage),
            state: "was not written to",
            done: 0,
            total: image_size,
        },
        e => e,
    })
}

fn open_sink(
    storage: &Storage,
    image: &Path,
    image_size: u64,
    o: &PushOptions,
    cancel: &Cancel,
) -> Result<Box<dyn Sink>, PushError> {
    let sink: Box<dyn Sink> = match storage {
        Storage::File { path } => Box::new(
            LocalFile::create(Path::new(path), image, image_size)
                .map_err(|e| PushError::Sink(e.into()))?,
        ),
        Storage::Phy { device } => {
            Box::new(LocalDevice::open(Path::new(device)).map_err(|e| PushError::Sink(e.into()))?)
        }
        Storage::Iscsi {
            target,
            portal,
            lun,
        } => {
            let host = portal.ip().to_string();
            let t = IscsiTarget {
                host: &host,
                port: portal.port(),
                target: target.as_str(),
                lun: *lun,
                initiator: &o.initiator,
            };
            Box::new(IscsiLun::open(&t, o.timeout, cancel).map_err(|e| sink_error(e.into()))?)
        }
        Storage::Nbd { server, export } => {
            let host = server.host().to_string();
            Box::new(
                NbdClient::connect(&host, server.port(), export.as_str(), o.timeout, cancel)
                    .map_err(|e| sink_error(e.into()))?,
            )
        }
    };
    Ok(sink)
}

fn sink_error(e: SinkError) -> PushError {
    match e {
        SinkError::Nbd(n) if n.is_interrupted() => PushError::Sink(SinkError::Interrupted),
        SinkError::Iscsi(i) if i.is_interrupted() => PushError::Sink(SinkError::Interrupted),
        e => PushError::Sink(e),
    }
}

/// Pushes `image` to `storage`.
pub fn push(
    image: &Path,
    storage: &Storage,
    o: &PushOptions,
    cancel: &Cancel,
    progress: &mut dyn FnMut(&PushEvent),
) -> Result<PushSummary, PushError> {
    let started = Instant::now();
    let file = File::open(image).map_err(|source| PushError::Image {
        path: image.to_path_buf(),
        source,
    })?;
    let size = file
        .metadata()
        .map_err(|source| PushError::Image {
            path: image.to_path_buf(),
            source,
        })?
        .len();
    let mut sink = open(storage, image, size, o, cancel)?;
    push_to(
        image,
        &file,
        sink.as_mut(),
        o.holes,
        cancel,
        progress,
        started,
    )
}

/// Pushes the open `file` (at `image`) to an open destination.
pub fn push_to(
    image: &Path,
    file: &File,
    sink: &mut dyn Sink,
    holes: Holes,
    cancel: &Cancel,
    progress: &mut dyn FnMut(&PushEvent),
    started: Instant,
) -> Result<PushSummary, PushError> {
    let img = |source| PushError::Image {
        path: image.to_path_buf(),
        source,
    };
    let size = file.metadata().map_err(img)?.len();
    let ranges = runs::data_ranges(file, size).map_err(img)?;
    let layout = runs::layout(&ranges, size, sink.block_size());
    let destination = sink.describe();
    if layout.size > sink.size() {
        return Err(PushError::TooSmall {
            destination,
            size: sink.size(),
            image: layout.size,
        });
    }
    progress(&PushEvent::Opened {
        destination: destination.clone(),
        size: sink.size(),
        data: layout.data_bytes(),
        holes: layout.hole_bytes(),
    });
    let mut p = Pusher {
        sink,
        cancel,
        progress,
        done: 0,
        total: layout.size,
        reported: 0,
    };
    let (zeroed, method) = p.zero_holes(&layout.holes, holes)?;
    let mut buf = vec![0u8; p.sink.max_write().clamp(1, MAX_CHUNK)];
    for r in &layout.data {
        p.write_run(file, image, *r, &mut buf)?;
    }
    p.cancel.check().map_err(|_| p.interrupted())?;
    p.sink.finish().map_err(|e| p.failed(e))?;
    Ok(PushSummary {
        destination,
        image: image.to_path_buf(),
        image_bytes: size,
        data_bytes: layout.data_bytes(),
        zeroed_bytes: zeroed,
        hole_ranges: layout.holes.len(),
        zero_method: method,
        wire_bytes: p.sink.wire_bytes(),
        elapsed: started.elapsed(),
    })
}

/// One push in progress.
struct Pusher<'a> {
    sink: &'a mut dyn Sink,
    cancel: &'a Cancel,
    progress: &'a mut dyn FnMut(&PushEvent),
    done: u64,
    total: u64,
    reported: u64,
}

impl Pusher<'_> {
    fn interrupted(&self) -> PushError {
        PushError::Interrupted {
            destination: self.sink.describe(),
            state: self.sink.interrupted_state(),
            done: self.done,
            total: self.total,
        }
    }

    fn failed(&self, e: SinkError) -> PushError {
        match e {
            SinkError::Interrupted => self.interrupted(),
            e => sink_error(e),
        }
    }

    /// Counts `n` bytes done; reports every 5%.
    fn advance(&mut self, n: u64) -> Result<(), PushError> {
        self.done += n;
        if self.done - self.reported >= self.total / 20 || self.done == self.total {
            self.reported = self.done;
            (self.progress)(&PushEvent::Progress {
                done: self.done,
                total: self.total,
            });
        }
        self.cancel.check().map_err(|_| self.interrupted())
    }

    /// Zeroes every hole by the destination's means (or sends zeros, or
    /// skips them, as `holes` says); returns the bytes zeroed and how.
    fn zero_holes(&mut self, list: &[Run], holes: Holes) -> Result<(u64, String), PushError> {
        if holes == Holes::Skip {
            let n = list.iter().map(Run::len).sum();
            self.advance(n)?;
            return Ok((0, "--assume-zeroed".into()));
        }
        let mut zeroed = 0;
        let mut slow = false;
        for h in list {
            let mut at = h.start;
            while at < h.end {
                let n = (h.end - at).min(STEP);
                let r = if slow {
                    self.sink.write_zeros(at, n)
                } else {
                    self.sink.zero(at, n)
                };
                match r {
                    Ok(()) => {
                        at += n;
                        zeroed += n;
                        self.advance(n)?;
                    }
                    Err(SinkError::CannotZero(why)) if !slow => {
                        if holes != Holes::ZeroOrSend {
                            return Err(PushError::CannotZero {
                                why,
                                hole_bytes: list.iter().map(Run::len).sum(),
                                ranges: list.len(),
                            });
                        }
                        slow = true;
                    }
                    Err(e) => return Err(self.failed(e)),
                }
            }
        }
        let method = if slow {
            self.sink.write_zeros_method()
        } else {
            self.sink.zero_method()
        };
        Ok((zeroed, method.to_string()))
    }

    /// Writes one data run, in chunks of `buf`'s size (the image is read
    /// with zeros past its end, up to the block-aligned run's end).
    fn write_run(
        &mut self,
        file: &File,
        image: &Path,
        r: Run,
        buf: &mut [u8],
    ) -> Result<(), PushError> {
        let mut at = r.start;
        while at < r.end {
            let n = (r.end - at).min(buf.len() as u64) as usize;
            let chunk = buf.get_mut(..n).unwrap_or_default();
            read_padded(file, chunk, at).map_err(|source| PushError::Image {
                path: image.to_path_buf(),
                source,
            })?;
            self.sink.write(at, chunk).map_err(|e| self.failed(e))?;
            at += n as u64;
            self.advance(n as u64)?;
        }
        Ok(())
    }
}

/// Fills `buf` from `file` at `offset`, with zeros past the end of the file.
fn read_padded(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = buf.get_mut(done..).unwrap_or_default();
        match file.read_at(rest, offset + done as u64) {
            Ok(0) => {
                rest.fill(0);
                return Ok(());
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A destination in memory that can zero ranges or not.
    struct Memory {
        bytes: Vec<u8>,
        can_zero: bool,
        zero_calls: usize,
        written: u64,
    }

    impl Sink for Memory {
        fn describe(&self) -> String {
            "memory".into()
        }
        fn size(&self) -> u64 {
            self.bytes.len() as u64
        }
        fn block_size(&self) -> u64 {
            512
        }
        fn max_write(&self) -> usize {
            64 * 1024
        }
        fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), SinkError> {
            self.bytes[offset as usize..offset as usize + data.len()].copy_from_slice(data);
            self.written += data.len() as u64;
            Ok(())
        }
        fn zero(&mut self, offset: u64, len: u64) -> Result<(), SinkError> {
            if !self.can_zero {
                return Err(SinkError::CannotZero("memory cannot zero ranges".into()));
            }
            self.zero_calls += 1;
            self.bytes[offset as usize..(offset + len) as usize].fill(0);
            Ok(())
        }
        fn zero_method(&self) -> &'static str {
            "memset"
        }
        fn finish(&mut self) -> Result<(), SinkError> {
            Ok(())
        }
        fn wire_bytes(&self) -> u64 {
            self.written
        }
    }

    /// An image of 1 MiB: 4 KiB of data at 0 and at 512 KiB, the rest holes.
    fn sparse_image(d: &Path) -> (PathBuf, File) {
        let p = d.join("img");
        let f = File::create(&p).unwrap();
        f.set_len(1 << 20).unwrap();
        f.write_all_at(&[1u8; 4096], 0).unwrap();
        f.write_all_at(&[2u8; 4096], 512 << 10).unwrap();
        (p.clone(), File::open(&p).unwrap())
    }

    #[test]
    fn the_hole_policy() {
        let d = tempfile::tempdir().unwrap();
        let (p, f) = sparse_image(d.path());
        let expected = std::fs::read(&p).unwrap();
        let sparse = runs::data_ranges(&f, 1 << 20).unwrap().len() > 1;
        let run = |can_zero, holes| {
            let mut m = Memory {
                bytes: vec![0xa5; 2 << 20],
                can_zero,
                zero_calls: 0,
                written: 0,
            };
            let r = push_to(
                &p,
                &f,
                &mut m,
                holes,
                &Cancel::default(),
                &mut |_| {},
                Instant::now(),
            );
            (r, m)
        };
        // The destination zeroes: data written, holes zeroed, nothing more sent.
        let (r, m) = run(true, Holes::Zero);
        let s = r.unwrap();
        assert_eq!(&m.bytes[..1 << 20], &expected[..]);
        assert_eq!(m.bytes[1 << 20], 0xa5, "past the image: untouched");
        assert_eq!(
            (s.zero_method.as_str(), s.zeroed_bytes + s.data_bytes),
            ("memset", 1 << 20)
        );
        if sparse {
            assert_eq!((s.data_bytes, m.written, s.hole_ranges), (8192, 8192, 2));
        }
        // It cannot: refused before anything is written, with both ways out.
        let (r, m) = run(false, Holes::Zero);
        let e = r.unwrap_err().to_string();
        if sparse {
            assert!(
                e.starts_with("memory cannot zero ranges; the image has 1016 KiB of holes in 2 ranges: pass --assume-zeroed"),
                "{e}"
            );
            assert!(e.contains("or --zero-holes to send zeros"), "{e}");
            assert_eq!(m.written, 0);
        }
        // --zero-holes: zeros sent.
        let (r, m) = run(false, Holes::ZeroOrSend);
        let s = r.unwrap();
        assert_eq!(&m.bytes[..1 << 20], &expected[..]);
        assert_eq!(
            (s.zero_method.as_str(), m.written),
            ("zero blocks sent", 1 << 20)
        );
        // --assume-zeroed: holes left as they were.
        let (r, m) = run(false, Holes::Skip);
        let s = r.unwrap();
        assert_eq!(
            (s.zeroed_bytes, m.zero_calls, s.zero_method.as_str()),
            (0, 0, "--assume-zeroed")
        );
        if sparse {
            assert_eq!(m.bytes[8192], 0xa5);
            assert!(
                s.line()
                    .contains("left 2 ranges as they were (--assume-zeroed)"),
                "{}",
                s.line()
            );
        }
        // Too small.
        let mut m = Memory {
            bytes: vec![0; 4096],
            can_zero: true,
            zero_calls: 0,
            written: 0,
        };
        let e = push_to(
            &p,
            &f,
            &mut m,
            Holes::Zero,
            &Cancel::default(),
            &mut |_| {},
            Instant::now(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "memory holds 4 KiB (4096 bytes), smaller than the image's 1 MiB (1048576 bytes)"
        );
    }

    /// A local file push: data where the image has it, holes kept.
    #[test]
    fn a_file_push_is_sparse_and_atomic() {
        let d = tempfile::tempdir().unwrap();
        let image = d.path().join("rootfs.img");
        let f = File::create(&image).unwrap();
        f.set_len(16 << 20).unwrap();
        f.write_all_at(&[1u8; 8192], 0).unwrap();
        f.write_all_at(&[2u8; 100], (8 << 20) + 5).unwrap();
        drop(f);
        let dest = d.path().join("shared/guest.img");
        std::fs::create_dir(d.path().join("shared")).unwrap();
        std::fs::write(&dest, b"old").unwrap();
        let storage = Storage::File {
            path: dest.display().to_string(),
        };
        let o = PushOptions {
            holes: Holes::Zero,
            timeout: Duration::from_secs(5),
            initiator: "iqn.2026-12.org.imgbuild:imgrun-test".into(),
        };
        let mut events = Vec::new();
        let s = push(&image, &storage, &o, &Cancel::default(), &mut |e| {
            events.push(e.clone())
        })
        .unwrap();
        assert_eq!(
            std::fs::read(&dest).unwrap(),
            std::fs::read(&image).unwrap()
        );
        assert_eq!(s.image_bytes, 16 << 20);
        assert!(s.data_bytes < 1 << 20 || s.hole_ranges == 0, "{s:?}");
        assert_eq!(s.wire_bytes, 0);
        assert!(matches!(events[0], PushEvent::Opened { .. }), "{events:?}");
        assert_eq!(
            events.last(),
            Some(&PushEvent::Progress {
                done: 16 << 20,
                total: 16 << 20
            })
        );
        let left: Vec<_> = std::fs::read_dir(d.path().join("shared"))
            .unwrap()
            .collect();
        assert_eq!(left.len(), 1, "no temporary file left");
        // The image itself: refused, nothing touched.
        let same = Storage::File {
            path: image.display().to_string(),
        };
        let e = push(&image, &same, &o, &Cancel::default(), &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("is the image itself"), "{e}");
        // Interrupted: the old file stays.
        let cancel = Cancel::default();
        cancel.set();
        std::fs::write(&dest, b"old").unwrap();
        let e = push(&image, &storage, &o, &cancel, &mut |_| {}).unwrap_err();
        assert!(matches!(e, PushError::Interrupted { .. }), "{e}");
        assert!(e.to_string().contains("is unchanged"), "{e}");
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        let left: Vec<_> = std::fs::read_dir(d.path().join("shared"))
            .unwrap()
            .collect();
        assert_eq!(left.len(), 1, "no temporary file left");
    }
}
