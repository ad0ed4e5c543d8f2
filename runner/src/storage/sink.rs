//! Where a push writes: one [`Sink`] per kind of storage (an NBD export, an
//! iSCSI LUN, a local file or block device), so [`super::push`] is one loop
//! over the image's data runs and holes for all of them.

use crate::storage::iscsi::IscsiError;
use crate::storage::local::LocalError;
use crate::storage::nbd::NbdError;

/// Why a sink failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Nbd(#[from] NbdError),
    #[error(transparent)]
    Iscsi(#[from] IscsiError),
    #[error(transparent)]
    Local(#[from] LocalError),
    /// The sink has no way to zero a range without being sent its zeros
    /// (the reason names the server's or device's missing feature).
    #[error("{0}")]
    CannotZero(String),
    /// Ctrl-C (or SIGTERM) arrived.
    #[error("interrupted by a signal")]
    Interrupted,
}

/// A destination of a push, opened and sized.
pub trait Sink {
    /// The destination as the summary names it, e.g.
    /// `nbd 10.99.0.1:10809 export busybox`.
    fn describe(&self) -> String;

    /// Its size, bytes.
    fn size(&self) -> u64;

    /// The unit every offset and length must be a multiple of.
    fn block_size(&self) -> u64;

    /// The longest write it takes in one call, bytes (a multiple of
    /// [`Sink::block_size`]).
    fn max_write(&self) -> usize;

    /// Writes `data` at `offset`.
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), SinkError>;

    /// Zeroes `len` bytes at `offset` without sending them, by whatever the
    /// destination offers (NBD_CMD_WRITE_ZEROES, WRITE SAME, hole punching).
    /// `Err(CannotZero)` when it offers nothing.
    fn zero(&mut self, offset: u64, len: u64) -> Result<(), SinkError>;

    /// How [`Sink::zero`] zeroed, for the summary: `NBD_CMD_WRITE_ZEROES`,
    /// `WRITE SAME`, … (it may change after the first call, e.g. from
    /// `WRITE SAME with UNMAP` to `WRITE SAME` when the LUN refuses UNMAP).
    fn zero_method(&self) -> &'static str;

    /// Zeroes `len` bytes at `offset` the slow way (the user allowed it with
    /// `--zero-holes`): by default by writing zero blocks, which a sink
    /// overrides when it has a cheaper fallback.
    fn write_zeros(&mut self, offset: u64, len: u64) -> Result<(), SinkError> {
        let chunk = self.max_write().clamp(1, 1 << 20);
        let zeros = vec![0u8; chunk];
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(chunk as u64);
            let slice = zeros.get(..n as usize).unwrap_or_default();
            self.write(offset + done, slice)?;
            done += n;
        }
        Ok(())
    }

    /// How [`Sink::write_zeros`] zeroed, for the summary.
    fn write_zeros_method(&self) -> &'static str {
        "zero blocks sent"
    }

    /// Makes everything written durable and closes the destination cleanly
    /// (NBD_CMD_FLUSH + NBD_CMD_DISC, SYNCHRONIZE CACHE + Logout, fsync +
    /// rename).
    fn finish(&mut self) -> Result<(), SinkError>;

    /// Bytes sent to the server so far (0 for a local destination).
    fn wire_bytes(&self) -> u64;

    /// What an interrupted push leaves behind, for the error message.
    fn interrupted_state(&self) -> &'static str {
        "is half-written: push again before using it"
    }
}
