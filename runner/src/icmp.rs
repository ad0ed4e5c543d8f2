//! ICMP echo (ping) without a `ping` binary: the packets, and a raw socket.
//!
//! Beside the UDP probe, which the guest's init answers, an echo answered
//! by the guest's kernel separates the kernel's share of a migration's
//! client-seen downtime from the init's.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Duration;

const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;

/// The Internet checksum (RFC 1071) of `b`.
pub fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request with `id` and `seq` and 8 bytes of payload.
pub fn echo_request(id: u16, seq: u16) -> Vec<u8> {
    let mut p = vec![ECHO_REQUEST, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(b"imgrun\0\0");
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// The `seq` of an echo reply with `id` in `packet` (an IPv4 datagram, as a
/// raw socket receives it), if it is one.
pub fn echo_reply_seq(packet: &[u8], id: u16) -> Option<u16> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    let icmp = packet.get(ihl..)?;
    if icmp.len() < 8 || icmp[0] != ECHO_REPLY || icmp[1] != 0 {
        return None;
    }
    if u16::from_be_bytes([icmp[4], icmp[5]]) != id {
        return None;
    }
    Some(u16::from_be_bytes([icmp[6], icmp[7]]))
}

/// A raw ICMP socket (needs CAP_NET_RAW). It is held as a [`UdpSocket`]
/// only for std's datagram calls (`send_to`, `recv_from`, read timeouts),
/// which are the same system calls for any datagram-like socket.
#[derive(Debug)]
pub struct IcmpSocket(UdpSocket);

impl IcmpSocket {
    /// Opens the socket in the calling thread's network namespace.
    pub fn open() -> std::io::Result<IcmpSocket> {
        let fd = rustix::net::socket(
            rustix::net::AddressFamily::INET,
            rustix::net::SocketType::RAW,
            Some(rustix::net::ipproto::ICMP),
        )?;
        Ok(IcmpSocket(UdpSocket::from(fd)))
    }

    /// Sends an echo request to `to`.
    pub fn send_echo(&self, to: Ipv4Addr, id: u16, seq: u16) -> std::io::Result<()> {
        self.0
            .send_to(
                &echo_request(id, seq),
                SocketAddr::V4(SocketAddrV4::new(to, 0)),
            )
            .map(|_| ())
    }

    /// Waits up to `wait` for an echo reply with `id` from `from`; its seq.
    pub fn recv_reply(&self, from: Ipv4Addr, id: u16, wait: Duration) -> Option<u16> {
        let _ = self
            .0
            .set_read_timeout(Some(wait.max(Duration::from_micros(100))));
        let mut buf = [0u8; 1500];
        match self.0.recv_from(&mut buf) {
            Ok((n, SocketAddr::V4(a))) if *a.ip() == from => echo_reply_seq(&buf[..n], id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_known_packet() {
        // RFC 1071's example words sum to 0xddf2 before complementing.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
        // A packet with its checksum in place sums to zero.
        assert_eq!(checksum(&echo_request(0x1234, 7)), 0);
        // Odd lengths pad with a zero byte.
        assert_eq!(checksum(&[0xff]), !0xff00);
    }

    #[test]
    fn reply_is_matched_by_id() {
        let mut ip = vec![0x45u8];
        ip.resize(20, 0);
        let mut reply = echo_request(0x1234, 9);
        reply[0] = ECHO_REPLY;
        let packet = [ip.clone(), reply.clone()].concat();
        assert_eq!(echo_reply_seq(&packet, 0x1234), Some(9));
        assert_eq!(echo_reply_seq(&packet, 0x1235), None);
        // Our own request (seen by a raw socket on loopback) is no reply.
        let req = [ip, echo_request(0x1234, 9)].concat();
        assert_eq!(echo_reply_seq(&req, 0x1234), None);
        assert_eq!(echo_reply_seq(&[0x45, 0, 0], 0x1234), None);
    }

    #[test]
    fn echo_on_loopback_when_allowed() {
        // Needs CAP_NET_RAW; without it there is nothing to test here.
        let Ok(s) = IcmpSocket::open() else { return };
        let lo = Ipv4Addr::LOCALHOST;
        s.send_echo(lo, 0x4242, 1).unwrap();
        let got = (0..20).find_map(|_| s.recv_reply(lo, 0x4242, Duration::from_millis(50)));
        assert_eq!(got, Some(1));
    }
}
