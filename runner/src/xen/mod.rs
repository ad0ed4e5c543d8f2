//! The Xen backend: Xen hosts reached by ssh (or this machine), the guest
//! created from the builder's xl.cfg, `xl migrate`, and the same named checks
//! and report as the QEMU backend ([`crate::checks`], [`crate::report`]).

pub mod check;
pub mod host;
pub mod shell;
pub mod xl;
pub mod xlcfg;

pub use check::{Event, XenError, XenOptions, run_migrate_check};
