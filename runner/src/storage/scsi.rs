//! The SCSI commands a push sends (SBC-4, SPC-5): their 16-byte CDBs, the
//! data they return, and sense data for errors. Pure.

use std::fmt;

/// SCSI status GOOD.
pub const GOOD: u8 = 0x00;
/// SCSI status CHECK CONDITION: sense data follows.
pub const CHECK_CONDITION: u8 = 0x02;
/// SCSI status BUSY.
pub const BUSY: u8 = 0x08;
/// SCSI status TASK SET FULL.
pub const TASK_SET_FULL: u8 = 0x28;
/// Sense key UNIT ATTENTION (a reset or a change the initiator is told of once).
pub const UNIT_ATTENTION: u8 = 0x6;
/// Sense key ILLEGAL REQUEST.
pub const ILLEGAL_REQUEST: u8 = 0x5;

/// VPD page: supported pages.
pub const VPD_SUPPORTED: u8 = 0x00;
/// VPD page: Block Limits.
pub const VPD_BLOCK_LIMITS: u8 = 0xb0;
/// VPD page: Logical Block Provisioning.
pub const VPD_PROVISIONING: u8 = 0xb2;

fn cdb16(opcode: u8) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = opcode;
    c
}

fn put_lba_len(c: &mut [u8; 16], lba: u64, blocks: u32) {
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
}

/// READ CAPACITY(16) (SERVICE ACTION IN(16), action 0x10), 32 bytes back.
pub fn read_capacity16() -> [u8; 16] {
    let mut c = cdb16(0x9e);
    c[1] = 0x10;
    c[10..14].copy_from_slice(&32u32.to_be_bytes());
    c
}

/// INQUIRY of a VPD page, zero-padded to 16 bytes (the CDB is 6 bytes:
/// the target takes its length from the opcode).
pub fn inquiry_vpd(page: u8, alloc: u16) -> [u8; 16] {
    let mut c = cdb16(0x12);
    c[1] = 0x01; // EVPD
    c[2] = page;
    c[3..5].copy_from_slice(&alloc.to_be_bytes());
    c
}

/// WRITE(16) of `blocks` blocks at `lba`.
pub fn write16(lba: u64, blocks: u32) -> [u8; 16] {
    let mut c = cdb16(0x8a);
    put_lba_len(&mut c, lba, blocks);
    c
}

/// WRITE SAME(16): one block of data written over `blocks` blocks at
/// `lba`; with `unmap`, the target may deallocate them instead.
pub fn write_same16(lba: u64, blocks: u32, unmap: bool) -> [u8; 16] {
    let mut c = cdb16(0x93);
    if unmap {
        c[1] = 0x08;
    }
    put_lba_len(&mut c, lba, blocks);
    c
}

/// SYNCHRONIZE CACHE(16) of the whole LUN, waiting for it (no IMMED).
pub fn sync_cache16() -> [u8; 16] {
    cdb16(0x91)
}

/// READ CAPACITY(16)'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Number of logical blocks (the last LBA + 1).
    pub blocks: u64,
    /// Bytes per logical block.
    pub block_size: u32,
    /// LBPME: the LUN is thin-provisioned (blocks can be unmapped).
    pub thin: bool,
    /// LBPRZ: unmapped blocks read back as zeros.
    pub unmapped_reads_zero: bool,
}

impl Capacity {
    /// Parses READ CAPACITY(16) data; `None` if shorter than 16 bytes or
    /// the block size is 0.
    pub fn parse(d: &[u8]) -> Option<Capacity> {
        let last: [u8; 8] = d.get(0..8)?.try_into().ok()?;
        let bs: [u8; 4] = d.get(8..12)?.try_into().ok()?;
        let p = *d.get(14)?;
        let block_size = u32::from_be_bytes(bs);
        (block_size > 0).then(|| Capacity {
            blocks: u64::from_be_bytes(last).saturating_add(1),
            block_size,
            thin: p & 0x80 != 0,
            unmapped_reads_zero: p & 0x40 != 0,
        })
    }

    /// The LUN's size, bytes.
    pub fn bytes(&self) -> u64 {
        self.blocks.saturating_mul(u64::from(self.block_size))
    }
}

/// The pages listed by VPD page 0x00.
pub fn supported_pages(d: &[u8]) -> Vec<u8> {
    let len = usize::from(u16::from_be_bytes([
        d.get(2).copied().unwrap_or(0),
        d.get(3).copied().unwrap_or(0),
    ]));
    d.get(4..)
        .unwrap_or_default()
        .iter()
        .take(len)
        .copied()
        .collect()
}

/// From the Block Limits VPD page: (MAXIMUM TRANSFER LENGTH, MAXIMUM WRITE
/// SAME LENGTH), in blocks, 0 where the target states no limit.
pub fn block_limits(d: &[u8]) -> (u32, u64) {
    let max_transfer = d
        .get(8..12)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_be_bytes);
    let max_write_same = d
        .get(36..44)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_be_bytes);
    (max_transfer, max_write_same)
}

/// From the Logical Block Provisioning VPD page: LBPWS, WRITE SAME(16)
/// with UNMAP is supported.
pub fn write_same_unmaps(d: &[u8]) -> bool {
    d.get(5).is_some_and(|b| b & 0x40 != 0)
}

/// Sense data (SPC-5 §4.4): key, additional sense code and qualifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sense {
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
}

impl Sense {
    /// Parses fixed (0x70/0x71) or descriptor (0x72/0x73) format sense data.
    pub fn parse(d: &[u8]) -> Option<Sense> {
        match d.first()? & 0x7f {
            0x70 | 0x71 => Some(Sense {
                key: d.get(2)? & 0x0f,
                asc: d.get(12).copied().unwrap_or(0),
                ascq: d.get(13).copied().unwrap_or(0),
            }),
            0x72 | 0x73 => Some(Sense {
                key: d.get(1)? & 0x0f,
                asc: d.get(2).copied().unwrap_or(0),
                ascq: d.get(3).copied().unwrap_or(0),
            }),
            _ => None,
        }
    }
}

fn key_name(k: u8) -> &'static str {
    match k {
        0x0 => "NO SENSE",
        0x1 => "RECOVERED ERROR",
        0x2 => "NOT READY",
        0x3 => "MEDIUM ERROR",
        0x4 => "HARDWARE ERROR",
        0x5 => "ILLEGAL REQUEST",
        0x6 => "UNIT ATTENTION",
        0x7 => "DATA PROTECT",
        0xb => "ABORTED COMMAND",
        0xd => "VOLUME OVERFLOW",
        0xe => "MISCOMPARE",
        _ => "sense key",
    }
}

/// A few additional sense codes a push may meet.
fn asc_name(asc: u8, ascq: u8) -> Option<&'static str> {
    Some(match (asc, ascq) {
        (0x04, _) => "logical unit not ready",
        (0x1a, 0x00) => "parameter list length error",
        (0x20, 0x00) => "invalid command operation code",
        (0x21, 0x00) => "logical block address out of range",
        (0x24, 0x00) => "invalid field in CDB",
        (0x25, 0x00) => "logical unit not supported",
        (0x27, _) => "write protected",
        (0x29, _) => "power on, reset, or bus device reset occurred",
        (0x2a, _) => "parameters changed",
        (0x3a, _) => "medium not present",
        (0x44, 0x00) => "internal target failure",
        _ => return None,
    })
}

impl fmt::Display for Sense {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sense key {} ({:#x}), ASC/ASCQ {:#04x}/{:#04x}",
            key_name(self.key),
            self.key,
            self.asc,
            self.ascq
        )?;
        if let Some(n) = asc_name(self.asc, self.ascq) {
            write!(f, " ({n})")?;
        }
        Ok(())
    }
}

/// A SCSI status's name.
pub fn status_name(s: u8) -> String {
    match s {
        0x00 => "GOOD".into(),
        0x02 => "CHECK CONDITION".into(),
        0x08 => "BUSY".into(),
        0x18 => "RESERVATION CONFLICT".into(),
        0x28 => "TASK SET FULL".into(),
        0x40 => "TASK ABORTED".into(),
        _ => format!("status {s:#04x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdbs() {
        let c = write_same16(0x0102_0304_0506, 0x10, true);
        assert_eq!(c, [0x93, 0x08, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0x10, 0, 0]);
        assert_eq!(write_same16(1, 1, false)[1], 0);
        assert_eq!(
            write16(7, 2)[..],
            [0x8a, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 2, 0, 0]
        );
        assert_eq!(&read_capacity16()[..2], &[0x9e, 0x10]);
        assert_eq!(read_capacity16()[13], 32);
        assert_eq!(&inquiry_vpd(0xb2, 64)[..5], &[0x12, 1, 0xb2, 0, 64]);
        assert_eq!(sync_cache16()[0], 0x91);
    }

    #[test]
    fn capacity_and_vpd() {
        let mut d = [0u8; 32];
        d[..8].copy_from_slice(&(2_097_151u64).to_be_bytes());
        d[8..12].copy_from_slice(&512u32.to_be_bytes());
        d[14] = 0xc0;
        let c = Capacity::parse(&d).unwrap();
        assert_eq!(
            c,
            Capacity {
                blocks: 2_097_152,
                block_size: 512,
                thin: true,
                unmapped_reads_zero: true
            }
        );
        assert_eq!(c.bytes(), 1 << 30);
        assert_eq!(Capacity::parse(&d[..10]), None);
        assert_eq!(
            supported_pages(&[0, 0, 0, 3, 0, 0xb0, 0xb2, 0xff]),
            vec![0, 0xb0, 0xb2]
        );
        let mut b0 = [0u8; 64];
        b0[8..12].copy_from_slice(&2048u32.to_be_bytes());
        b0[36..44].copy_from_slice(&65536u64.to_be_bytes());
        assert_eq!(block_limits(&b0), (2048, 65536));
        assert_eq!(block_limits(&b0[..20]), (2048, 0));
        assert!(write_same_unmaps(&[0, 0xb2, 0, 4, 0, 0xe4, 2, 0]));
        assert!(!write_same_unmaps(&[0, 0xb2, 0, 4, 0, 0, 0, 0]));
    }

    #[test]
    fn sense_formats() {
        let mut fixed = [0u8; 18];
        fixed[0] = 0x70;
        fixed[2] = 0x05;
        fixed[12] = 0x21;
        let s = Sense::parse(&fixed).unwrap();
        assert_eq!(
            s.to_string(),
            "sense key ILLEGAL REQUEST (0x5), ASC/ASCQ 0x21/0x00 (logical block address out of range)"
        );
        let desc = [0x72, 0x06, 0x29, 0x01, 0, 0, 0, 0];
        assert_eq!(
            Sense::parse(&desc),
            Some(Sense {
                key: UNIT_ATTENTION,
                asc: 0x29,
                ascq: 1
            })
        );
        assert_eq!(Sense::parse(&[0x7f]), None);
        assert_eq!(status_name(0x18), "RESERVATION CONFLICT");
    }
}
