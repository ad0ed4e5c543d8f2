//! Streams records in newc format, checking that exactly the number of data
//! bytes each header declares is written.

use std::io::{Read, Write};
use std::path::PathBuf;

use super::newc::{self, Header, TRAILER};
use super::record::{Contents, Record};

/// Writing an archive failed.
#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    /// A record's data is not the size its header declares.
    #[error("cpio record {name:?}: header declares {declared} bytes but {actual} were supplied")]
    SizeMismatch {
        /// The record.
        name: String,
        /// `c_filesize`.
        declared: u64,
        /// Bytes actually available (at least `declared + 1` when there were more).
        actual: u64,
    },
    /// A value does not fit its 32-bit header field.
    #[error("cpio record {name:?}: {field} {value} does not fit in 32 bits")]
    TooLarge {
        /// The record.
        name: String,
        /// The field.
        field: &'static str,
        /// The value.
        value: u64,
    },
    /// A record name is empty, absolute after normalisation, has `..`, or a NUL.
    #[error("cpio record name {0:?} is not a valid relative path")]
    BadName(String),
    /// A record's parent is not a directory.
    #[error("cpio record {name:?}: parent {parent:?} is not a directory")]
    ParentNotDir {
        /// The record.
        name: String,
        /// The parent record.
        parent: String,
    },
    /// A host file could not be read.
    #[error("cpio record {name:?}: cannot read {path}: {source}")]
    ReadHost {
        /// The record.
        name: String,
        /// The host file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The output could not be written.
    #[error("cannot write the archive: {0}")]
    Write(#[source] std::io::Error),
    /// The output file could not be created or renamed into place.
    #[error("cannot write {path}: {source}")]
    Output {
        /// The output file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A newc writer over any `Write`.
#[derive(Debug)]
pub struct NewcWriter<W: Write> {
    out: W,
    offset: u64,
}

fn field(name: &str, field: &'static str, value: u64) -> Result<u32, CpioError> {
    u32::try_from(value).map_err(|_| CpioError::TooLarge {
        name: name.to_owned(),
        field,
        value,
    })
}

impl<W: Write> NewcWriter<W> {
    /// Starts an archive on `out`.
    pub fn new(out: W) -> NewcWriter<W> {
        NewcWriter { out, offset: 0 }
    }

    /// Bytes written so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), CpioError> {
        self.out.write_all(bytes).map_err(CpioError::Write)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> Result<(), CpioError> {
        let n = newc::pad4(self.offset);
        self.put(&[0u8; 3][..n])
    }

    /// Writes one entry: `header` (its `c_namesize` is set from `name`), the
    /// name, and exactly `header.c_filesize` bytes from `data`. Fewer or more
    /// bytes than declared is [`CpioError::SizeMismatch`].
    pub fn write_entry(
        &mut self,
        header: &Header,
        name: &str,
        data: &mut dyn Read,
    ) -> Result<(), CpioError> {
        if name.as_bytes().contains(&0) {
            return Err(CpioError::BadName(name.to_owned()));
        }
        let mut header = header.clone();
        header.c_namesize = field(name, "name length", name.len() as u64 + 1)?;
        self.put(&header.encode())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        let declared = u64::from(header.c_filesize);
        let mut limited = data.take(declared);
        let mut buf = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            let n = match limited.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CpioError::Write(e)),
            };
            self.put(&buf[..n])?;
            written += n as u64;
        }
        let mismatch = |actual| CpioError::SizeMismatch {
            name: name.to_owned(),
            declared,
            actual,
        };
        if written != declared {
            return Err(mismatch(written));
        }
        let data = limited.into_inner();
        let mut extra = [0u8; 1];
        if data.read(&mut extra).map_err(CpioError::Write)? != 0 {
            return Err(mismatch(declared + 1));
        }
        self.pad()
    }

    /// Writes `rec` with inode number `ino` (its data from memory or from
    /// its host file).
    pub fn write_record(&mut self, ino: u32, rec: &Record) -> Result<(), CpioError> {
        let header = Header {
            c_ino: ino,
            c_mode: rec.mode,
            c_uid: rec.uid,
            c_gid: rec.gid,
            c_nlink: rec.nlink,
            c_mtime: field(&rec.name, "mtime", rec.mtime)?,
            c_filesize: field(&rec.name, "file size", rec.contents.len())?,
            c_rdevmajor: rec.rdev_major,
            c_rdevminor: rec.rdev_minor,
            ..Header::default()
        };
        match &rec.contents {
            Contents::Empty => self.write_entry(&header, &rec.name, &mut std::io::empty()),
            Contents::Bytes(b) => self.write_entry(&header, &rec.name, &mut b.as_slice()),
            Contents::File { path, .. } => {
                let mut f = std::fs::File::open(path).map_err(|source| CpioError::ReadHost {
                    name: rec.name.clone(),
                    path: path.clone(),
                    source,
                })?;
                self.write_entry(&header, &rec.name, &mut f)
            }
        }
    }

    /// Writes the `TRAILER!!!` record and returns the output.
    pub fn finish(mut self) -> Result<W, CpioError> {
        let header = Header {
            c_nlink: 1,
            ..Header::default()
        };
        self.write_entry(&header, TRAILER, &mut std::io::empty())?;
        self.out.flush().map_err(CpioError::Write)?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_padding() {
        let mut w = NewcWriter::new(Vec::new());
        w.write_record(1, &Record::file("init", 0o755, b"hello".to_vec()))
            .unwrap();
        let out = w.finish().unwrap();
        // header(110) + "init\0"(5) = 115 → pad 1 → 116; data 5 → 121 → pad 3 → 124.
        assert_eq!(&out[110..116], b"init\0\0");
        assert_eq!(&out[116..121], b"hello");
        assert_eq!(&out[121..124], &[0, 0, 0]);
        assert_eq!(&out[124..130], b"070701");
        assert_eq!(&out[124 + 110..124 + 121], b"TRAILER!!!\0");
        assert_eq!(out.len() % 4, 0);
    }

    #[test]
    fn short_and_long_data_are_errors() {
        let header = Header {
            c_mode: 0o100_644,
            c_nlink: 1,
            c_filesize: 10,
            ..Header::default()
        };
        let mut w = NewcWriter::new(Vec::new());
        let err = w
            .write_entry(&header, "short", &mut &b"12345"[..])
            .unwrap_err();
        assert!(
            matches!(
                err,
                CpioError::SizeMismatch {
                    declared: 10,
                    actual: 5,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("\"short\""), "{err}");
        let mut w = NewcWriter::new(Vec::new());
        let err = w
            .write_entry(&header, "long", &mut &b"0123456789X"[..])
            .unwrap_err();
        assert!(
            matches!(
                err,
                CpioError::SizeMismatch {
                    declared: 10,
                    actual: 11,
                    ..
                }
            ),
            "{err}"
        );
        let mut w = NewcWriter::new(Vec::new());
        w.write_entry(&header, "exact", &mut &b"0123456789"[..])
            .unwrap();
    }

    #[test]
    fn host_file_that_changed_size_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        let rec = Record::host_file("f", 0o644, &p).unwrap();
        std::fs::write(&p, b"0123").unwrap(); // truncated after the record was made
        let err = NewcWriter::new(Vec::new())
            .write_record(1, &rec)
            .unwrap_err();
        assert!(
            matches!(
                err,
                CpioError::SizeMismatch {
                    declared: 10,
                    actual: 4,
                    ..
                }
            ),
            "{err}"
        );
        std::fs::write(&p, b"0123456789abc").unwrap(); // grew
        let err = NewcWriter::new(Vec::new())
            .write_record(1, &rec)
            .unwrap_err();
        assert!(
            matches!(err, CpioError::SizeMismatch { actual: 11, .. }),
            "{err}"
        );
        std::fs::remove_file(&p).unwrap();
        let err = NewcWriter::new(Vec::new())
            .write_record(1, &rec)
            .unwrap_err();
        assert!(matches!(err, CpioError::ReadHost { .. }), "{err}");
    }
}
