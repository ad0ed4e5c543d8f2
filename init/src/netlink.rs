//! Blocking rtnetlink over a raw `NETLINK_ROUTE` socket: just the requests
//! the init needs (link up / MAC, add address, add default route, dump
//! addresses), each sent with `NLM_F_ACK` and waited for.
//!
//! Message layouts follow `include/uapi/linux/{netlink,rtnetlink,if_link,if_addr}.h`.

use rustix::fd::OwnedFd;
use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use std::io;
use std::net::Ipv4Addr;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;

const AF_INET: u8 = 2;
const IFF_UP: u32 = 0x1;
const IFLA_ADDRESS: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;
const NLMSG_HDRLEN: usize = 16;

/// Builds one netlink message: `struct nlmsghdr`, then the body and attributes.
#[derive(Debug)]
pub struct MsgBuilder {
    buf: Vec<u8>,
}

impl MsgBuilder {
    /// Starts a message of type `ty` with `flags` and sequence number `seq`.
    pub fn new(ty: u16, flags: u16, seq: u32) -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, patched in finish()
        buf.extend_from_slice(&ty.to_ne_bytes()); // nlmsg_type
        buf.extend_from_slice(&flags.to_ne_bytes()); // nlmsg_flags
        buf.extend_from_slice(&seq.to_ne_bytes()); // nlmsg_seq
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid
        Self { buf }
    }

    /// Appends raw body bytes (a fixed header such as `struct ifinfomsg`).
    pub fn body(mut self, bytes: &[u8]) -> Self {
        self.buf.extend_from_slice(bytes);
        self.pad();
        self
    }

    /// Appends one `struct rtattr` with its payload.
    pub fn attr(mut self, ty: u16, payload: &[u8]) -> Self {
        let len = u16::try_from(4 + payload.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes()); // rta_len
        self.buf.extend_from_slice(&ty.to_ne_bytes()); // rta_type
        self.buf.extend_from_slice(payload);
        self.pad();
        self
    }

    fn pad(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }

    /// Fills in `nlmsg_len` and returns the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let len = u32::try_from(self.buf.len())
            .unwrap_or(u32::MAX)
            .to_ne_bytes();
        if let Some(head) = self.buf.get_mut(0..4) {
            head.copy_from_slice(&len);
        }
        self.buf
    }
}

/// `struct ifinfomsg`.
fn ifinfomsg(index: u32, flags: u32, change: u32) -> Vec<u8> {
    let mut b = vec![0u8, 0]; // ifi_family = AF_UNSPEC, pad
    b.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    b.extend_from_slice(&index.to_ne_bytes()); // ifi_index
    b.extend_from_slice(&flags.to_ne_bytes()); // ifi_flags
    b.extend_from_slice(&change.to_ne_bytes()); // ifi_change
    b
}

/// RTM_NEWLINK setting IFF_UP on or off and optionally the MAC address.
pub fn set_link_msg(seq: u32, index: u32, up: bool, mac: Option<[u8; 6]>) -> Vec<u8> {
    let (flags, change) = if up { (IFF_UP, IFF_UP) } else { (0, 0) };
    let mut m = MsgBuilder::new(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq)
        .body(&ifinfomsg(index, flags, change));
    if let Some(mac) = mac {
        m = m.attr(IFLA_ADDRESS, &mac);
    }
    m.finish()
}

/// RTM_NEWADDR adding `addr/prefix` (with its broadcast address) to link `index`.
pub fn add_address_msg(seq: u32, index: u32, addr: Ipv4Addr, prefix: u8) -> Vec<u8> {
    // struct ifaddrmsg: family, prefixlen, flags, scope, index
    let mut body = vec![AF_INET, prefix.min(32), 0, RT_SCOPE_UNIVERSE];
    body.extend_from_slice(&index.to_ne_bytes());
    let host_mask = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
    let brd = Ipv4Addr::from(u32::from(addr) | host_mask);
    let mut m = MsgBuilder::new(
        RTM_NEWADDR,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        seq,
    )
    .body(&body)
    .attr(IFA_LOCAL, &addr.octets())
    .attr(IFA_ADDRESS, &addr.octets());
    if prefix < 31 {
        m = m.attr(IFA_BROADCAST, &brd.octets());
    }
    m.finish()
}

/// RTM_NEWROUTE adding `default via gateway dev index` to the main table.
pub fn default_route_msg(seq: u32, index: u32, gateway: Ipv4Addr) -> Vec<u8> {
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
    let mut body = vec![
        AF_INET,
        0,
        0,
        0,
        RT_TABLE_MAIN,
        RTPROT_BOOT,
        RT_SCOPE_UNIVERSE,
        RTN_UNICAST,
    ];
    body.extend_from_slice(&0u32.to_ne_bytes());
    MsgBuilder::new(
        RTM_NEWROUTE,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        seq,
    )
    .body(&body)
    .attr(RTA_GATEWAY, &gateway.octets())
    .attr(RTA_OIF, &index.to_ne_bytes())
    .finish()
}

/// RTM_GETADDR dump of all IPv4 addresses.
pub fn dump_addresses_msg(seq: u32) -> Vec<u8> {
    MsgBuilder::new(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq)
        .body(&[AF_INET, 0, 0, 0, 0, 0, 0, 0])
        .finish()
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// One message out of a received datagram.
#[derive(Debug, PartialEq, Eq)]
pub struct RawMsg<'a> {
    /// `nlmsg_type`.
    pub ty: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// Everything after the header.
    pub payload: &'a [u8],
}

/// Splits a datagram into messages; stops at the first malformed one.
pub fn split_messages(mut b: &[u8]) -> Vec<RawMsg<'_>> {
    let mut out = Vec::new();
    while let (Some(len), Some(ty), Some(seq)) = (u32_at(b, 0), u16_at(b, 4), u32_at(b, 8)) {
        let len = len as usize;
        let (Some(payload), true) = (b.get(NLMSG_HDRLEN..len), len >= NLMSG_HDRLEN) else {
            break;
        };
        out.push(RawMsg { ty, seq, payload });
        let next = (len + 3) & !3;
        b = b.get(next..).unwrap_or(&[]);
    }
    out
}

/// Parses the IPv4 address of an RTM_NEWADDR payload: (ifindex, address, prefix).
pub fn parse_addr(payload: &[u8]) -> Option<(u32, Ipv4Addr, u8)> {
    let prefix = *payload.get(1)?;
    let index = u32_at(payload, 4)?;
    let mut attrs = payload.get(8..)?;
    let mut found = None;
    while let (Some(len), Some(ty)) = (u16_at(attrs, 0), u16_at(attrs, 2)) {
        let len = usize::from(len);
        if len < 4 {
            break;
        }
        let data = attrs.get(4..len)?;
        if (ty == IFA_LOCAL || (ty == IFA_ADDRESS && found.is_none())) && data.len() == 4 {
            found = Some(Ipv4Addr::new(
                *data.first()?,
                *data.get(1)?,
                *data.get(2)?,
                *data.get(3)?,
            ));
        }
        attrs = attrs.get((len + 3) & !3..).unwrap_or(&[]);
    }
    Some((index, found?, prefix))
}

/// An open `NETLINK_ROUTE` socket.
#[derive(Debug)]
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    /// Opens and binds a route netlink socket.
    pub fn open() -> io::Result<Self> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            None,
        )?;
        rustix::net::bind(&fd, &SocketAddrNetlink::new(0, 0))?;
        Ok(Self { fd, seq: 1 })
    }

    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        rustix::net::sendto(
            &self.fd,
            msg,
            SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        )?;
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len();
        let (n, _) = rustix::net::recv(&self.fd, buf, RecvFlags::empty())?;
        Ok(n.min(len))
    }

    /// Sends a request and waits for its ACK; a kernel error becomes `Err`.
    fn request(&mut self, build: impl FnOnce(u32) -> Vec<u8>) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.send(&build(seq))?;
        let mut buf = vec![0u8; 8192];
        loop {
            let n = self.recv(&mut buf)?;
            for m in split_messages(buf.get(..n).unwrap_or(&[])) {
                if m.seq != seq || m.ty != NLMSG_ERROR {
                    continue;
                }
                let err = u32_at(m.payload, 0).map_or(0, |e| i32::from_ne_bytes(e.to_ne_bytes()));
                return if err == 0 {
                    Ok(())
                } else {
                    Err(io::Error::from_raw_os_error(-err))
                };
            }
        }
    }

    /// Sets the link up (or just the MAC, with `up == false`).
    pub fn set_link(&mut self, index: u32, up: bool, mac: Option<[u8; 6]>) -> io::Result<()> {
        self.request(|seq| set_link_msg(seq, index, up, mac))
    }

    /// Adds an address; an existing identical address is not an error.
    pub fn add_address(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> io::Result<()> {
        match self.request(|seq| add_address_msg(seq, index, addr, prefix)) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            r => r,
        }
    }

    /// Adds the default route; an existing one is not an error.
    pub fn add_default_route(&mut self, index: u32, gateway: Ipv4Addr) -> io::Result<()> {
        match self.request(|seq| default_route_msg(seq, index, gateway)) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            r => r,
        }
    }

    /// All IPv4 addresses: (ifindex, address, prefix).
    pub fn addresses(&mut self) -> io::Result<Vec<(u32, Ipv4Addr, u8)>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.send(&dump_addresses_msg(seq))?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 16384];
        loop {
            let n = self.recv(&mut buf)?;
            let msgs = split_messages(buf.get(..n).unwrap_or(&[]));
            if msgs.is_empty() {
                return Ok(out);
            }
            for m in msgs {
                if m.seq != seq {
                    continue;
                }
                match m.ty {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let err =
                            u32_at(m.payload, 0).map_or(0, |e| i32::from_ne_bytes(e.to_ne_bytes()));
                        return Err(io::Error::from_raw_os_error(-err));
                    }
                    RTM_NEWADDR => out.extend(parse_addr(m.payload)),
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_up_layout() {
        let m = set_link_msg(7, 2, true, None);
        assert_eq!(m.len(), 32);
        assert_eq!(u32_at(&m, 0), Some(32));
        assert_eq!(u16_at(&m, 4), Some(RTM_NEWLINK));
        assert_eq!(u16_at(&m, 6), Some(NLM_F_REQUEST | NLM_F_ACK));
        assert_eq!(u32_at(&m, 8), Some(7));
        assert_eq!(u32_at(&m, 20), Some(2)); // ifi_index
        assert_eq!(u32_at(&m, 24), Some(IFF_UP)); // ifi_flags
        assert_eq!(u32_at(&m, 28), Some(IFF_UP)); // ifi_change
        let m = set_link_msg(1, 2, false, Some([0, 0x16, 0x3e, 1, 2, 3]));
        assert_eq!(m.len(), 32 + 12); // 4 header + 6 MAC + 2 pad
        assert_eq!(&m[32..44], &[10, 0, 1, 0, 0, 0x16, 0x3e, 1, 2, 3, 0, 0]);
    }

    #[test]
    fn address_layout_and_parse_back() {
        let m = add_address_msg(3, 2, Ipv4Addr::new(10, 99, 0, 2), 24);
        assert_eq!(u32_at(&m, 0).unwrap() as usize, m.len());
        let msgs = split_messages(&m);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].ty, RTM_NEWADDR);
        assert_eq!(
            parse_addr(msgs[0].payload),
            Some((2, Ipv4Addr::new(10, 99, 0, 2), 24))
        );
        // broadcast attribute is last
        assert_eq!(&m[m.len() - 4..], &[10, 99, 0, 255]);
    }

    #[test]
    fn route_layout() {
        let m = default_route_msg(9, 4, Ipv4Addr::new(10, 0, 2, 2));
        assert_eq!(m.len(), 16 + 12 + 8 + 8);
        assert_eq!(m[16 + 4], RT_TABLE_MAIN);
        assert_eq!(&m[28..36], &[8, 0, RTA_GATEWAY as u8, 0, 10, 0, 2, 2]);
        assert_eq!(u32_at(&m, 40), Some(4));
    }

    #[test]
    fn split_handles_junk() {
        assert!(split_messages(&[1, 2, 3]).is_empty());
        let mut two = set_link_msg(1, 1, true, None);
        two.extend(set_link_msg(2, 1, true, None));
        two.extend([0xff; 5]);
        assert_eq!(split_messages(&two).len(), 2);
    }
}
