//! The guest status service's protocol: the runner's requests and the init's
//! replies.
//!
//! TCP and UDP on one port ([`DEFAULT_PORT`] unless the recipe says
//! otherwise). Each request — a UDP datagram, or a line on a TCP connection
//! that stays open — gets one JSON object (a line on TCP):
//!
//! | request | reply |
//! | --- | --- |
//! | `status` (or anything not below, or empty) | [`StatusReply`] |
//! | `probe <n>` | [`ProbeReply`]: `seq` and `req` only, no `/proc`, `/sys` or netlink reads, so a just-migrated guest answers sooner |
//! | `dirty <MB>` | [`DirtyReply`]: starts (once) a thread rewriting MB MiB page by page |
//! | `dirty-check` | [`DirtyCheckReply`]: pauses it and verifies every page |
//!
//! `seq` is one counter for TCP and UDP, increasing by one with every
//! `status` or `probe` answer since boot; `req` echoes the request (trimmed,
//! at most [`MAX_REQ`] bytes), so a client matches answers to requests by
//! tagging them (`status 17`, `probe 17`).

use crate::json::Obj;

/// The port unless the recipe says otherwise.
pub const DEFAULT_PORT: u16 = 5115;
/// Longest request text echoed back in `req`.
pub const MAX_REQ: usize = 64;
/// The largest `dirty <MB>`.
pub const MAX_DIRTY_MB: u32 = 65536;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// The full status.
    Status,
    /// The short answer of the downtime probe.
    Probe,
    /// Start dirtying this many MiB.
    Dirty(u32),
    /// Verify the dirtied memory.
    DirtyCheck,
}

impl Request {
    /// What the request text asks for (the init's side).
    pub fn parse(text: &str) -> Request {
        let mut words = text.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("dirty"), Some(mb), None) => match mb.parse::<u32>() {
                Ok(mb) if (1..=MAX_DIRTY_MB).contains(&mb) => Request::Dirty(mb),
                _ => Request::Status,
            },
            (Some("dirty-check"), None, None) => Request::DirtyCheck,
            (Some("probe"), _, _) => Request::Probe,
            _ => Request::Status,
        }
    }

    /// The request's text (the runner's side); `tag` is echoed back in the
    /// reply's `req` (only `status` and `probe` take one).
    pub fn text(self, tag: Option<u64>) -> String {
        let verb = match self {
            Request::Status => "status",
            Request::Probe => "probe",
            Request::Dirty(mb) => return format!("dirty {mb}"),
            Request::DirtyCheck => return "dirty-check".to_owned(),
        };
        match tag {
            Some(n) => format!("{verb} {n}"),
            None => verb.to_owned(),
        }
    }
}

/// The `req` a reply echoes: the request trimmed, cut to [`MAX_REQ`] bytes
/// on a character boundary.
pub fn echo(text: &str) -> &str {
    let s = text.trim();
    let mut end = s.len().min(MAX_REQ);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// The tag `n` of a `probe <n>` request a reply's `req` echoes.
pub fn probe_tag(req: &str) -> Option<u64> {
    req.strip_prefix("probe ")?.parse().ok()
}

/// The reply to `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
pub struct StatusReply {
    /// `/proc/sys/kernel/random/boot_id`: changes when the guest reboots.
    pub boot_id: String,
    /// The current host name.
    #[cfg_attr(feature = "serde", serde(default))]
    pub hostname: String,
    /// The guest interface's MAC, as the kernel reports it.
    pub mac: String,
    /// Its IPv4 addresses as `a.b.c.d/p`.
    #[cfg_attr(feature = "serde", serde(default))]
    pub addresses: Vec<String>,
    /// Milliseconds since boot.
    #[cfg_attr(feature = "serde", serde(default))]
    pub uptime_ms: u64,
    /// The answer counter.
    pub seq: u64,
    /// The request, echoed.
    #[cfg_attr(feature = "serde", serde(default))]
    pub req: String,
}

impl StatusReply {
    /// The reply's JSON text.
    pub fn to_json(&self) -> String {
        Obj::new()
            .str("boot_id", &self.boot_id)
            .str("hostname", &self.hostname)
            .str("mac", &self.mac)
            .strs("addresses", &self.addresses)
            .num("uptime_ms", self.uptime_ms)
            .num("seq", self.seq)
            .str("req", &self.req)
            .finish()
    }
}

/// The reply to `probe <n>`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
pub struct ProbeReply {
    /// The answer counter.
    pub seq: u64,
    /// The request, echoed.
    pub req: String,
}

impl ProbeReply {
    /// The reply's JSON text.
    pub fn to_json(&self) -> String {
        Obj::new()
            .num("seq", self.seq)
            .str("req", &self.req)
            .finish()
    }
}

/// The reply to `dirty <MB>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirtyReply {
    /// Dirtying (this size; a second `dirty` keeps the first size).
    Started {
        /// MiB being rewritten.
        dirty_mb: u64,
    },
    /// Not started.
    Refused {
        /// Why.
        error: String,
    },
}

impl DirtyReply {
    /// The reply's JSON text.
    pub fn to_json(&self) -> String {
        match self {
            DirtyReply::Started { dirty_mb } => Obj::new()
                .bool("ok", true)
                .num("dirty_mb", *dirty_mb)
                .finish(),
            DirtyReply::Refused { error } => refused(error),
        }
    }
}

/// What `dirty-check` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCheck {
    /// Pages checked.
    pub pages: u64,
    /// Pages not holding their last pattern.
    pub bad: u64,
}

/// The reply to `dirty-check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirtyCheckReply {
    /// Every page was checked.
    Checked(PageCheck),
    /// Nothing to check.
    Refused {
        /// Why (`dirty not started`).
        error: String,
    },
}

impl DirtyCheckReply {
    /// The reply's JSON text.
    pub fn to_json(&self) -> String {
        match self {
            DirtyCheckReply::Checked(c) => Obj::new()
                .bool("ok", true)
                .num("pages", c.pages)
                .num("bad", c.bad)
                .finish(),
            DirtyCheckReply::Refused { error } => refused(error),
        }
    }
}

fn refused(error: &str) -> String {
    Obj::new().bool("ok", false).str("error", error).finish()
}

#[cfg(feature = "serde")]
pub use parse::ReplyError;

#[cfg(feature = "serde")]
mod parse {
    use super::{DirtyCheckReply, DirtyReply, PageCheck, ProbeReply, StatusReply};

    /// A reply that is not what the protocol says.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    #[error("invalid reply {reply:?}: {message}")]
    pub struct ReplyError {
        /// The reply (its first 300 characters).
        pub reply: String,
        /// What is wrong.
        pub message: String,
    }

    fn error(text: &str, message: String) -> ReplyError {
        ReplyError {
            reply: text.trim().chars().take(300).collect(),
            message,
        }
    }

    fn json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ReplyError> {
        serde_json::from_str(text.trim()).map_err(|e| error(text, e.to_string()))
    }

    /// The `{"ok": …}` replies, before they are told apart.
    #[derive(serde::Deserialize)]
    struct OkReply {
        ok: bool,
        error: Option<String>,
        dirty_mb: Option<u64>,
        pages: Option<u64>,
        bad: Option<u64>,
    }

    impl StatusReply {
        /// Reads a `status` reply.
        pub fn from_json(text: &str) -> Result<StatusReply, ReplyError> {
            json(text)
        }
    }

    impl ProbeReply {
        /// Reads a `probe` reply.
        pub fn from_json(text: &str) -> Result<ProbeReply, ReplyError> {
            json(text)
        }
    }

    impl DirtyReply {
        /// Reads a `dirty` reply.
        pub fn from_json(text: &str) -> Result<DirtyReply, ReplyError> {
            let r: OkReply = json(text)?;
            match (r.ok, r.dirty_mb, r.error) {
                (true, Some(dirty_mb), _) => Ok(DirtyReply::Started { dirty_mb }),
                (false, _, Some(error)) => Ok(DirtyReply::Refused { error }),
                _ => Err(error(text, "not a reply to `dirty`".into())),
            }
        }
    }

    impl DirtyCheckReply {
        /// Reads a `dirty-check` reply.
        pub fn from_json(text: &str) -> Result<DirtyCheckReply, ReplyError> {
            let r: OkReply = json(text)?;
            match (r.ok, r.pages, r.bad, r.error) {
                (true, Some(pages), Some(bad), _) => {
                    Ok(DirtyCheckReply::Checked(PageCheck { pages, bad }))
                }
                (false, _, _, Some(error)) => Ok(DirtyCheckReply::Refused { error }),
                _ => Err(error(text, "not a reply to `dirty-check`".into())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_the_runner_sends_are_what_the_init_reads() {
        for (r, tag, text) in [
            (Request::Status, Some(17), "status 17"),
            (Request::Status, None, "status"),
            (Request::Probe, Some(3), "probe 3"),
            (Request::Dirty(64), None, "dirty 64"),
            (Request::DirtyCheck, None, "dirty-check"),
        ] {
            assert_eq!(r.text(tag), text);
            assert_eq!(Request::parse(&r.text(tag)), r);
        }
        assert_eq!(probe_tag(echo(&Request::Probe.text(Some(42)))), Some(42));
        assert_eq!(probe_tag("status 42"), None);
    }

    #[test]
    fn anything_else_is_status() {
        for t in [
            "",
            "hi",
            "dirty",
            "dirty 0",
            "dirty nope",
            "dirty 65537",
            "dirty 1 2",
        ] {
            assert_eq!(Request::parse(t), Request::Status, "{t:?}");
        }
        assert_eq!(Request::parse("dirty 65536"), Request::Dirty(65536));
        assert_eq!(Request::parse("probe"), Request::Probe);
    }

    #[test]
    fn echo_trims_and_clips() {
        assert_eq!(echo("  status \n"), "status");
        assert_eq!(echo(&"x".repeat(100)), "x".repeat(64));
        let wide = "é".repeat(40); // 80 bytes
        assert_eq!(echo(&wide), "é".repeat(32));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn replies_read_back_as_written() {
        let st = StatusReply {
            boot_id: "b-1".into(),
            hostname: "busybox".into(),
            mac: "00:16:3e:00:00:01".into(),
            addresses: vec!["10.99.0.2/24".into()],
            uptime_ms: 1234,
            seq: 1,
            req: "status \"quoted\"\n".into(),
        };
        assert_eq!(StatusReply::from_json(&st.to_json()), Ok(st));
        let p = ProbeReply {
            seq: 2,
            req: "probe 17".into(),
        };
        assert_eq!(p.to_json(), r#"{"seq":2,"req":"probe 17"}"#);
        assert_eq!(ProbeReply::from_json(&p.to_json()), Ok(p));
        for d in [
            DirtyReply::Started { dirty_mb: 64 },
            DirtyReply::Refused {
                error: "76 MiB is more than 3/4 of the 100 MiB available".into(),
            },
        ] {
            assert_eq!(DirtyReply::from_json(&d.to_json()), Ok(d));
        }
        for d in [
            DirtyCheckReply::Checked(PageCheck {
                pages: 16384,
                bad: 2,
            }),
            DirtyCheckReply::Refused {
                error: "dirty not started".into(),
            },
        ] {
            assert_eq!(DirtyCheckReply::from_json(&d.to_json()), Ok(d));
        }
    }

    #[test]
    fn reply_shapes_on_the_wire() {
        assert_eq!(
            DirtyReply::Started { dirty_mb: 2 }.to_json(),
            r#"{"ok":true,"dirty_mb":2}"#
        );
        assert_eq!(
            DirtyCheckReply::Checked(PageCheck { pages: 512, bad: 0 }).to_json(),
            r#"{"ok":true,"pages":512,"bad":0}"#
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn malformed_replies_are_errors() {
        let e = DirtyReply::from_json(r#"{"ok":true}"#).unwrap_err();
        assert!(e.to_string().contains("not a reply to `dirty`"), "{e}");
        assert!(StatusReply::from_json("{\"seq\":1}").is_err());
    }
}
