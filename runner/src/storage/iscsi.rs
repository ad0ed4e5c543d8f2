//! A minimal iSCSI initiator (RFC 7143), enough to write one LUN: one
//! connection, a Normal session logged in without authentication (no
//! CHAP), no digests, ErrorRecoveryLevel 0, and one SCSI command at a time
//! with its Data-Out (immediate, unsolicited and R2T-solicited) or Data-In.
//! Running a SCSI command is [`super::iscsi_task`]; the LUN as a push's
//! destination is [`super::iscsi_lun`].

use std::time::Duration;

use crate::cancel::Cancel;
use crate::storage::iscsi_login::{self as login, Negotiated, Offer};
use crate::storage::iscsi_pdu::{self as pdu, Bhs, Incoming, Stage};
use crate::storage::scsi::Sense;
use crate::storage::wire::{Wire, WireError, peer_name};

/// Login rounds per stage before giving up on a target that never agrees.
const MAX_LOGIN_ROUNDS: usize = 8;
/// The largest data segment accepted from a target (we declare 256 KiB).
const MAX_RECV_SEGMENT: usize = 16 << 20;

/// Where to log in.
#[derive(Debug, Clone, Copy)]
pub struct IscsiTarget<'a> {
    /// The portal's host and port.
    pub host: &'a str,
    pub port: u16,
    /// The target's iSCSI name.
    pub target: &'a str,
    /// The LUN.
    pub lun: u16,
    /// Our iSCSI name.
    pub initiator: &'a str,
}

/// The iSCSI name imgrun logs in with on host `hostname`:
/// `iqn.2026-12.org.imgbuild:imgrun-<hostname>` (lower case, characters
/// an iSCSI name may not hold replaced by `-`).
pub fn initiator_name(hostname: &str) -> String {
    let host: String = hostname
        .trim()
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '.') => c,
            _ => '-',
        })
        .collect();
    let host = if host.is_empty() { "host".into() } else { host };
    format!("iqn.2026-12.org.imgbuild:imgrun-{host}")
}

/// Why the iSCSI session failed; every message names target and portal.
#[derive(Debug, thiserror::Error)]
pub enum IscsiError {
    /// The connection failed.
    #[error("iscsi {target}@{portal}: {source}")]
    Wire {
        portal: String,
        target: String,
        source: WireError,
    },
    /// The target refused the login.
    #[error("iscsi {target}@{portal}: login refused: {what}")]
    Login {
        portal: String,
        target: String,
        what: String,
    },
    /// The target broke the protocol (or we met a part we do not speak).
    #[error("iscsi {target}@{portal}: {what}")]
    Protocol {
        portal: String,
        target: String,
        what: String,
    },
    /// A SCSI command failed.
    #[error("iscsi {target}@{portal} lun {lun}: {command} failed: {what}")]
    Scsi {
        portal: String,
        target: String,
        lun: u16,
        command: String,
        what: String,
        /// The SCSI status, when the target completed the command.
        status: Option<u8>,
        /// The sense data, when the status was CHECK CONDITION.
        sense: Option<Sense>,
    },
}

impl IscsiError {
    /// Whether Ctrl-C (not a failure) ended the session.
    pub fn is_interrupted(&self) -> bool {
        matches!(
            self,
            IscsiError::Wire {
                source: WireError::Interrupted,
                ..
            }
        )
    }

    /// The SCSI status of a failed command.
    pub fn status(&self) -> Option<u8> {
        match self {
            IscsiError::Scsi { status, .. } => *status,
            _ => None,
        }
    }

    /// The sense data of a failed command.
    pub fn sense(&self) -> Option<Sense> {
        match self {
            IscsiError::Scsi { sense, .. } => *sense,
            _ => None,
        }
    }
}

/// A command's data.
#[derive(Debug, Clone, Copy)]
pub enum Data<'a> {
    None,
    /// Data-In of at most this many bytes.
    In(u32),
    /// Data-Out.
    Out(&'a [u8]),
}

/// A logged-in session with one connection, in full feature phase.
#[derive(Debug)]
pub struct IscsiSession {
    pub(super) wire: Wire,
    pub(super) target: String,
    pub(super) lun: u16,
    isid: [u8; 6],
    tsih: u16,
    pub(super) itt: u32,
    pub(super) cmd_sn: u32,
    pub(super) max_cmd_sn: u32,
    pub(super) exp_stat_sn: u32,
    pub(super) neg: Negotiated,
}

impl IscsiSession {
    /// Connects to the portal and logs in to the target.
    pub fn login(
        t: &IscsiTarget<'_>,
        timeout: Duration,
        cancel: &Cancel,
    ) -> Result<IscsiSession, IscsiError> {
        let wire =
            Wire::connect(t.host, t.port, timeout, cancel).map_err(|source| IscsiError::Wire {
                portal: peer_name(t.host, t.port),
                target: t.target.to_string(),
                source,
            })?;
        // A random ISID (type 10b): two pushes from one host are two sessions.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let r = (nanos ^ std::process::id().rotate_left(12)).to_be_bytes();
        let mut s = IscsiSession {
            wire,
            target: t.target.to_string(),
            lun: t.lun,
            isid: [0x80, 0, r[1], r[2], r[3], 0],
            tsih: 0,
            itt: 0,
            cmd_sn: 1,
            max_cmd_sn: 1,
            exp_stat_sn: 0,
            neg: Offer::default()
                .settle(&[])
                .map_err(|what| IscsiError::Protocol {
                    portal: peer_name(t.host, t.port),
                    target: t.target.to_string(),
                    what,
                })?,
        };
        // One task tag for the whole login.
        let itt = s.next_itt();
        let keys = login::security_keys(t.initiator, t.target);
        let answers = s.stage(itt, Stage::Security, Stage::Operational, &keys, t.initiator)?;
        login::check_security(&answers).map_err(|what| s.login_err(what))?;
        let offer = Offer::default();
        let answers = s.stage(
            itt,
            Stage::Operational,
            Stage::FullFeature,
            &offer.keys(),
            t.initiator,
        )?;
        s.neg = offer.settle(&answers).map_err(|what| s.login_err(what))?;
        Ok(s)
    }

    /// What the target allows, as negotiated.
    pub fn negotiated(&self) -> Negotiated {
        self.neg
    }

    /// The portal, `host:port`.
    pub fn portal(&self) -> &str {
        self.wire.peer()
    }

    /// Bytes sent so far.
    pub fn sent(&self) -> u64 {
        self.wire.sent()
    }

    fn login_err(&self, what: String) -> IscsiError {
        IscsiError::Login {
            portal: self.portal().to_string(),
            target: self.target.clone(),
            what,
        }
    }

    pub(super) fn protocol(&self, what: impl Into<String>) -> IscsiError {
        IscsiError::Protocol {
            portal: self.portal().to_string(),
            target: self.target.clone(),
            what: what.into(),
        }
    }

    pub(super) fn next_itt(&mut self) -> u32 {
        self.itt = self.itt.wrapping_add(1);
        if self.itt == pdu::NO_TAG {
            self.itt = 0;
        }
        self.itt
    }

    pub(super) fn send(&mut self, mut bhs: Bhs, data: &[u8]) -> Result<(), IscsiError> {
        bhs.set_data_len(data.len());
        let pad = [0u8; 3];
        let pad = pad.get(..pdu::pad(data.len())).unwrap_or_default();
        let r = self.wire.send(&[&bhs.0, data, pad]);
        r.map_err(|source| self.wire_err(source))
    }

    pub(super) fn wire_err(&self, source: WireError) -> IscsiError {
        IscsiError::Wire {
            portal: self.portal().to_string(),
            target: self.target.clone(),
            source,
        }
    }

    /// Reads one PDU: its BHS and data segment (AHS skipped, padding removed).
    pub(super) fn recv(&mut self) -> Result<(Bhs, Vec<u8>), IscsiError> {
        let mut b = [0u8; pdu::BHS_LEN];
        let r = self.wire.recv(&mut b);
        r.map_err(|e| self.wire_err(e))?;
        let bhs = Bhs(b);
        let len = bhs.data_len();
        if len > MAX_RECV_SEGMENT {
            return Err(self.protocol(format!("a data segment of {len} bytes")));
        }
        let total = bhs.ahs_len() + len + pdu::pad(len);
        let got = self.wire.recv_vec(total);
        let mut data = got.map_err(|e| self.wire_err(e))?;
        data.drain(..bhs.ahs_len());
        data.truncate(len);
        Ok((bhs, data))
    }

    /// One login stage: sends `keys` asking to move to `next`, answers
    /// whatever the target offers in return, and returns the target's keys
    /// once it agrees to move.
    fn stage(
        &mut self,
        itt: u32,
        current: Stage,
        next: Stage,
        keys: &[(&'static str, String)],
        initiator: &str,
    ) -> Result<Vec<(String, String)>, IscsiError> {
        let mut answers: Vec<(String, String)> = Vec::new();
        let mut text = pdu::encode_text(keys);
        let mut raw: Vec<u8> = Vec::new();
        // Asking for the rest of a response (with an empty request, T=0).
        let mut more = false;
        for _ in 0..MAX_LOGIN_ROUNDS {
            let h = pdu::LoginHeader {
                isid: self.isid,
                tsih: self.tsih,
                itt,
                cid: 0,
                cmd_sn: self.cmd_sn,
                exp_stat_sn: self.exp_stat_sn,
                transit: !more,
                csg: current,
                nsg: next,
            };
            self.send(pdu::login_request(&h), &text)?;
            let (bhs, data) = self.recv()?;
            let Incoming::Login {
                transit,
                cont,
                nsg,
                tsih,
                sn,
                class,
                detail,
                ..
            } = Incoming::parse(&bhs)
            else {
                return Err(self.protocol(format!(
                    "opcode {:#04x} during login, not a Login Response",
                    bhs.opcode()
                )));
            };
            self.exp_stat_sn = sn.stat_sn.wrapping_add(1);
            self.cmd_sn = sn.exp_cmd_sn;
            self.max_cmd_sn = sn.max_cmd_sn;
            // A response marked C (continue) is followed by the rest of its
            // text, which may split a key: decode only the whole.
            raw.extend_from_slice(&data);
            more = cont && class == 0;
            if more {
                text.clear();
                continue;
            }
            let got = pdu::decode_text(&raw).map_err(|w| self.protocol(w))?;
            raw.clear();
            if class != 0 {
                return Err(self.login_err(login_status(
                    class,
                    detail,
                    &got,
                    &self.target,
                    initiator,
                )));
            }
            let replies = login::answer_target_offers(keys, &got);
            answers.extend(got);
            if transit && nsg == Some(next) {
                self.tsih = tsih;
                return Ok(answers);
            }
            text = pdu::encode_text(&replies);
        }
        Err(self.login_err(format!(
            "the target did not agree to leave the {current:?} stage in {MAX_LOGIN_ROUNDS} rounds"
        )))
    }

    /// Logs out (closing the session) and closes the connection.
    pub fn logout(&mut self) -> Result<(), IscsiError> {
        let itt = self.next_itt();
        let b = pdu::logout_request(itt, 0, self.cmd_sn, self.exp_stat_sn);
        self.send(b, &[])?;
        loop {
            let (bhs, _) = self.recv()?;
            match Incoming::parse(&bhs) {
                Incoming::Logout {
                    itt: i, response, ..
                } if i == itt => {
                    self.wire.close();
                    return if response == 0 {
                        Ok(())
                    } else {
                        Err(self.protocol(format!("logout answered with response {response}")))
                    };
                }
                Incoming::NopIn { .. } | Incoming::Async { .. } => {}
                _ => return Err(self.protocol("unexpected PDU while logging out")),
            }
        }
    }
}

/// A Login Response's Status-Class and Status-Detail (RFC 7143 §11.13.5),
/// explained.
fn login_status(
    class: u8,
    detail: u8,
    keys: &[(String, String)],
    target: &str,
    initiator: &str,
) -> String {
    let what = match (class, detail) {
        (1, _) => {
            let to = keys
                .iter()
                .find(|(k, _)| k == "TargetAddress")
                .map_or("another portal", |(_, v)| v.as_str());
            format!(
                "the target redirects to {to}; imgrun does not follow redirects: use that portal"
            )
        }
        (2, 1) => {
            "authentication failed (imgrun does not do CHAP: allow the initiator without it)".into()
        }
        (2, 2) => format!("initiator {initiator} is not allowed to log in (the target's ACL)"),
        (2, 3) => format!("the portal has no target {target}"),
        (2, 4) => format!("target {target} has been removed"),
        (2, 5) => "the target does not speak iSCSI version 0".into(),
        (2, 6) => "too many connections".into(),
        (2, 7) => "a login parameter is missing".into(),
        (2, 9) => "the target does not support a Normal session".into(),
        (2, _) => "the target says the initiator erred".into(),
        (3, 1) => "the target's service is unavailable".into(),
        (3, 2) => "the target is out of resources".into(),
        (3, _) => "the target failed".into(),
        _ => "unknown status".into(),
    };
    format!("{what} (status class {class}, detail {detail:#04x})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initiator_names_are_iscsi_names() {
        assert_eq!(
            initiator_name("Build-01.example\n"),
            "iqn.2026-12.org.imgbuild:imgrun-build-01.example"
        );
        assert_eq!(
            initiator_name("a_b c"),
            "iqn.2026-12.org.imgbuild:imgrun-a-b-c"
        );
        assert_eq!(initiator_name(""), "iqn.2026-12.org.imgbuild:imgrun-host");
    }

    #[test]
    fn login_statuses_say_what_to_do() {
        let k = vec![("TargetAddress".to_string(), "10.0.0.9:3260,1".to_string())];
        assert!(login_status(1, 1, &k, "t", "i").contains("redirects to 10.0.0.9:3260,1"));
        assert_eq!(
            login_status(2, 3, &[], "iqn.2026-12.org.x:t", "i"),
            "the portal has no target iqn.2026-12.org.x:t (status class 2, detail 0x03)"
        );
        assert!(
            login_status(2, 2, &[], "t", "iqn.2026-12.org.imgbuild:imgrun-h")
                .contains("imgrun-h is not allowed")
        );
    }
}
