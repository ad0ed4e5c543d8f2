//! iSCSI PDUs (RFC 7143 §11): the 48-byte Basic Header Segment of each PDU
//! an initiator sends and receives, the text data segment of Login (keys
//! `key=value`, NUL-separated), and 4-byte padding. Field offsets are the
//! RFC's; no digests (HeaderDigest=None, DataDigest=None), no AHS sent.

/// Bytes in a Basic Header Segment.
pub const BHS_LEN: usize = 48;
/// The "no tag" value of an Initiator or Target Transfer Tag.
pub const NO_TAG: u32 = 0xffff_ffff;

/// Initiator opcodes (RFC 7143 §11.1.1).
pub const OP_NOP_OUT: u8 = 0x00;
pub const OP_SCSI_CMD: u8 = 0x01;
pub const OP_LOGIN_REQ: u8 = 0x03;
pub const OP_DATA_OUT: u8 = 0x05;
pub const OP_LOGOUT_REQ: u8 = 0x06;
/// Target opcodes.
pub const OP_NOP_IN: u8 = 0x20;
pub const OP_SCSI_RESP: u8 = 0x21;
pub const OP_LOGIN_RESP: u8 = 0x23;
pub const OP_DATA_IN: u8 = 0x25;
pub const OP_LOGOUT_RESP: u8 = 0x26;
pub const OP_R2T: u8 = 0x31;
pub const OP_ASYNC: u8 = 0x32;
pub const OP_REJECT: u8 = 0x3f;

/// Byte 0: the Immediate bit.
const IMMEDIATE: u8 = 0x40;
/// Byte 1: the Final bit (and Login's Transit bit).
const FINAL: u8 = 0x80;

/// Login stages (CSG/NSG, RFC 7143 §11.12.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    Security = 0,
    Operational = 1,
    FullFeature = 3,
}

impl Stage {
    fn from_bits(b: u8) -> Option<Stage> {
        match b & 3 {
            0 => Some(Stage::Security),
            1 => Some(Stage::Operational),
            3 => Some(Stage::FullFeature),
            _ => None,
        }
    }
}

/// A Basic Header Segment.
#[derive(Clone, PartialEq, Eq)]
pub struct Bhs(pub [u8; BHS_LEN]);

impl std::fmt::Debug for Bhs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bhs(opcode {:#04x}, ", self.opcode())?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl Bhs {
    fn new(opcode: u8, immediate: bool) -> Bhs {
        let mut b = [0u8; BHS_LEN];
        b[0] = opcode | if immediate { IMMEDIATE } else { 0 };
        Bhs(b)
    }

    /// The opcode, without the Immediate bit.
    pub fn opcode(&self) -> u8 {
        self.0[0] & 0x3f
    }

    /// Byte 1: the Final bit and opcode-specific flags.
    pub fn flags(&self) -> u8 {
        self.0[1]
    }

    /// TotalAHSLength, bytes.
    pub fn ahs_len(&self) -> usize {
        usize::from(self.0[4]) * 4
    }

    /// DataSegmentLength, bytes (without padding).
    pub fn data_len(&self) -> usize {
        let [_, a, b, c] = self.u32_at(4).to_be_bytes();
        usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c)
    }

    /// Sets DataSegmentLength (at most 2^24 - 1; callers send far less).
    pub fn set_data_len(&mut self, len: usize) {
        let len = (len as u32).min(0x00ff_ffff);
        let ahs = self.0[4];
        self.set_u32(4, len);
        self.0[4] = ahs;
    }

    /// The Initiator Task Tag.
    pub fn itt(&self) -> u32 {
        self.u32_at(16)
    }

    /// The big-endian word at `at`.
    pub fn u32_at(&self, at: usize) -> u32 {
        let mut w = [0u8; 4];
        if let Some(s) = self.0.get(at..at + 4) {
            w.copy_from_slice(s);
        }
        u32::from_be_bytes(w)
    }

    fn set_u32(&mut self, at: usize, v: u32) {
        if let Some(d) = self.0.get_mut(at..at + 4) {
            d.copy_from_slice(&v.to_be_bytes());
        }
    }

    fn set(&mut self, at: usize, v: &[u8]) {
        if let Some(d) = self.0.get_mut(at..at + v.len()) {
            d.copy_from_slice(v);
        }
    }

    fn lun(&self) -> [u8; 8] {
        let mut l = [0u8; 8];
        l.copy_from_slice(&self.0[8..16]);
        l
    }
}

/// A LUN field (SAM-5 §4.7): peripheral addressing below 256, flat space
/// addressing up to 16383.
pub fn lun_field(lun: u16) -> [u8; 8] {
    let mut l = [0u8; 8];
    if lun < 256 {
        l[1] = lun as u8;
    } else {
        let [hi, lo] = lun.min(0x3fff).to_be_bytes();
        l[0] = 0x40 | hi;
        l[1] = lo;
    }
    l
}

/// What a Login Request says besides its text.
#[derive(Debug, Clone, Copy)]
pub struct LoginHeader {
    pub isid: [u8; 6],
    pub tsih: u16,
    pub itt: u32,
    pub cid: u16,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    /// Transit bit: move to `nsg` once both sides agree.
    pub transit: bool,
    pub csg: Stage,
    pub nsg: Stage,
}

/// A Login Request (§11.12), always immediate.
pub fn login_request(h: &LoginHeader) -> Bhs {
    let mut b = Bhs::new(OP_LOGIN_REQ, true);
    let nsg = if h.transit { h.nsg as u8 } else { 0 };
    b.0[1] = if h.transit { FINAL } else { 0 } | (h.csg as u8) << 2 | nsg;
    // Version-max and Version-min: 0, the only version.
    b.set(8, &h.isid);
    b.set(14, &h.tsih.to_be_bytes());
    b.set_u32(16, h.itt);
    b.set(20, &h.cid.to_be_bytes());
    b.set_u32(24, h.cmd_sn);
    b.set_u32(28, h.exp_stat_sn);
    b
}

/// Data direction of a SCSI Command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    None,
    Read,
    Write,
}

/// A SCSI Command (§11.3), simple task attribute.
#[derive(Debug, Clone, Copy)]
pub struct CommandHeader<'a> {
    pub lun: u16,
    pub itt: u32,
    pub expected_len: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    pub cdb: &'a [u8; 16],
    pub direction: Direction,
    /// No unsolicited Data-Out PDUs follow.
    pub final_: bool,
}

/// Encodes a SCSI Command.
pub fn scsi_command(h: &CommandHeader<'_>) -> Bhs {
    let mut b = Bhs::new(OP_SCSI_CMD, false);
    let dir = match h.direction {
        Direction::None => 0,
        Direction::Read => 0x40,
        Direction::Write => 0x20,
    };
    // ATTR 1: simple.
    b.0[1] = if h.final_ { FINAL } else { 0 } | dir | 1;
    b.set(8, &lun_field(h.lun));
    b.set_u32(16, h.itt);
    b.set_u32(20, h.expected_len);
    b.set_u32(24, h.cmd_sn);
    b.set_u32(28, h.exp_stat_sn);
    b.set(32, h.cdb);
    b
}

/// A SCSI Data-Out (§11.7): `ttt` is the R2T's, or [`NO_TAG`] for
/// unsolicited data.
pub fn data_out(
    lun: u16,
    itt: u32,
    ttt: u32,
    exp_stat_sn: u32,
    data_sn: u32,
    offset: u32,
    final_: bool,
) -> Bhs {
    let mut b = Bhs::new(OP_DATA_OUT, false);
    b.0[1] = if final_ { FINAL } else { 0 };
    b.set(8, &lun_field(lun));
    b.set_u32(16, itt);
    b.set_u32(20, ttt);
    b.set_u32(28, exp_stat_sn);
    b.set_u32(36, data_sn);
    b.set_u32(40, offset);
    b
}

/// A Logout Request (§11.14) closing the session, immediate.
pub fn logout_request(itt: u32, cid: u16, cmd_sn: u32, exp_stat_sn: u32) -> Bhs {
    let mut b = Bhs::new(OP_LOGOUT_REQ, true);
    b.0[1] = FINAL; // reason 0: close the session
    b.set_u32(16, itt);
    b.set(20, &cid.to_be_bytes());
    b.set_u32(24, cmd_sn);
    b.set_u32(28, exp_stat_sn);
    b
}

/// A NOP-Out answering a target's NOP-In ping (§11.18): its TTT and LUN
/// echoed, no ITT, immediate.
pub fn nop_out_reply(lun: [u8; 8], ttt: u32, cmd_sn: u32, exp_stat_sn: u32) -> Bhs {
    let mut b = Bhs::new(OP_NOP_OUT, true);
    b.0[1] = FINAL;
    b.set(8, &lun);
    b.set_u32(16, NO_TAG);
    b.set_u32(20, ttt);
    b.set_u32(24, cmd_sn);
    b.set_u32(28, exp_stat_sn);
    b
}

/// The sequence numbers a target PDU reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sn {
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
}

/// A residual: the U (underflow) or O (overflow) bit and the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residual {
    None,
    Under(u32),
    Over(u32),
}

fn residual(b: &Bhs) -> Residual {
    let count = b.u32_at(44);
    match b.flags() & 0x06 {
        0x02 => Residual::Under(count),
        0x04 => Residual::Over(count),
        _ => Residual::None,
    }
}

/// A target PDU, decoded from its BHS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Login Response (§11.13).
    Login {
        transit: bool,
        cont: bool,
        csg: Option<Stage>,
        nsg: Option<Stage>,
        tsih: u16,
        itt: u32,
        sn: Sn,
        class: u8,
        detail: u8,
    },
    /// SCSI Response (§11.4).
    Response {
        itt: u32,
        response: u8,
        status: u8,
        sn: Sn,
        residual: Residual,
    },
    /// SCSI Data-In (§11.7); `status` when the S bit is set.
    DataIn {
        itt: u32,
        status: Option<u8>,
        sn: Sn,
        offset: u32,
        residual: Residual,
    },
    /// Ready To Transfer (§11.8).
    R2t {
        itt: u32,
        ttt: u32,
        sn: Sn,
        offset: u32,
        len: u32,
    },
    /// NOP-In (§11.19): a ping to answer when `ttt` is not [`NO_TAG`].
    NopIn {
        lun: [u8; 8],
        itt: u32,
        ttt: u32,
        sn: Sn,
    },
    /// Logout Response (§11.15).
    Logout { itt: u32, response: u8, sn: Sn },
    /// Reject (§11.17): the target refused a PDU of ours.
    Reject { reason: u8 },
    /// Asynchronous Message (§11.9).
    Async { event: u8, sn: Sn },
    /// Any other opcode.
    Other(u8),
}

impl Incoming {
    /// Decodes a target's BHS.
    pub fn parse(b: &Bhs) -> Incoming {
        let sn = Sn {
            stat_sn: b.u32_at(24),
            exp_cmd_sn: b.u32_at(28),
            max_cmd_sn: b.u32_at(32),
        };
        let f = b.flags();
        match b.opcode() {
            OP_LOGIN_RESP => Incoming::Login {
                transit: f & FINAL != 0,
                cont: f & 0x40 != 0,
                csg: Stage::from_bits(f >> 2),
                nsg: Stage::from_bits(f),
                tsih: u16::from_be_bytes([b.0[14], b.0[15]]),
                itt: b.itt(),
                sn,
                class: b.0[36],
                detail: b.0[37],
            },
            OP_SCSI_RESP => Incoming::Response {
                itt: b.itt(),
                response: b.0[2],
                status: b.0[3],
                sn,
                residual: residual(b),
            },
            OP_DATA_IN => Incoming::DataIn {
                itt: b.itt(),
                status: (f & 0x01 != 0).then_some(b.0[3]),
                sn,
                offset: b.u32_at(40),
                residual: residual(b),
            },
            OP_R2T => Incoming::R2t {
                itt: b.itt(),
                ttt: b.u32_at(20),
                sn,
                offset: b.u32_at(40),
                len: b.u32_at(44),
            },
            OP_NOP_IN => Incoming::NopIn {
                lun: b.lun(),
                itt: b.itt(),
                ttt: b.u32_at(20),
                sn,
            },
            OP_LOGOUT_RESP => Incoming::Logout {
                itt: b.itt(),
                response: b.0[2],
                sn,
            },
            OP_REJECT => Incoming::Reject { reason: b.0[2] },
            OP_ASYNC => Incoming::Async { event: b.0[36], sn },
            op => Incoming::Other(op),
        }
    }
}

/// Zero bytes that pad a segment of `len` bytes to a 4-byte boundary.
pub fn pad(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Text keys (§6.1): `key=value` pairs, each ending in NUL.
pub fn encode_text<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Vec<u8> {
    let mut v = Vec::new();
    for (k, val) in pairs {
        v.extend_from_slice(k.as_ref().as_bytes());
        v.push(b'=');
        v.extend_from_slice(val.as_ref().as_bytes());
        v.push(0);
    }
    v
}

/// Decodes text keys; trailing NULs (padding) are ignored, a pair without
/// `=` is an error naming it.
pub fn decode_text(data: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for item in data.split(|&c| c == 0).filter(|s| !s.is_empty()) {
        let text = String::from_utf8_lossy(item);
        let Some((k, v)) = text.split_once('=') else {
            return Err(format!("text key without a value: {text:?}"));
        };
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_request_layout() {
        let h = LoginHeader {
            isid: [0x80, 0, 0x12, 0x34, 0x56, 0],
            tsih: 0,
            itt: 7,
            cid: 0,
            cmd_sn: 1,
            exp_stat_sn: 0,
            transit: true,
            csg: Stage::Operational,
            nsg: Stage::FullFeature,
        };
        let mut b = login_request(&h);
        b.set_data_len(0x0001_0203);
        assert_eq!(b.0[0], 0x43, "immediate login");
        assert_eq!(b.0[1], 0x87, "T, CSG 1, NSG 3");
        assert_eq!(&b.0[4..8], &[0, 0x01, 0x02, 0x03]);
        assert_eq!(b.data_len(), 0x010203);
        assert_eq!(&b.0[8..14], &h.isid);
        assert_eq!(b.itt(), 7);
        assert_eq!(b.u32_at(24), 1);
        let no_transit = login_request(&LoginHeader {
            transit: false,
            csg: Stage::Security,
            ..h
        });
        assert_eq!(no_transit.0[1], 0x00, "no T: NSG is reserved");
    }

    #[test]
    fn scsi_command_and_data_out_layout() {
        let cdb = [0x8a; 16];
        let b = scsi_command(&CommandHeader {
            lun: 1,
            itt: 0x11,
            expected_len: 65536,
            cmd_sn: 5,
            exp_stat_sn: 9,
            cdb: &cdb,
            direction: Direction::Write,
            final_: false,
        });
        assert_eq!(b.0[0], 0x01);
        assert_eq!(b.0[1], 0x21, "W, simple, not F");
        assert_eq!(&b.0[8..16], &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(b.u32_at(20), 65536);
        assert_eq!((b.u32_at(24), b.u32_at(28)), (5, 9));
        assert_eq!(&b.0[32..48], &cdb);
        let d = data_out(300, 0x11, NO_TAG, 9, 2, 8192, true);
        assert_eq!((d.0[0], d.0[1]), (0x05, 0x80));
        assert_eq!(&d.0[8..10], &[0x41, 0x2c], "flat space LUN 300");
        assert_eq!(d.u32_at(20), NO_TAG);
        assert_eq!((d.u32_at(36), d.u32_at(40)), (2, 8192));
        let l = logout_request(3, 0, 6, 10);
        assert_eq!((l.0[0], l.0[1]), (0x46, 0x80));
    }

    #[test]
    fn target_pdus_decode() {
        let mut b = Bhs::new(OP_LOGIN_RESP, false);
        b.0[1] = 0x87;
        b.0[14..16].copy_from_slice(&[0, 5]);
        b.set_u32(24, 100);
        b.set_u32(28, 1);
        b.set_u32(32, 33);
        b.0[36] = 2;
        b.0[37] = 3;
        assert_eq!(
            Incoming::parse(&b),
            Incoming::Login {
                transit: true,
                cont: false,
                csg: Some(Stage::Operational),
                nsg: Some(Stage::FullFeature),
                tsih: 5,
                itt: 0,
                sn: Sn {
                    stat_sn: 100,
                    exp_cmd_sn: 1,
                    max_cmd_sn: 33
                },
                class: 2,
                detail: 3
            }
        );
        let mut r = Bhs::new(OP_R2T, false);
        r.set_u32(16, 4);
        r.set_u32(20, 0xabc);
        r.set_u32(40, 65536);
        r.set_u32(44, 262144);
        assert!(matches!(
            Incoming::parse(&r),
            Incoming::R2t {
                itt: 4,
                ttt: 0xabc,
                offset: 65536,
                len: 262144,
                ..
            }
        ));
        let mut d = Bhs::new(OP_DATA_IN, false);
        d.0[1] = 0x83; // F, U, S
        d.0[3] = 0;
        d.set_u32(44, 8);
        assert!(matches!(
            Incoming::parse(&d),
            Incoming::DataIn {
                status: Some(0),
                residual: Residual::Under(8),
                ..
            }
        ));
        let mut s = Bhs::new(OP_SCSI_RESP, false);
        s.0[3] = 2;
        assert!(matches!(
            Incoming::parse(&s),
            Incoming::Response {
                status: 2,
                residual: Residual::None,
                ..
            }
        ));
    }

    #[test]
    fn text_keys_and_padding() {
        let t = encode_text(&[
            ("InitiatorName", "iqn.2026-12.org.x:a"),
            ("SessionType", "Normal"),
        ]);
        assert_eq!(
            t,
            b"InitiatorName=iqn.2026-12.org.x:a\0SessionType=Normal\0"
        );
        let mut padded = t.clone();
        padded.resize(t.len() + pad(t.len()), 0);
        assert_eq!(padded.len() % 4, 0);
        assert_eq!(
            decode_text(&padded).unwrap(),
            vec![
                ("InitiatorName".into(), "iqn.2026-12.org.x:a".into()),
                ("SessionType".into(), "Normal".into())
            ]
        );
        assert_eq!(
            decode_text(b"A=\0").unwrap(),
            vec![("A".into(), String::new())]
        );
        assert!(decode_text(b"Oops\0").unwrap_err().contains("\"Oops\""));
        assert_eq!((pad(0), pad(1), pad(3), pad(4), pad(5)), (0, 3, 1, 0, 3));
    }
}
