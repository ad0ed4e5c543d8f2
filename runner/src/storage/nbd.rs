//! An NBD client in the process (plain TCP, no kernel `nbd` device, no
//! root): the fixed newstyle handshake, `NBD_OPT_GO` (or
//! `NBD_OPT_EXPORT_NAME` for a server without it), then one simple-reply
//! request at a time: `NBD_CMD_WRITE` for data, `NBD_CMD_WRITE_ZEROES` for
//! holes, `NBD_CMD_FLUSH` and `NBD_CMD_DISC` at the end. Structured replies
//! are never negotiated, so every reply is a simple one.

use std::time::Duration;

use crate::cancel::Cancel;
use crate::storage::nbd_msg::{self as msg, Cmd, Info, OptReply};
use crate::storage::sink::{Sink, SinkError};
use crate::storage::wire::{Wire, WireError, peer_name};

/// The largest write payload when the server states none (the spec's
/// default maximum, 32 MiB, is more than a push needs in one request).
const DEFAULT_MAX_WRITE: u32 = 4 << 20;

/// The longest `NBD_CMD_WRITE_ZEROES` sent. nbd-server (3.24 to 3.27 at
/// least) zeroes a longer request 64 MiB at a time without advancing the
/// offset, so all but its first 64 MiB stay as they were; requests of 32
/// MiB (the spec's default maximum payload) are safe with any server.
const MAX_ZERO: u64 = 32 << 20;

/// Why an NBD push failed: every message names the server and the export.
#[derive(Debug, thiserror::Error)]
pub enum NbdError {
    /// The connection failed.
    #[error("nbd server {server}, export {export:?}: {source}")]
    Wire {
        server: String,
        export: String,
        source: WireError,
    },
    /// The server does not speak the newstyle protocol.
    #[error("nbd server {server}, export {export:?}: {what}")]
    Protocol {
        server: String,
        export: String,
        what: String,
    },
    /// The server refused the export.
    #[error("nbd server {server}: export {export:?} refused: {code}{message}")]
    Refused {
        server: String,
        export: String,
        code: String,
        message: String,
    },
    /// The export cannot be written.
    #[error("nbd server {server}: export {export:?} is read-only")]
    ReadOnly { server: String, export: String },
    /// A command failed.
    #[error(
        "nbd server {server}, export {export:?}: {cmd} of {len} bytes at offset {offset} failed: {code}"
    )]
    Command {
        server: String,
        export: String,
        cmd: &'static str,
        offset: u64,
        len: u32,
        code: String,
    },
}

impl NbdError {
    /// Whether Ctrl-C (not a failure) ended the connection.
    pub fn is_interrupted(&self) -> bool {
        matches!(
            self,
            NbdError::Wire {
                source: WireError::Interrupted,
                ..
            }
        )
    }
}

/// An NBD export in transmission phase.
#[derive(Debug)]
pub struct NbdClient {
    wire: Wire,
    export: String,
    size: u64,
    flags: u16,
    min_block: u32,
    max_write: u32,
    cookie: u64,
}

impl NbdClient {
    /// Connects to `host`:`port` and opens `export` for writing.
    pub fn connect(
        host: &str,
        port: u16,
        export: &str,
        timeout: Duration,
        cancel: &Cancel,
    ) -> Result<NbdClient, NbdError> {
        let wire = Wire::connect(host, port, timeout, cancel).map_err(|source| NbdError::Wire {
            server: peer_name(host, port),
            export: export.to_string(),
            source,
        })?;
        let mut c = NbdClient {
            wire,
            export: export.to_string(),
            size: 0,
            flags: 0,
            min_block: 1,
            max_write: DEFAULT_MAX_WRITE,
            cookie: 0,
        };
        c.handshake()?;
        if c.flags & msg::FLAG_READ_ONLY != 0 {
            return Err(NbdError::ReadOnly {
                server: c.server(),
                export: c.export.clone(),
            });
        }
        Ok(c)
    }

    fn server(&self) -> String {
        self.wire.peer().to_string()
    }

    fn wire_err(&self) -> impl Fn(WireError) -> NbdError + '_ {
        move |source| NbdError::Wire {
            server: self.server(),
            export: self.export.clone(),
            source,
        }
    }

    fn protocol(&self, what: impl Into<String>) -> NbdError {
        NbdError::Protocol {
            server: self.server(),
            export: self.export.clone(),
            what: what.into(),
        }
    }

    /// The export's transmission flags (`NBD_FLAG_*`).
    pub fn flags(&self) -> u16 {
        self.flags
    }

    fn send(&mut self, parts: &[&[u8]]) -> Result<(), NbdError> {
        let r = self.wire.send(parts);
        r.map_err(self.wire_err())
    }

    fn recv<const N: usize>(&mut self) -> Result<[u8; N], NbdError> {
        let mut b = [0u8; N];
        let r = self.wire.recv(&mut b);
        r.map_err(self.wire_err())?;
        Ok(b)
    }

    /// NBDMAGIC, IHAVEOPT, flags; our flags; then `NBD_OPT_GO`.
    fn handshake(&mut self) -> Result<(), NbdError> {
        let hello: [u8; 16] = self.recv()?;
        if msg::be64(&hello, 0) != msg::NBDMAGIC {
            return Err(self.protocol("not an NBD server (no NBDMAGIC greeting)"));
        }
        match msg::be64(&hello, 8) {
            msg::IHAVEOPT => {}
            msg::CLISERV_MAGIC => {
                return Err(self.protocol(
                    "the server speaks the oldstyle handshake only (it has no export names)",
                ));
            }
            m => return Err(self.protocol(format!("unknown handshake magic {m:#x}"))),
        }
        let server_flags = u16::from_be_bytes(self.recv()?);
        let no_zeroes = server_flags & msg::FLAG_NO_ZEROES != 0;
        let fixed = server_flags & msg::FLAG_FIXED_NEWSTYLE != 0;
        let mut ours = 0u32;
        if fixed {
            ours |= msg::FLAG_C_FIXED_NEWSTYLE;
        }
        if no_zeroes {
            ours |= msg::FLAG_C_NO_ZEROES;
        }
        self.send(&[&ours.to_be_bytes()])?;
        // Without fixed newstyle a server may not answer an option it does
        // not know, so only NBD_OPT_EXPORT_NAME is safe.
        if fixed && self.go()? {
            return Ok(());
        }
        self.export_name(no_zeroes)
    }

    /// `NBD_OPT_GO`: `Ok(false)` if the server answers `NBD_REP_ERR_UNSUP`.
    fn go(&mut self) -> Result<bool, NbdError> {
        let data = msg::go_data(&self.export, &[msg::INFO_BLOCK_SIZE]);
        let o = msg::option(msg::OPT_GO, &data);
        self.send(&[&o])?;
        let mut export = None;
        loop {
            let head: [u8; 20] = self.recv()?;
            let r = OptReply::parse(&head)
                .ok_or_else(|| self.protocol("option reply without its magic"))?;
            if r.len > 1 << 20 {
                return Err(self.protocol(format!("option reply of {} bytes", r.len)));
            }
            let len = r.len as usize;
            let got = self.wire.recv_vec(len);
            let data = got.map_err(self.wire_err())?;
            match r.kind {
                msg::REP_ACK => break,
                msg::REP_INFO => match Info::parse(&data) {
                    Some(Info::Export { size, flags }) => export = Some((size, flags)),
                    Some(Info::BlockSize { min, max, .. }) => {
                        self.min_block = min.max(1);
                        self.max_write = max.min(DEFAULT_MAX_WRITE);
                    }
                    Some(Info::Other(_)) => {}
                    None => return Err(self.protocol("a truncated NBD_REP_INFO")),
                },
                msg::REP_ERR_UNSUP => return Ok(false),
                k if k & msg::REP_FLAG_ERROR != 0 => {
                    let text = String::from_utf8_lossy(&data);
                    let message = if text.trim().is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", text.trim())
                    };
                    let code = if k == msg::REP_ERR_UNKNOWN {
                        "the server has no export of that name (NBD_REP_ERR_UNKNOWN)".to_string()
                    } else {
                        msg::rep_err_name(k)
                    };
                    return Err(NbdError::Refused {
                        server: self.server(),
                        export: self.export.clone(),
                        code,
                        message,
                    });
                }
                _ => {} // Informational replies a later protocol may add.
            }
        }
        let (size, flags) = export
            .ok_or_else(|| self.protocol("NBD_OPT_GO acknowledged without NBD_INFO_EXPORT"))?;
        self.size = size;
        self.flags = flags;
        Ok(true)
    }

    /// `NBD_OPT_EXPORT_NAME`: size, flags and (unless `NO_ZEROES`) 124 zeros.
    /// The server closes the connection if it has no such export.
    fn export_name(&mut self, no_zeroes: bool) -> Result<(), NbdError> {
        let o = msg::option(msg::OPT_EXPORT_NAME, self.export.as_bytes());
        self.send(&[&o])?;
        let reply: Result<[u8; 10], NbdError> = self.recv();
        let b = match reply {
            Err(NbdError::Wire {
                source: WireError::Closed,
                ..
            }) => {
                return Err(NbdError::Refused {
                    server: self.server(),
                    export: self.export.clone(),
                    code: "the server closed the connection (no export of that name?)".into(),
                    message: String::new(),
                });
            }
            r => r?,
        };
        self.size = msg::be64(&b, 0);
        self.flags = msg::be16(&b, 8);
        if !no_zeroes {
            let _: [u8; 124] = self.recv()?;
        }
        Ok(())
    }

    /// Sends one request and waits for its simple reply.
    fn command(&mut self, cmd: Cmd, offset: u64, data: &[u8], len: u32) -> Result<(), NbdError> {
        self.cookie += 1;
        let head = msg::request(cmd, 0, self.cookie, offset, len);
        self.send(&[&head, data])?;
        let b: [u8; 16] = self.recv()?;
        let (error, cookie) =
            msg::simple_reply(&b).ok_or_else(|| self.protocol("a reply without its magic"))?;
        if cookie != self.cookie {
            return Err(self.protocol(format!(
                "a reply to request {cookie} while request {} was the only one out",
                self.cookie
            )));
        }
        if error != 0 {
            return Err(NbdError::Command {
                server: self.server(),
                export: self.export.clone(),
                cmd: cmd.name(),
                offset,
                len,
                code: msg::error_name(error),
            });
        }
        Ok(())
    }

    fn interrupted(e: NbdError) -> SinkError {
        match e {
            NbdError::Wire {
                source: WireError::Interrupted,
                ..
            } => SinkError::Interrupted,
            e => SinkError::Nbd(e),
        }
    }
}

impl Sink for NbdClient {
    fn describe(&self) -> String {
        format!("nbd {} export {:?}", self.wire.peer(), self.export)
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn block_size(&self) -> u64 {
        // The spec asks interoperable clients for 512-byte alignment.
        u64::from(self.min_block.max(512))
    }

    fn max_write(&self) -> usize {
        let bs = self.block_size() as u32;
        (self.max_write / bs * bs).max(bs) as usize
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), SinkError> {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        self.command(Cmd::Write, offset, data, len)
            .map_err(NbdClient::interrupted)
    }

    fn zero(&mut self, offset: u64, len: u64) -> Result<(), SinkError> {
        if self.flags & msg::FLAG_SEND_WRITE_ZEROES == 0 {
            let trim = if self.flags & msg::FLAG_SEND_TRIM != 0 {
                " (it offers NBD_CMD_TRIM, but trimmed blocks need not read back as zeros)"
            } else {
                ""
            };
            return Err(SinkError::CannotZero(format!(
                "{} cannot zero ranges: no NBD_FLAG_SEND_WRITE_ZEROES{trim}",
                self.describe()
            )));
        }
        let mut done = 0;
        while done < len {
            let n = (len - done).min(MAX_ZERO);
            // No NBD_CMD_FLAG_NO_HOLE: the server may punch holes.
            self.command(Cmd::WriteZeroes, offset + done, &[], n as u32)
                .map_err(NbdClient::interrupted)?;
            done += n;
        }
        Ok(())
    }

    fn zero_method(&self) -> &'static str {
        "NBD_CMD_WRITE_ZEROES"
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        if self.flags & msg::FLAG_SEND_FLUSH != 0 {
            self.command(Cmd::Flush, 0, &[], 0)
                .map_err(NbdClient::interrupted)?;
        }
        self.cookie += 1;
        let head = msg::request(Cmd::Disc, 0, self.cookie, 0, 0);
        // NBD_CMD_DISC has no reply.
        self.send(&[&head]).map_err(NbdClient::interrupted)?;
        self.wire.close();
        Ok(())
    }

    fn wire_bytes(&self) -> u64 {
        self.wire.sent()
    }
}
