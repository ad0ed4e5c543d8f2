//! Boot imgbuild guests under QEMU and check that they survive live migration.
//!
//! Backend-agnostic parts, for the Xen backend to reuse: [`checks`] (named
//! checks over before/after [`checks::Snapshot`]s), [`report`] (table and
//! JSON), [`status`] (the guest status service client), [`probe`] (client-seen
//! downtime), [`netns`] (private namespace), [`cancel`] (signals).
//! QEMU-specific: [`qemu`], [`qmp`], [`session`], [`migrate`], [`boot`].

pub mod boot;
pub mod cancel;
pub mod checks;
pub mod manifest;
pub mod migrate;
pub mod netns;
pub mod probe;
pub mod qemu;
pub mod qmp;
pub mod report;
pub mod session;
pub mod status;
pub mod xen;
