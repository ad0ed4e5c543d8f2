//! One SCSI command on an [`IscsiSession`] (RFC 7143 §4.2 and §11.3 to
//! §11.8): the command PDU with its immediate data, the unsolicited first
//! burst, the Data-Out each R2T asks for, Data-In, and the status with its
//! sense data. One task at a time, so every PDU that comes back is about it
//! (or a NOP-In ping, answered).

use crate::storage::iscsi::{Data, IscsiError, IscsiSession};
use crate::storage::iscsi_pdu::{self as pdu, Bhs, Direction, Incoming, Residual};
use crate::storage::scsi::{self, Sense};

/// `a` after `b` in serial number arithmetic (RFC 1982, 32 bits).
fn sn_after(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

impl IscsiSession {
    /// Runs one SCSI command: sends its data (immediate, unsolicited, then
    /// as each R2T asks) or collects its Data-In, and returns the data read.
    /// A status other than GOOD is an error carrying the sense data.
    pub fn command(
        &mut self,
        name: &str,
        cdb: &[u8; 16],
        data: Data<'_>,
    ) -> Result<Vec<u8>, IscsiError> {
        let itt = self.next_itt();
        let (dir, expected) = match data {
            Data::None => (Direction::None, 0),
            Data::In(n) => (Direction::Read, n),
            Data::Out(d) => (Direction::Write, d.len() as u32),
        };
        let out: &[u8] = match data {
            Data::Out(d) => d,
            _ => &[],
        };
        let n = self.neg;
        let immediate = if n.immediate_data {
            out.len()
                .min(n.first_burst as usize)
                .min(n.max_send_segment as usize)
        } else {
            0
        };
        let unsolicited = if n.initial_r2t {
            immediate
        } else {
            out.len().min(n.first_burst as usize)
        };
        self.wait_for_window()?;
        let h = pdu::CommandHeader {
            lun: self.lun,
            itt,
            expected_len: expected,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            cdb,
            direction: dir,
            final_: unsolicited == immediate,
        };
        self.send(
            pdu::scsi_command(&h),
            out.get(..immediate).unwrap_or_default(),
        )?;
        self.cmd_sn = self.cmd_sn.wrapping_add(1);
        if unsolicited > immediate {
            self.data_out(itt, pdu::NO_TAG, out, immediate, unsolicited)?;
        }
        let mut read = vec![0u8; expected as usize];
        let mut read_len = 0usize;
        loop {
            let (bhs, seg) = self.recv()?;
            match Incoming::parse(&bhs) {
                Incoming::R2t {
                    itt: i,
                    ttt,
                    offset,
                    len,
                    sn,
                } if i == itt => {
                    self.max_cmd_sn = sn.max_cmd_sn;
                    let (start, end) = (offset as usize, offset as usize + len as usize);
                    if end > out.len() || start > end {
                        return Err(self.protocol(format!(
                            "R2T for bytes {start}..{end} of a {}-byte write",
                            out.len()
                        )));
                    }
                    self.data_out(itt, ttt, out, start, end)?;
                }
                Incoming::DataIn {
                    itt: i,
                    status,
                    sn,
                    offset,
                    residual,
                } if i == itt => {
                    let at = offset as usize;
                    let Some(dst) = read.get_mut(at..at + seg.len()) else {
                        return Err(self.protocol(format!(
                            "Data-In of {} bytes at {at} beyond the {expected} asked for",
                            seg.len()
                        )));
                    };
                    dst.copy_from_slice(&seg);
                    read_len = read_len.max(at + seg.len());
                    if let Some(status) = status {
                        self.status_seen(sn);
                        read.truncate(actual_len(expected, residual, read_len));
                        return self.finish_status(name, status, &[], read);
                    }
                }
                Incoming::Response {
                    itt: i,
                    response,
                    status,
                    sn,
                    residual,
                } if i == itt => {
                    self.status_seen(sn);
                    if response != 0 {
                        return Err(self.scsi_err(
                            name,
                            format!(
                                "the target failed the command (iSCSI response {response:#04x})"
                            ),
                            None,
                            None,
                        ));
                    }
                    read.truncate(actual_len(expected, residual, read_len));
                    return self.finish_status(name, status, &seg, read);
                }
                other => self.unrelated(other, &bhs)?,
            }
        }
    }

    /// Sends `out[start..end]` as Data-Out PDUs of at most the target's
    /// MaxRecvDataSegmentLength, DataSN from 0, the last one Final.
    fn data_out(
        &mut self,
        itt: u32,
        ttt: u32,
        out: &[u8],
        start: usize,
        end: usize,
    ) -> Result<(), IscsiError> {
        let seg = self.neg.max_send_segment as usize;
        let mut at = start;
        let mut data_sn = 0u32;
        while at < end {
            let n = (end - at).min(seg);
            let b = pdu::data_out(
                self.lun,
                itt,
                ttt,
                self.exp_stat_sn,
                data_sn,
                at as u32,
                at + n == end,
            );
            self.send(b, out.get(at..at + n).unwrap_or_default())?;
            at += n;
            data_sn += 1;
        }
        Ok(())
    }

    fn status_seen(&mut self, sn: pdu::Sn) {
        self.exp_stat_sn = sn.stat_sn.wrapping_add(1);
        self.max_cmd_sn = sn.max_cmd_sn;
    }

    /// While the target's command window is closed, reads what it sends
    /// (NOP-Ins that open it).
    fn wait_for_window(&mut self) -> Result<(), IscsiError> {
        while sn_after(self.cmd_sn, self.max_cmd_sn) {
            let (bhs, _) = self.recv()?;
            self.unrelated(Incoming::parse(&bhs), &bhs)?;
        }
        Ok(())
    }

    /// A PDU not about the command in flight: answers a ping, fails on a
    /// Reject or the target ending the session.
    fn unrelated(&mut self, p: Incoming, bhs: &Bhs) -> Result<(), IscsiError> {
        match p {
            Incoming::NopIn { lun, ttt, sn, .. } => {
                self.max_cmd_sn = sn.max_cmd_sn;
                if ttt != pdu::NO_TAG {
                    let b = pdu::nop_out_reply(lun, ttt, self.cmd_sn, self.exp_stat_sn);
                    self.send(b, &[])?;
                }
                Ok(())
            }
            Incoming::Async { event: 0, sn } => {
                self.max_cmd_sn = sn.max_cmd_sn;
                Ok(())
            }
            Incoming::Async { event, .. } => Err(self.protocol(format!(
                "the target ends the session (asynchronous event {event}: {})",
                match event {
                    1 => "logout requested",
                    2 => "connection dropped",
                    3 => "all connections dropped",
                    _ => "other",
                }
            ))),
            Incoming::Reject { reason } => {
                Err(self.protocol(format!("the target rejected a PDU (reason {reason:#04x})")))
            }
            _ => Err(self.protocol(format!(
                "unexpected PDU (opcode {:#04x}, task tag {:#x})",
                bhs.opcode(),
                bhs.itt()
            ))),
        }
    }

    fn scsi_err(
        &self,
        command: &str,
        what: String,
        status: Option<u8>,
        sense: Option<Sense>,
    ) -> IscsiError {
        IscsiError::Scsi {
            portal: self.portal().to_string(),
            target: self.target.clone(),
            lun: self.lun,
            command: command.to_string(),
            what,
            status,
            sense,
        }
    }

    fn finish_status(
        &self,
        name: &str,
        status: u8,
        seg: &[u8],
        read: Vec<u8>,
    ) -> Result<Vec<u8>, IscsiError> {
        if status == scsi::GOOD {
            return Ok(read);
        }
        // The data segment of a CHECK CONDITION: SenseLength, then sense data.
        let sense_len = seg
            .get(..2)
            .map_or(0, |l| usize::from(u16::from_be_bytes([l[0], l[1]])));
        let sense = seg
            .get(2..2 + sense_len)
            .and_then(Sense::parse)
            .filter(|_| status == scsi::CHECK_CONDITION);
        let what = match sense {
            Some(s) => format!("{}, {s}", scsi::status_name(status)),
            None => scsi::status_name(status),
        };
        Err(self.scsi_err(name, what, Some(status), sense))
    }
}

/// Data-In length: what the residual says, else as much as arrived.
fn actual_len(expected: u32, residual: Residual, received: usize) -> usize {
    match residual {
        Residual::Under(n) => expected.saturating_sub(n) as usize,
        _ => received,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_numbers_wrap() {
        assert!(sn_after(2, 1));
        assert!(!sn_after(1, 1));
        assert!(!sn_after(1, 2));
        assert!(sn_after(0, u32::MAX));
    }

    #[test]
    fn the_residual_gives_the_data_in_length() {
        assert_eq!(actual_len(32, Residual::Under(8), 32), 24);
        assert_eq!(actual_len(32, Residual::None, 16), 16);
    }
}
