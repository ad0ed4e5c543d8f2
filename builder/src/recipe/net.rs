//! The recipe's network default: the guest's stable MAC. The values
//! themselves (`Ipv4Cidr`, `Mac`) and their rules are the contract's
//! (`guest_contract::net`).

use guest_contract::Mac;
use sha2::{Digest, Sha256};

/// The stable default MAC for a guest: Xen's OUI 00:16:3e followed by three
/// bytes of SHA-256 of the guest name (the first with its top bit clear, as
/// Xen's own random MACs).
pub fn default_mac(name: &str) -> Mac {
    let h = Sha256::digest(name.as_bytes());
    Mac::with_xen_oui([h[0], h[1], h[2]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mac_is_stable_xen_unicast() {
        let a = default_mac("busybox");
        assert_eq!(a, default_mac("busybox"));
        assert_ne!(a, default_mac("other"));
        assert_eq!(&a.octets()[..3], &[0x00, 0x16, 0x3e]);
        assert_eq!(a.to_string().parse::<Mac>(), Ok(a));
    }
}
