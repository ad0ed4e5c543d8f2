//! imgbuild's guest PID 1, as a library.
//!
//! The binary (`src/main.rs`) is a thin wrapper; everything it does lives here,
//! behind the [`sys::Sys`] trait so that the order of mounts, module loads and
//! the root switch can be unit-tested without root (with `sys::fake`, which
//! is compiled only for the unit tests).
//!
//! What the init shares with the builder and the runner — `init.conf`, the
//! kernel command line, the status protocol — is in the `guest-contract`
//! crate.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg_attr(test, allow(clippy::indexing_slicing, clippy::panic))]

pub mod console;
pub mod kmsg;
pub mod modules;
pub mod mounts;
pub mod net;
pub mod netlink;
pub mod reap;
pub mod rootdev;
pub mod services;
pub mod signals;
pub mod stage1;
pub mod stage2;
pub mod status;
pub mod sys;
