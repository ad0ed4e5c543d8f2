//! One TCP connection to a storage server (an NBD server or an iSCSI
//! portal) as both clients use it: every read and write has a deadline, a
//! Ctrl-C stops it within a fraction of a second, and the bytes sent are
//! counted (so a push can say how much went over the wire).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::cancel::Cancel;

/// How often a blocked read or write wakes to look at the cancel flag.
const TICK: Duration = Duration::from_millis(200);

/// Why the connection failed (the caller's error names the server).
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The host name did not resolve.
    #[error("cannot resolve the host name: {0}")]
    Resolve(std::io::Error),
    /// No address of the host accepted the connection.
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    /// The server sent nothing (or took nothing) for the whole timeout.
    #[error("no progress for {} s while {doing} (server hung or network down)", .after.as_secs_f64())]
    Timeout {
        after: Duration,
        doing: &'static str,
    },
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Closed,
    /// Another socket error.
    #[error("{0}")]
    Io(std::io::Error),
    /// Ctrl-C (or SIGTERM) arrived.
    #[error("interrupted by a signal")]
    Interrupted,
}

impl WireError {
    /// Whether this is the cancel flag rather than a failure.
    pub fn is_interrupted(&self) -> bool {
        matches!(self, WireError::Interrupted)
    }
}

/// A connected socket with deadlines, cancellation and a sent-bytes count.
#[derive(Debug)]
pub struct Wire {
    stream: TcpStream,
    peer: String,
    timeout: Duration,
    cancel: Cancel,
    sent: u64,
}

impl Wire {
    /// Connects to `host`:`port` (trying each address the name resolves
    /// to), waiting at most `timeout` per address.
    pub fn connect(
        host: &str,
        port: u16,
        timeout: Duration,
        cancel: &Cancel,
    ) -> Result<Wire, WireError> {
        let peer = peer_name(host, port);
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(WireError::Resolve)?
            .collect();
        let mut last = std::io::Error::new(ErrorKind::NotFound, "the name has no address");
        for a in addrs {
            if cancel.is_set() {
                return Err(WireError::Interrupted);
            }
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(stream) => {
                    return Wire::new(stream, peer, timeout, cancel).map_err(WireError::Io);
                }
                Err(e) => last = e,
            }
        }
        Err(WireError::Connect(last))
    }

    fn new(
        stream: TcpStream,
        peer: String,
        timeout: Duration,
        cancel: &Cancel,
    ) -> std::io::Result<Wire> {
        // Requests and replies are small and strictly alternate: Nagle's
        // delay would stall every one of them.
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(TICK))?;
        stream.set_write_timeout(Some(TICK))?;
        Ok(Wire {
            stream,
            peer,
            timeout,
            cancel: cancel.clone(),
            sent: 0,
        })
    }

    /// The server, as errors name it (`host:port`).
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Bytes sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Sends all of `parts`, in order.
    pub fn send(&mut self, parts: &[&[u8]]) -> Result<(), WireError> {
        for part in parts {
            self.send_one(part)?;
        }
        Ok(())
    }

    fn send_one(&mut self, mut buf: &[u8]) -> Result<(), WireError> {
        let mut last = Instant::now();
        while !buf.is_empty() {
            self.tick(last, "sending")?;
            match self.stream.write(buf) {
                Ok(0) => return Err(WireError::Closed),
                Ok(n) => {
                    buf = buf.get(n..).unwrap_or_default();
                    self.sent += n as u64;
                    last = Instant::now();
                }
                Err(e) if waiting(&e) => {}
                Err(e) => return Err(self.io(e)),
            }
        }
        Ok(())
    }

    /// Fills `buf` from the socket.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<(), WireError> {
        let mut done = 0;
        let mut last = Instant::now();
        while done < buf.len() {
            self.tick(last, "waiting for the server")?;
            let rest = buf.get_mut(done..).unwrap_or_default();
            match self.stream.read(rest) {
                Ok(0) => return Err(WireError::Closed),
                Ok(n) => {
                    done += n;
                    last = Instant::now();
                }
                Err(e) if waiting(&e) => {}
                Err(e) => return Err(self.io(e)),
            }
        }
        Ok(())
    }

    /// Reads `len` bytes into a new buffer.
    pub fn recv_vec(&mut self, len: usize) -> Result<Vec<u8>, WireError> {
        let mut v = vec![0u8; len];
        self.recv(&mut v)?;
        Ok(v)
    }

    /// Closes the connection in both directions (errors ignored: the
    /// server may already have gone).
    pub fn close(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    fn tick(&self, last: Instant, doing: &'static str) -> Result<(), WireError> {
        if self.cancel.is_set() {
            return Err(WireError::Interrupted);
        }
        if last.elapsed() >= self.timeout {
            return Err(WireError::Timeout {
                after: self.timeout,
                doing,
            });
        }
        Ok(())
    }

    fn io(&self, e: std::io::Error) -> WireError {
        match e.kind() {
            ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => {
                WireError::Closed
            }
            _ => WireError::Io(e),
        }
    }
}

/// `host:port`, with an IPv6 literal in brackets: how errors name a server.
pub fn peer_name(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A socket timeout tick or a signal, not a failure.
fn waiting(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_silent_server_times_out_and_a_closed_one_is_named() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let cancel = Cancel::default();
        let mut w = Wire::connect("127.0.0.1", port, Duration::from_millis(500), &cancel).unwrap();
        let (conn, _) = l.accept().unwrap();
        w.send(&[b"abc", b"de"]).unwrap();
        assert_eq!(w.sent(), 5);
        let t = Instant::now();
        let e = w.recv_vec(1).unwrap_err().to_string();
        assert!(e.contains("no progress for 0.5 s while waiting"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
        drop(conn);
        let e = w.recv_vec(1).unwrap_err();
        assert!(matches!(e, WireError::Closed), "{e}");
        assert_eq!(w.peer(), format!("127.0.0.1:{port}"));
    }

    #[test]
    fn cancel_stops_a_blocked_read() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let cancel = Cancel::default();
        let mut w = Wire::connect("127.0.0.1", port, Duration::from_secs(60), &cancel).unwrap();
        let c = cancel.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            c.set();
        });
        assert!(w.recv_vec(1).unwrap_err().is_interrupted());
        t.join().unwrap();
    }

    #[test]
    fn nobody_listening_is_a_connect_error() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = Wire::connect(
            "127.0.0.1",
            port,
            Duration::from_secs(1),
            &Cancel::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("cannot connect: "), "{e}");
    }
}
