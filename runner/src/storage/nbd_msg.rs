//! The NBD protocol's messages (the protocol document, `doc/proto.md` of
//! the NBD project): the fixed newstyle handshake, option haggling and
//! simple replies, with the spec's names. Pure encoding and decoding; the
//! conversation is [`super::nbd`]'s.

/// `NBDMAGIC`, the server's first eight bytes.
pub const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
/// `IHAVEOPT`: newstyle negotiation follows; also starts each option.
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// The oldstyle handshake's second magic (not spoken here).
pub const CLISERV_MAGIC: u64 = 0x0000_4202_8186_1253;
/// Starts each option reply.
pub const OPT_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
/// Starts each transmission request.
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
/// Starts each simple reply.
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
/// Starts each structured reply chunk (never negotiated here).
pub const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;

/// Handshake flags, server: `NBD_FLAG_FIXED_NEWSTYLE`.
pub const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
/// Handshake flags, server: `NBD_FLAG_NO_ZEROES`.
pub const FLAG_NO_ZEROES: u16 = 1 << 1;
/// Client flags: `NBD_FLAG_C_FIXED_NEWSTYLE`.
pub const FLAG_C_FIXED_NEWSTYLE: u32 = 1 << 0;
/// Client flags: `NBD_FLAG_C_NO_ZEROES`.
pub const FLAG_C_NO_ZEROES: u32 = 1 << 1;

/// `NBD_OPT_EXPORT_NAME`: the old way to pick an export.
pub const OPT_EXPORT_NAME: u32 = 1;
/// `NBD_OPT_ABORT`.
pub const OPT_ABORT: u32 = 2;
/// `NBD_OPT_GO`: pick an export and learn about it.
pub const OPT_GO: u32 = 7;

/// `NBD_REP_ACK`.
pub const REP_ACK: u32 = 1;
/// `NBD_REP_INFO`.
pub const REP_INFO: u32 = 3;
/// Bit 31 of a reply type: an error.
pub const REP_FLAG_ERROR: u32 = 1 << 31;
/// `NBD_REP_ERR_UNSUP`: the server does not know the option.
pub const REP_ERR_UNSUP: u32 = REP_FLAG_ERROR | 1;
/// `NBD_REP_ERR_UNKNOWN`: no such export.
pub const REP_ERR_UNKNOWN: u32 = REP_FLAG_ERROR | 6;

/// `NBD_INFO_EXPORT`: size and transmission flags.
pub const INFO_EXPORT: u16 = 0;
/// `NBD_INFO_BLOCK_SIZE`: minimum, preferred and maximum sizes.
pub const INFO_BLOCK_SIZE: u16 = 3;

/// Transmission flags: `NBD_FLAG_HAS_FLAGS`.
pub const FLAG_HAS_FLAGS: u16 = 1 << 0;
/// Transmission flags: `NBD_FLAG_READ_ONLY`.
pub const FLAG_READ_ONLY: u16 = 1 << 1;
/// Transmission flags: `NBD_FLAG_SEND_FLUSH`.
pub const FLAG_SEND_FLUSH: u16 = 1 << 2;
/// Transmission flags: `NBD_FLAG_SEND_TRIM`.
pub const FLAG_SEND_TRIM: u16 = 1 << 5;
/// Transmission flags: `NBD_FLAG_SEND_WRITE_ZEROES`.
pub const FLAG_SEND_WRITE_ZEROES: u16 = 1 << 6;

/// Commands (`NBD_CMD_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Cmd {
    Write = 1,
    Disc = 2,
    Flush = 3,
    WriteZeroes = 6,
}

impl Cmd {
    /// The spec's name.
    pub fn name(self) -> &'static str {
        match self {
            Cmd::Write => "NBD_CMD_WRITE",
            Cmd::Disc => "NBD_CMD_DISC",
            Cmd::Flush => "NBD_CMD_FLUSH",
            Cmd::WriteZeroes => "NBD_CMD_WRITE_ZEROES",
        }
    }
}

/// An option request: `IHAVEOPT`, option, length, data.
pub fn option(opt: u32, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + data.len());
    v.extend_from_slice(&IHAVEOPT.to_be_bytes());
    v.extend_from_slice(&opt.to_be_bytes());
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// `NBD_OPT_GO`'s data: the export name and the information requested.
pub fn go_data(export: &str, infos: &[u16]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(export.len() as u32).to_be_bytes());
    v.extend_from_slice(export.as_bytes());
    v.extend_from_slice(&(infos.len() as u16).to_be_bytes());
    for i in infos {
        v.extend_from_slice(&i.to_be_bytes());
    }
    v
}

/// The fixed part of an option reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptReply {
    /// The option it answers.
    pub opt: u32,
    /// `NBD_REP_*`.
    pub kind: u32,
    /// Length of the data that follows.
    pub len: u32,
}

impl OptReply {
    /// Parses the 20-byte header; `None` if the magic is wrong.
    pub fn parse(b: &[u8; 20]) -> Option<OptReply> {
        (be64(b, 0) == OPT_REPLY_MAGIC).then(|| OptReply {
            opt: be32(b, 8),
            kind: be32(b, 12),
            len: be32(b, 16),
        })
    }
}

/// One `NBD_REP_INFO` payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Info {
    /// `NBD_INFO_EXPORT`.
    Export { size: u64, flags: u16 },
    /// `NBD_INFO_BLOCK_SIZE`.
    BlockSize { min: u32, preferred: u32, max: u32 },
    /// Anything else (names, descriptions): ignored.
    Other(u16),
}

impl Info {
    /// Parses an `NBD_REP_INFO` payload; `None` if too short for its type.
    pub fn parse(d: &[u8]) -> Option<Info> {
        let kind = u16::from_be_bytes([*d.first()?, *d.get(1)?]);
        match kind {
            INFO_EXPORT if d.len() >= 12 => Some(Info::Export {
                size: be64(d, 2),
                flags: be16(d, 10),
            }),
            INFO_BLOCK_SIZE if d.len() >= 14 => Some(Info::BlockSize {
                min: be32(d, 2),
                preferred: be32(d, 6),
                max: be32(d, 10),
            }),
            INFO_EXPORT | INFO_BLOCK_SIZE => None,
            other => Some(Info::Other(other)),
        }
    }
}

/// A transmission request's 28-byte header.
pub fn request(cmd: Cmd, flags: u16, cookie: u64, offset: u64, len: u32) -> [u8; 28] {
    let mut b = [0u8; 28];
    put(&mut b, 0, &REQUEST_MAGIC.to_be_bytes());
    put(&mut b, 4, &flags.to_be_bytes());
    put(&mut b, 6, &(cmd as u16).to_be_bytes());
    put(&mut b, 8, &cookie.to_be_bytes());
    put(&mut b, 16, &offset.to_be_bytes());
    put(&mut b, 24, &len.to_be_bytes());
    b
}

/// A simple reply: its error (0 for success) and cookie; `None` if the
/// magic is not the simple reply's.
pub fn simple_reply(b: &[u8; 16]) -> Option<(u32, u64)> {
    (be32(b, 0) == SIMPLE_REPLY_MAGIC).then(|| (be32(b, 4), be64(b, 8)))
}

/// The name of an option reply error (`NBD_REP_ERR_*`).
pub fn rep_err_name(kind: u32) -> String {
    let name = match kind & !REP_FLAG_ERROR {
        1 => "NBD_REP_ERR_UNSUP",
        2 => "NBD_REP_ERR_POLICY",
        3 => "NBD_REP_ERR_INVALID",
        4 => "NBD_REP_ERR_PLATFORM",
        5 => "NBD_REP_ERR_TLS_REQD",
        6 => "NBD_REP_ERR_UNKNOWN",
        7 => "NBD_REP_ERR_SHUTDOWN",
        8 => "NBD_REP_ERR_BLOCK_SIZE_REQD",
        9 => "NBD_REP_ERR_TOO_BIG",
        _ => return format!("reply type {kind:#x}"),
    };
    name.to_string()
}

/// The name of a transmission error (`NBD_E*`, errno values).
pub fn error_name(e: u32) -> String {
    let name = match e {
        1 => "NBD_EPERM",
        5 => "NBD_EIO",
        12 => "NBD_ENOMEM",
        22 => "NBD_EINVAL",
        28 => "NBD_ENOSPC",
        75 => "NBD_EOVERFLOW",
        95 => "NBD_ENOTSUP",
        108 => "NBD_ESHUTDOWN",
        _ => return format!("error {e}"),
    };
    format!("{name} ({e})")
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    if let Some(dst) = b.get_mut(at..at + v.len()) {
        dst.copy_from_slice(v);
    }
}

fn bytes<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = b.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(bytes(b, at))
}

pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes(b, at))
}

pub(crate) fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(bytes(b, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics_spell_their_names() {
        assert_eq!(&NBDMAGIC.to_be_bytes(), b"NBDMAGIC");
        assert_eq!(&IHAVEOPT.to_be_bytes(), b"IHAVEOPT");
    }

    #[test]
    fn go_names_the_export_and_asks_for_block_sizes() {
        let data = go_data("guest", &[INFO_BLOCK_SIZE]);
        assert_eq!(data, b"\0\0\0\x05guest\0\x01\0\x03");
        let o = option(OPT_GO, &data);
        assert_eq!(&o[..8], b"IHAVEOPT");
        assert_eq!(&o[8..16], &[0, 0, 0, 7, 0, 0, 0, 13]);
        assert_eq!(&o[16..], &data[..]);
        assert_eq!(option(OPT_ABORT, &[]).len(), 16);
    }

    #[test]
    fn option_replies_and_infos() {
        let mut b = [0u8; 20];
        b[..8].copy_from_slice(&OPT_REPLY_MAGIC.to_be_bytes());
        b[8..12].copy_from_slice(&7u32.to_be_bytes());
        b[12..16].copy_from_slice(&REP_ERR_UNKNOWN.to_be_bytes());
        b[16..20].copy_from_slice(&12u32.to_be_bytes());
        assert_eq!(
            OptReply::parse(&b),
            Some(OptReply {
                opt: OPT_GO,
                kind: REP_ERR_UNKNOWN,
                len: 12
            })
        );
        assert_eq!(rep_err_name(REP_ERR_UNKNOWN), "NBD_REP_ERR_UNKNOWN");
        assert_eq!(rep_err_name(REP_FLAG_ERROR | 99), "reply type 0x80000063");
        b[7] ^= 1;
        assert_eq!(OptReply::parse(&b), None);

        let export = [0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0x45];
        assert_eq!(
            Info::parse(&export),
            Some(Info::Export {
                size: 1 << 30,
                flags: FLAG_HAS_FLAGS | FLAG_SEND_FLUSH | FLAG_SEND_WRITE_ZEROES
            })
        );
        assert_eq!(Info::parse(&export[..11]), None);
        let bs = [0, 3, 0, 0, 2, 0, 0, 0, 16, 0, 0, 0x10, 0, 0];
        assert_eq!(
            Info::parse(&bs),
            Some(Info::BlockSize {
                min: 512,
                preferred: 4096,
                max: 1 << 20
            })
        );
        assert_eq!(Info::parse(&[0, 1, b'x']), Some(Info::Other(1)));
        assert_eq!(Info::parse(&[0]), None);
    }

    #[test]
    fn requests_and_simple_replies() {
        let r = request(Cmd::WriteZeroes, 0, 0x0102, 4096, 8192);
        assert_eq!(
            r,
            [
                0x25, 0x60, 0x95, 0x13, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0x10,
                0, 0, 0, 0x20, 0
            ]
        );
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
        b[4..8].copy_from_slice(&28u32.to_be_bytes());
        b[8..].copy_from_slice(&9u64.to_be_bytes());
        assert_eq!(simple_reply(&b), Some((28, 9)));
        assert_eq!(error_name(28), "NBD_ENOSPC (28)");
        b[..4].copy_from_slice(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
        assert_eq!(simple_reply(&b), None);
    }
}
