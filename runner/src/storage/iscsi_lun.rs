//! An iSCSI LUN as a push's destination: sized by READ CAPACITY(16),
//! written with WRITE(16), holes zeroed with WRITE SAME(16) of one zero
//! block (with UNMAP when the LUN is thin-provisioned and unmapped blocks
//! read back as zeros), flushed with SYNCHRONIZE CACHE(16), then Logout.

use std::time::Duration;

use crate::cancel::Cancel;
use crate::storage::iscsi::{Data, IscsiError, IscsiSession, IscsiTarget};
use crate::storage::scsi::{self, Capacity};
use crate::storage::sink::{Sink, SinkError};

/// Most bytes in one WRITE(16) (R2Ts split it into bursts).
const MAX_WRITE: u64 = 1 << 20;
/// Most bytes one WRITE SAME(16) covers when the LUN states no limit: a
/// target without UNMAP writes the block over every LBA before answering,
/// which must end well inside the I/O timeout.
const MAX_SAME: u64 = 64 << 20;
/// Retries of a command answered with UNIT ATTENTION (a LUN reports its
/// reset to the first commands of a session) or BUSY.
const RETRIES: usize = 5;

/// A LUN, logged in and sized.
#[derive(Debug)]
pub struct IscsiLun {
    session: IscsiSession,
    target: String,
    lun: u16,
    capacity: Capacity,
    max_write_blocks: u32,
    max_same_blocks: u32,
    unmap: bool,
    zero_block: Vec<u8>,
}

impl IscsiLun {
    /// Logs in to `t` and reads the LUN's size and limits.
    pub fn open(
        t: &IscsiTarget<'_>,
        timeout: Duration,
        cancel: &Cancel,
    ) -> Result<IscsiLun, IscsiError> {
        let session = IscsiSession::login(t, timeout, cancel)?;
        let mut l = IscsiLun {
            session,
            target: t.target.to_string(),
            lun: t.lun,
            capacity: Capacity {
                blocks: 0,
                block_size: 512,
                thin: false,
                unmapped_reads_zero: false,
            },
            max_write_blocks: 0,
            max_same_blocks: 0,
            unmap: false,
            zero_block: Vec::new(),
        };
        let d = l.run("READ CAPACITY(16)", &scsi::read_capacity16(), Data::In(32))?;
        l.capacity = Capacity::parse(&d).ok_or_else(|| IscsiError::Protocol {
            portal: l.session.portal().to_string(),
            target: l.target.clone(),
            what: format!(
                "lun {}: READ CAPACITY(16) returned {} bytes",
                l.lun,
                d.len()
            ),
        })?;
        let bs = u64::from(l.capacity.block_size);
        let pages = l
            .vpd(scsi::VPD_SUPPORTED)?
            .map(|d| scsi::supported_pages(&d))
            .unwrap_or_default();
        let (mut max_transfer, mut max_same) = (0u32, 0u64);
        if pages.contains(&scsi::VPD_BLOCK_LIMITS) {
            if let Some(d) = l.vpd(scsi::VPD_BLOCK_LIMITS)? {
                (max_transfer, max_same) = scsi::block_limits(&d);
            }
        }
        // UNMAP only where unmapped blocks are guaranteed to read as zeros.
        if l.capacity.thin
            && l.capacity.unmapped_reads_zero
            && pages.contains(&scsi::VPD_PROVISIONING)
        {
            l.unmap = l
                .vpd(scsi::VPD_PROVISIONING)?
                .is_some_and(|d| scsi::write_same_unmaps(&d));
        }
        let cap = |limit: u64, ours: u64| -> u32 {
            let ours = (ours / bs).max(1);
            let n = if limit == 0 { ours } else { ours.min(limit) };
            u32::try_from(n).unwrap_or(u32::MAX)
        };
        l.max_write_blocks = cap(u64::from(max_transfer), MAX_WRITE);
        l.max_same_blocks = cap(max_same, MAX_SAME);
        l.zero_block = vec![0u8; bs as usize];
        Ok(l)
    }

    /// A VPD page, or `None` if the LUN refuses it (ILLEGAL REQUEST).
    fn vpd(&mut self, page: u8) -> Result<Option<Vec<u8>>, IscsiError> {
        match self.run("INQUIRY", &scsi::inquiry_vpd(page, 255), Data::In(255)) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.sense().is_some_and(|s| s.key == scsi::ILLEGAL_REQUEST) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A command, retried after UNIT ATTENTION or BUSY.
    fn run(&mut self, name: &str, cdb: &[u8; 16], data: Data<'_>) -> Result<Vec<u8>, IscsiError> {
        let mut tries = 0;
        loop {
            match self.session.command(name, cdb, data) {
                Err(e) if tries < RETRIES && retryable(&e) => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                r => return r,
            }
        }
    }

    fn lba(&self, offset: u64, len: u64) -> Result<(u64, u64), SinkError> {
        let bs = u64::from(self.capacity.block_size);
        if offset % bs != 0 || len % bs != 0 {
            return Err(SinkError::Iscsi(IscsiError::Protocol {
                portal: self.session.portal().to_string(),
                target: self.target.clone(),
                what: format!(
                    "lun {}: {len} bytes at {offset} are not whole {bs}-byte blocks",
                    self.lun
                ),
            }));
        }
        Ok((offset / bs, len / bs))
    }

    fn write_same(&mut self, lba: u64, blocks: u32) -> Result<(), IscsiError> {
        let block = std::mem::take(&mut self.zero_block);
        let r = self.run(
            if self.unmap {
                "WRITE SAME(16) with UNMAP"
            } else {
                "WRITE SAME(16)"
            },
            &scsi::write_same16(lba, blocks, self.unmap),
            Data::Out(&block),
        );
        self.zero_block = block;
        r.map(drop)
    }
}

fn retryable(e: &IscsiError) -> bool {
    e.sense().is_some_and(|s| s.key == scsi::UNIT_ATTENTION)
        || matches!(e.status(), Some(scsi::BUSY | scsi::TASK_SET_FULL))
}

fn sink_err(e: IscsiError) -> SinkError {
    if e.is_interrupted() {
        SinkError::Interrupted
    } else {
        SinkError::Iscsi(e)
    }
}

impl Sink for IscsiLun {
    fn describe(&self) -> String {
        format!(
            "iscsi {}@{} lun {}",
            self.target,
            self.session.portal(),
            self.lun
        )
    }

    fn size(&self) -> u64 {
        self.capacity.bytes()
    }

    fn block_size(&self) -> u64 {
        u64::from(self.capacity.block_size)
    }

    fn max_write(&self) -> usize {
        self.max_write_blocks as usize * self.capacity.block_size as usize
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), SinkError> {
        let (lba, blocks) = self.lba(offset, data.len() as u64)?;
        let blocks = u32::try_from(blocks).unwrap_or(u32::MAX);
        self.run("WRITE(16)", &scsi::write16(lba, blocks), Data::Out(data))
            .map(drop)
            .map_err(sink_err)
    }

    fn zero(&mut self, offset: u64, len: u64) -> Result<(), SinkError> {
        let (mut lba, blocks) = self.lba(offset, len)?;
        let end = lba + blocks;
        while lba < end {
            let n = (end - lba).min(u64::from(self.max_same_blocks)) as u32;
            match self.write_same(lba, n) {
                Ok(()) => lba += u64::from(n),
                // A LUN that refuses UNMAP after all: plain WRITE SAME.
                Err(e)
                    if self.unmap && e.sense().is_some_and(|s| s.key == scsi::ILLEGAL_REQUEST) =>
                {
                    self.unmap = false;
                }
                Err(e)
                    if e.sense()
                        .is_some_and(|s| s.key == scsi::ILLEGAL_REQUEST && s.asc == 0x20) =>
                {
                    return Err(SinkError::CannotZero(format!(
                        "{} cannot zero ranges: it does not support WRITE SAME(16) ({})",
                        self.describe(),
                        e.sense().map(|s| s.to_string()).unwrap_or_default()
                    )));
                }
                Err(e) => return Err(sink_err(e)),
            }
        }
        Ok(())
    }

    fn zero_method(&self) -> &'static str {
        if self.unmap {
            "WRITE SAME with UNMAP"
        } else {
            "WRITE SAME"
        }
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        match self.run("SYNCHRONIZE CACHE(16)", &scsi::sync_cache16(), Data::None) {
            Ok(_) => {}
            // A LUN without a write cache to flush may not know the command.
            Err(e)
                if e.sense()
                    .is_some_and(|s| s.key == scsi::ILLEGAL_REQUEST && s.asc == 0x20) => {}
            Err(e) => return Err(sink_err(e)),
        }
        self.session.logout().map_err(sink_err)
    }

    fn wire_bytes(&self) -> u64 {
        self.session.sent()
    }
}
