//! Boot imgbuild guests and check that they survive live migration.
//!
//! The check is one driver ([`migrate`]) over a [`migrate::Backend`] per
//! hypervisor or engine: [`qemu::backend`], [`xen::backend`] and
//! [`libvirt::backend`]. Everything else is
//! shared by all backends: [`guest`] (the built guest and its manifest),
//! [`checks`] (named checks over before/after [`checks::Snapshot`]s),
//! [`report`] (table and JSON), [`status`] (the guest status service's
//! client), [`probe`] (client-seen downtime), [`netns`] (private
//! namespace), [`cancel`] (signals). `imgrun boot` is [`boot`]. The guest's
//! shared storage (writing the image there, attaching the Xen hosts to it)
//! is [`storage`].

pub mod boot;
pub mod cancel;
pub mod checks;
pub mod console;
pub mod guest;
pub mod host_check;
pub mod host_files;
pub mod icmp;
pub mod libvirt;
pub mod migrate;
pub mod netns;
pub mod probe;
pub mod qemu;
pub mod qmp;
pub mod report;
pub mod run;
pub mod shell;
pub mod status;
pub mod storage;
pub mod workload;
pub mod xen;
