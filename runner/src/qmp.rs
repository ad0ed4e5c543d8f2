//! A small QMP client: JSON lines over QEMU's unix socket, written with serde_json.
//!
//! Only the fields the runner reads are typed; everything else is kept as
//! `serde_json::Value`, so replies from any QEMU version parse.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

/// How long one command may take before QEMU is considered hung.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors from the QMP conversation.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// The socket failed (QEMU exited or hung).
    #[error("QMP I/O: {0}")]
    Io(#[from] std::io::Error),
    /// QEMU closed the connection.
    #[error("QMP connection closed by QEMU")]
    Closed,
    /// A line was not JSON.
    #[error("QMP sent invalid JSON {line:?}: {source}")]
    Json {
        line: String,
        source: serde_json::Error,
    },
    /// The greeting was not a QMP greeting.
    #[error("not a QMP greeting: {0}")]
    Greeting(String),
    /// QEMU answered a command with an error.
    #[error("QMP {command} failed: {class}: {desc}")]
    Command {
        command: String,
        class: String,
        desc: String,
    },
    /// A reply did not have the expected shape.
    #[error("QMP {command}: unexpected reply {reply}")]
    Shape { command: String, reply: String },
}

/// A QMP connection after capabilities negotiation.
#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    /// Events seen while waiting for replies (name, data), oldest first.
    pub events: Vec<(String, Value)>,
}

/// `query-status`.
#[derive(Debug, Clone, Deserialize)]
pub struct VmStatus {
    pub status: String,
    pub running: bool,
}

/// RAM statistics of `query-migrate`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RamStats {
    #[serde(default)]
    pub transferred: u64,
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub remaining: u64,
    #[serde(default)]
    pub duplicate: u64,
    #[serde(default)]
    pub normal: u64,
    #[serde(default)]
    pub dirty_sync_count: u64,
}

/// `query-migrate`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct MigrateInfo {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub total_time: Option<u64>,
    #[serde(default)]
    pub expected_downtime: Option<u64>,
    #[serde(default)]
    pub downtime: Option<u64>,
    #[serde(default)]
    pub setup_time: Option<u64>,
    #[serde(default)]
    pub ram: Option<RamStats>,
    #[serde(default)]
    pub error_desc: Option<String>,
}

impl Qmp {
    /// Reads the greeting and negotiates capabilities.
    pub fn handshake(stream: UnixStream) -> Result<Qmp, QmpError> {
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        let writer = stream.try_clone()?;
        let mut q = Qmp {
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
            events: Vec::new(),
        };
        let greeting = q.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Greeting(greeting.to_string()));
        }
        q.execute("qmp_capabilities", None)?;
        Ok(q)
    }

    fn read_message(&mut self) -> Result<Value, QmpError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(QmpError::Closed);
        }
        serde_json::from_str(&line).map_err(|source| QmpError::Json {
            line: line.trim_end().to_string(),
            source,
        })
    }

    /// Runs one command and returns its `return` value; events are set aside.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({ "execute": command, "id": id });
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        let mut text = msg.to_string();
        text.push('\n');
        self.writer.write_all(text.as_bytes())?;
        loop {
            let v = self.read_message()?;
            if let Some(ev) = v.get("event").and_then(Value::as_str) {
                let data = v.get("data").cloned().unwrap_or(Value::Null);
                self.events.push((ev.to_string(), data));
                continue;
            }
            if v.get("id").and_then(Value::as_u64) != Some(id) {
                continue;
            }
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                let s = |k| e.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
                return Err(QmpError::Command {
                    command: command.to_string(),
                    class: s("class"),
                    desc: s("desc"),
                });
            }
        }
    }

    fn typed<T: for<'de> Deserialize<'de>>(&mut self, command: &str) -> Result<T, QmpError> {
        let v = self.execute(command, None)?;
        serde_json::from_value(v.clone()).map_err(|_| QmpError::Shape {
            command: command.to_string(),
            reply: v.to_string(),
        })
    }

    pub fn query_status(&mut self) -> Result<VmStatus, QmpError> {
        self.typed("query-status")
    }

    pub fn query_migrate(&mut self) -> Result<MigrateInfo, QmpError> {
        self.typed("query-migrate")
    }

    /// Sets migration capabilities, e.g. `[("events", true)]`.
    pub fn migrate_set_capabilities(&mut self, caps: &[(&str, bool)]) -> Result<(), QmpError> {
        let list: Vec<Value> = caps
            .iter()
            .map(|(c, on)| json!({ "capability": c, "state": on }))
            .collect();
        self.execute(
            "migrate-set-capabilities",
            Some(json!({ "capabilities": list })),
        )
        .map(drop)
    }

    /// Sets migration parameters, e.g. `{"max-bandwidth": 1048576}`.
    pub fn migrate_set_parameters(&mut self, params: Value) -> Result<(), QmpError> {
        self.execute("migrate-set-parameters", Some(params))
            .map(drop)
    }

    /// Starts an outgoing migration to `uri` (`unix:/path` or `tcp:127.0.0.1:port`).
    pub fn migrate(&mut self, uri: &str) -> Result<(), QmpError> {
        self.execute("migrate", Some(json!({ "uri": uri })))
            .map(drop)
    }

    /// Makes a `-incoming defer` QEMU listen on `uri`.
    pub fn migrate_incoming(&mut self, uri: &str) -> Result<(), QmpError> {
        self.execute("migrate-incoming", Some(json!({ "uri": uri })))
            .map(drop)
    }

    pub fn migrate_cancel(&mut self) -> Result<(), QmpError> {
        self.execute("migrate_cancel", None).map(drop)
    }

    pub fn stop(&mut self) -> Result<(), QmpError> {
        self.execute("stop", None).map(drop)
    }

    pub fn cont(&mut self) -> Result<(), QmpError> {
        self.execute("cont", None).map(drop)
    }

    /// Asks QEMU to exit. QEMU may close the socket before answering.
    pub fn quit(&mut self) -> Result<(), QmpError> {
        match self.execute("quit", None) {
            Ok(_) | Err(QmpError::Closed) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};

    /// A fake QMP server on a socketpair: answers from a script, checking requests.
    fn fake(
        script: Vec<(&'static str, String)>,
    ) -> (UnixStream, std::thread::JoinHandle<Vec<String>>) {
        let (a, b) = UnixStream::pair().unwrap();
        let h = std::thread::spawn(move || {
            let mut w = b.try_clone().unwrap();
            let mut r = BufReader::new(b);
            w.write_all(b"{\"QMP\": {\"version\": {\"qemu\": {\"major\": 10, \"minor\": 0, \"micro\": 2}}, \"capabilities\": []}}\r\n").unwrap();
            let mut seen = Vec::new();
            for (expect, reply) in script {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                let v: Value = serde_json::from_str(&line).unwrap();
                assert_eq!(v["execute"], expect);
                let id = v["id"].clone();
                seen.push(line.trim().to_string());
                let reply = reply.replace("ID", &id.to_string());
                w.write_all(reply.as_bytes()).unwrap();
            }
            seen
        });
        (a, h)
    }

    #[test]
    fn handshake_skips_events_and_parses_migrate_info() {
        let (s, h) = fake(vec![
            ("qmp_capabilities", "{\"return\": {}, \"id\": ID}\r\n".into()),
            (
                "query-migrate",
                "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"MIGRATION\", \"data\": {\"status\": \"active\"}}\r\n\
                 {\"return\": {\"status\": \"completed\", \"total-time\": 812, \"downtime\": 14, \"setup-time\": 3, \
                 \"ram\": {\"transferred\": 123456, \"total\": 537001984, \"remaining\": 0, \"mbps\": 900.5}}, \"id\": ID}\r\n".into(),
            ),
        ]);
        let mut q = Qmp::handshake(s).unwrap();
        let m = q.query_migrate().unwrap();
        assert_eq!(m.status.as_deref(), Some("completed"));
        assert_eq!(
            (m.total_time, m.downtime, m.setup_time),
            (Some(812), Some(14), Some(3))
        );
        assert_eq!(m.ram.unwrap().transferred, 123456);
        assert_eq!(q.events.len(), 1);
        assert_eq!(q.events[0].0, "MIGRATION");
        h.join().unwrap();
    }

    #[test]
    fn command_errors_carry_class_and_desc() {
        let (s, h) = fake(vec![
            ("qmp_capabilities", "{\"return\": {}, \"id\": ID}\n".into()),
            (
                "migrate",
                "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Failed to connect\"}, \"id\": ID}\n".into(),
            ),
        ]);
        let mut q = Qmp::handshake(s).unwrap();
        let e = q.migrate("unix:/nonexistent").unwrap_err().to_string();
        assert_eq!(e, "QMP migrate failed: GenericError: Failed to connect");
        let seen = h.join().unwrap();
        assert!(
            seen[1].contains("\"uri\":\"unix:/nonexistent\""),
            "{seen:?}"
        );
    }

    #[test]
    fn closed_socket_is_reported() {
        let (s, h) = fake(vec![(
            "qmp_capabilities",
            "{\"return\": {}, \"id\": ID}\n".into(),
        )]);
        let mut q = Qmp::handshake(s).unwrap();
        h.join().unwrap();
        assert!(matches!(
            q.query_status(),
            Err(QmpError::Closed | QmpError::Io(_))
        ));
    }
}
