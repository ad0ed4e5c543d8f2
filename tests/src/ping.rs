//! ICMP echo ("ping") with a raw socket, for use inside a network namespace
//! (call it from `NetNs::run_in`). Needs CAP_NET_RAW; no `ping` binary needed.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketType, ipproto, recvfrom, sendto, socket, sockopt,
};

/// Errors pinging.
#[derive(Debug, thiserror::Error)]
pub enum PingError {
    #[error("ICMP socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("no echo reply from {target} within {ms} ms")]
    NoReply { target: Ipv4Addr, ms: u128 },
}

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMP echo request with identifier `id`, sequence `seq` and `payload`.
pub fn echo_request(id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![8, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// Whether `packet` (an IPv4 datagram as a raw socket returns it) is the echo
/// reply to (`id`, `seq`) carrying `payload`.
pub fn is_reply(packet: &[u8], id: u16, seq: u16, payload: &[u8]) -> bool {
    let Some(first) = packet.first() else {
        return false;
    };
    let ihl = usize::from(first & 0x0f) * 4;
    let Some(icmp) = packet.get(ihl..) else {
        return false;
    };
    icmp.len() >= 8
        && icmp[0] == 0
        && icmp[4..6] == id.to_be_bytes()
        && icmp[6..8] == seq.to_be_bytes()
        && &icmp[8..] == payload
        && checksum(icmp) == 0
}

/// Sends echo requests to `target` (one a second) until one is answered or
/// `timeout` passes; returns the round-trip time of the answered one.
pub fn ping(target: Ipv4Addr, timeout: Duration) -> Result<Duration, PingError> {
    let fd = socket(AddressFamily::INET, SocketType::RAW, Some(ipproto::ICMP))
        .map_err(std::io::Error::from)?;
    let id = (std::process::id() & 0xffff) as u16;
    let payload = b"imgbuild-e2e ping";
    let start = Instant::now();
    let mut seq: u16 = 0;
    while start.elapsed() < timeout {
        seq = seq.wrapping_add(1);
        let sent = Instant::now();
        sendto(
            &fd,
            &echo_request(id, seq, payload),
            SendFlags::empty(),
            &SocketAddrV4::new(target, 0),
        )
        .map_err(std::io::Error::from)?;
        let mut buf = [0u8; 1500];
        while sent.elapsed() < Duration::from_secs(1) {
            let left = Duration::from_secs(1).saturating_sub(sent.elapsed());
            sockopt::set_socket_timeout(
                &fd,
                sockopt::Timeout::Recv,
                Some(left.max(Duration::from_millis(1))),
            )
            .map_err(std::io::Error::from)?;
            match recvfrom(&fd, &mut buf, RecvFlags::empty()) {
                Ok((n, _, _)) if is_reply(&buf[..n], id, seq, payload) => {
                    return Ok(sent.elapsed());
                }
                Ok(_) => {}
                Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::INTR => {}
                Err(e) => return Err(std::io::Error::from(e).into()),
            }
        }
    }
    Err(PingError::NoReply {
        target,
        ms: timeout.as_millis(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_checksum_verifies() {
        let p = echo_request(0x1234, 7, b"abc");
        assert_eq!(p[0], 8);
        assert_eq!(checksum(&p), 0);
    }

    #[test]
    fn recognises_its_reply_only() {
        let mut reply = echo_request(9, 3, b"xyz");
        reply[0] = 0;
        reply[2..4].copy_from_slice(&[0, 0]);
        let c = checksum(&reply);
        reply[2..4].copy_from_slice(&c.to_be_bytes());
        let mut ip = vec![0x45u8];
        ip.extend_from_slice(&[0; 19]);
        ip.extend_from_slice(&reply);
        assert!(is_reply(&ip, 9, 3, b"xyz"));
        assert!(!is_reply(&ip, 9, 4, b"xyz"));
        assert!(!is_reply(&ip, 8, 3, b"xyz"));
        assert!(!is_reply(&ip[..22], 9, 3, b"xyz"));
    }

    #[test]
    fn pings_loopback_when_root() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("SKIPPED pings_loopback_when_root: raw ICMP sockets need root");
            return;
        }
        ping(Ipv4Addr::LOCALHOST, Duration::from_secs(3)).unwrap();
    }
}
