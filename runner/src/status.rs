//! Client for the guest status service (the protocol is
//! [`guest_contract::status`]): UDP datagrams and a persistent TCP
//! connection, both answered with one JSON object.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use guest_contract::status::{
    DirtyCheckReply, DirtyReply, PageCheck, ReplyError, Request, StatusReply,
};

use crate::cancel::Cancel;

/// Errors talking to the status service.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("status service at {addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("status service at {addr}: no answer within {ms} ms")]
    Timeout { addr: SocketAddr, ms: u128 },
    #[error("status service at {addr}: connection closed")]
    Closed { addr: SocketAddr },
    #[error("status service at {addr}: invalid reply {reply:?}: {message}")]
    Reply {
        addr: SocketAddr,
        reply: String,
        message: String,
    },
}

fn reply(addr: SocketAddr) -> impl Fn(ReplyError) -> StatusError {
    move |e| StatusError::Reply {
        addr,
        reply: e.reply,
        message: e.message,
    }
}

/// Sends `request` over UDP and waits up to `timeout` for the matching answer
/// (one whose `req` echoes the request), ignoring stale datagrams.
pub fn udp_status(
    sock: &UdpSocket,
    addr: SocketAddr,
    request: &str,
    timeout: Duration,
) -> Result<StatusReply, StatusError> {
    let io = |source| StatusError::Io { addr, source };
    let start = Instant::now();
    sock.send_to(request.as_bytes(), addr).map_err(io)?;
    let mut buf = [0u8; 2048];
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(StatusError::Timeout {
                addr,
                ms: timeout.as_millis(),
            });
        }
        sock.set_read_timeout(Some(left)).map_err(io)?;
        match sock.recv_from(&mut buf) {
            Ok((n, from)) if from == addr => {
                let text = String::from_utf8_lossy(&buf[..n]);
                let st = StatusReply::from_json(&text).map_err(reply(addr))?;
                if st.req == request.trim() {
                    return Ok(st);
                }
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            // ICMP unreachable while the guest's service is not up yet.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(io(e)),
        }
    }
}

/// The status service of one guest, asked over UDP with retries. Backend-
/// agnostic: the socket only has to reach the guest (for QEMU it is created
/// inside the runner's namespace).
#[derive(Debug)]
pub struct GuestClient {
    udp: UdpSocket,
    target: SocketAddr,
    next_req: u64,
    cancel: Cancel,
}

impl GuestClient {
    pub fn new(udp: UdpSocket, target: SocketAddr, cancel: Cancel) -> GuestClient {
        GuestClient {
            udp,
            target,
            next_req: 0,
            cancel,
        }
    }

    /// The guest's status service address.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Asks for the status (`status <n>`), retrying every 300 ms until
    /// `within` has passed or the run is cancelled.
    pub fn ask(&mut self, within: Duration) -> Result<StatusReply, StatusError> {
        let start = Instant::now();
        loop {
            self.next_req += 1;
            let req = Request::Status.text(Some(self.next_req));
            let left = within.saturating_sub(start.elapsed());
            match udp_status(
                &self.udp,
                self.target,
                &req,
                left.min(Duration::from_millis(300)),
            ) {
                Ok(s) => return Ok(s),
                Err(e) if start.elapsed() >= within || self.cancel.is_set() => return Err(e),
                Err(_) => {}
            }
        }
    }
}

impl GuestClient {
    /// Asks for the status until it answers or `within` has passed, sending
    /// a new request every `every` and taking the answer to any of them:
    /// for a guest that is coming up, whose first answer may be slower than
    /// the interval.
    pub fn ask_often(
        &mut self,
        within: Duration,
        every: Duration,
    ) -> Result<StatusReply, StatusError> {
        let addr = self.target;
        let io = |source| StatusError::Io { addr, source };
        let start = Instant::now();
        let mut sent: Vec<String> = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            let elapsed = start.elapsed();
            if elapsed >= within || self.cancel.is_set() {
                return Err(StatusError::Timeout {
                    addr,
                    ms: within.as_millis(),
                });
            }
            self.next_req += 1;
            let req = Request::Status.text(Some(self.next_req));
            match self.udp.send_to(req.as_bytes(), addr) {
                Ok(_) => sent.push(req.trim().to_owned()),
                // ICMP unreachable of an earlier request: the guest is not up yet.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(io(e)),
            }
            let until = start.elapsed() + every;
            loop {
                let left = until.saturating_sub(start.elapsed());
                if left.is_zero() {
                    break;
                }
                self.udp.set_read_timeout(Some(left)).map_err(io)?;
                match self.udp.recv_from(&mut buf) {
                    Ok((n, from)) if from == addr => {
                        let text = String::from_utf8_lossy(&buf[..n]);
                        let st = StatusReply::from_json(&text).map_err(reply(addr))?;
                        if sent.contains(&st.req) {
                            return Ok(st);
                        }
                    }
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::ConnectionRefused
                        ) =>
                    {
                        if e.kind() == std::io::ErrorKind::ConnectionRefused {
                            std::thread::sleep(left.min(every));
                        }
                    }
                    Err(e) => return Err(io(e)),
                }
            }
        }
    }
}

/// A persistent TCP connection to the status service.
#[derive(Debug)]
pub struct TcpSession {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl TcpSession {
    /// Wraps a connected stream (connect it inside the namespace).
    pub fn new(stream: TcpStream, timeout: Duration) -> Result<TcpSession, StatusError> {
        let addr = stream.peer_addr().map_err(|source| StatusError::Io {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
        let io = |source| StatusError::Io { addr, source };
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        Ok(TcpSession {
            addr,
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Sends one request line and returns the reply line.
    pub fn request(&mut self, line: &str) -> Result<String, StatusError> {
        let addr = self.addr;
        let io = |source: std::io::Error| {
            if matches!(
                source.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                StatusError::Timeout { addr, ms: 0 }
            } else {
                StatusError::Io { addr, source }
            }
        };
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .map_err(io)?;
        let mut reply = String::new();
        if self.reader.read_line(&mut reply).map_err(io)? == 0 {
            return Err(StatusError::Closed { addr });
        }
        Ok(reply)
    }

    pub fn status(&mut self) -> Result<StatusReply, StatusError> {
        let r = self.request(&Request::Status.text(None))?;
        StatusReply::from_json(&r).map_err(reply(self.addr))
    }

    /// Starts the guest's memory-dirtying workload (`dirty <MB>`).
    pub fn dirty(&mut self, mb: u32) -> Result<(), StatusError> {
        let r = self.request(&Request::Dirty(mb).text(None))?;
        match DirtyReply::from_json(&r).map_err(reply(self.addr))? {
            DirtyReply::Started { .. } => Ok(()),
            DirtyReply::Refused { error } => Err(StatusError::Reply {
                addr: self.addr,
                reply: r.trim().to_string(),
                message: format!("the guest refused `dirty`: {error}"),
            }),
        }
    }

    /// Asks the guest to verify every dirtied page (`dirty-check`).
    pub fn dirty_check(&mut self) -> Result<PageCheck, StatusError> {
        let r = self.request(&Request::DirtyCheck.text(None))?;
        match DirtyCheckReply::from_json(&r).map_err(reply(self.addr))? {
            DirtyCheckReply::Checked(c) => Ok(c),
            DirtyCheckReply::Refused { error } => Err(StatusError::Reply {
                addr: self.addr,
                reply: r.trim().to_string(),
                message: format!("the guest refused `dirty-check`: {error}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    const REPLY: &str = r#"{"boot_id":"b-1","hostname":"busybox","mac":"00:16:3e:00:00:01","addresses":["10.99.0.2/24"],"uptime_ms":1234,"seq":17,"req":"status"}"#;

    #[test]
    fn udp_matches_request_and_skips_stale_answers() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let h = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let (_, from) = server.recv_from(&mut buf).unwrap();
            let stale = REPLY.replace("\"req\":\"status\"", "\"req\":\"probe 3\"");
            server.send_to(stale.as_bytes(), from).unwrap();
            server.send_to(REPLY.as_bytes(), from).unwrap();
        });
        let st = udp_status(&client, addr, "status", Duration::from_secs(2)).unwrap();
        assert_eq!(st.seq, 17);
        assert_eq!(st.addresses, vec!["10.99.0.2/24".to_string()]);
        h.join().unwrap();
    }

    #[test]
    fn udp_times_out() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = udp_status(
            &client,
            server.local_addr().unwrap(),
            "status",
            Duration::from_millis(50),
        );
        assert!(matches!(e, Err(StatusError::Timeout { .. })), "{e:?}");
    }

    #[test]
    fn tcp_session_keeps_one_connection() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut w = s.try_clone().unwrap();
            let mut lines = BufReader::new(s).lines();
            assert_eq!(lines.next().unwrap().unwrap(), "status");
            w.write_all(format!("{REPLY}\n").as_bytes()).unwrap();
            assert_eq!(lines.next().unwrap().unwrap(), "dirty 64");
            w.write_all(b"{\"ok\":true,\"dirty_mb\":64}\n").unwrap();
            assert_eq!(lines.next().unwrap().unwrap(), "dirty-check");
            w.write_all(b"{\"ok\":true,\"pages\":16384,\"bad\":2}\n")
                .unwrap();
        });
        let mut t =
            TcpSession::new(TcpStream::connect(addr).unwrap(), Duration::from_secs(2)).unwrap();
        assert_eq!(t.status().unwrap().boot_id, "b-1");
        t.dirty(64).unwrap();
        assert_eq!(
            t.dirty_check().unwrap(),
            PageCheck {
                pages: 16384,
                bad: 2
            }
        );
        h.join().unwrap();
        assert!(matches!(
            t.status(),
            Err(StatusError::Closed { .. } | StatusError::Io { .. })
        ));
    }
}
