//! The contract between imgbuild's three programs, in one place: what the
//! builder writes, what the guest's init reads, and what the runner expects
//! of both. `docs/contracts.md` describes the same in prose.
//!
//! | module | contract | written by | read by |
//! | --- | --- | --- | --- |
//! | [`outputs`] | the files in `out/<name>/` | builder | runner |
//! | [`manifest`] | `out/<name>/manifest.json` | builder | runner |
//! | [`net`], [`hostname`] | MAC, IPv4 address/prefix, interface and host names | builder | init, runner |
//! | [`kernel_ip`], [`cmdline`] | the kernel command line (`root=`, `ip=`, `init.*`) | builder | init |
//! | [`init_config`], [`words`] | `/etc/imgbuild/init.conf` | builder | init |
//! | [`mounts`] | what the init mounts over the root image | init | builder (warnings) |
//! | [`status`] | the guest status service's requests and replies | init (replies) | runner (requests) |
//! | [`storage`] | where the root disk lives: file, block device, iSCSI LUN, NBD export | builder | Xen hosts, runner |
//! | [`guest_type`] | the Xen domain type: PV, PVH (HVM only to refuse it) | builder | Xen hosts, runner |
//! | [`xl_cfg`] | the Xen domain configuration, `<name>.cfg` | builder | Xen hosts, runner |
//! | [`libvirt_xml`] | libvirt domain XML, `<name>.xen.xml` and `<name>.qemu.xml` | builder | libvirt hosts |
//!
//! No I/O, and no dependency the init (a 1.5 MiB static PID 1) would not
//! want: JSON *parsing* (serde) is behind the `serde` feature, which the
//! builder and the runner enable; the init writes its JSON replies with
//! [`json`].
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod cmdline;
pub mod guest_type;
pub mod hostname;
pub mod init_config;
pub mod json;
pub mod kernel_ip;
pub mod libvirt_xml;
pub mod manifest;
pub mod mounts;
pub mod net;
pub mod outputs;
pub mod status;
pub mod storage;
pub mod words;
pub mod xl_cfg;

pub use guest_type::GuestType;
pub use hostname::Hostname;
pub use net::{GUEST_IFACE, Ipv4Cidr, Mac, ValueError};
pub use storage::Storage;
