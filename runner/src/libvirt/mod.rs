//! The libvirt backend: the guest defined from the builder's domain XML
//! and live-migrated with `virsh`, over the URIs ops already use
//! (`xen+ssh://` for libvirt's libxl driver, `qemu+ssh://`, `qemu:///system`
//! for its QEMU driver), driven by the same driver as every backend
//! ([`crate::migrate`]).

pub mod backend;
pub mod domain;
pub mod uri;
pub mod virsh;

pub use backend::{LibvirtBackend, LibvirtConfig, LibvirtError, VirtType};
