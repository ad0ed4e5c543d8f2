//! The Xen backend: Xen hosts reached by ssh (or this machine), the guest
//! created from the builder's xl.cfg, `xl migrate`, driven by the same
//! driver as every backend ([`crate::migrate`]).

pub mod backend;
pub mod caps;
pub mod host;
pub mod preflight;
pub mod shell;
pub mod xl;
pub mod xlcfg;

pub use backend::{XenBackend, XenConfig, XenError};
