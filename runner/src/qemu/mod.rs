//! QEMU: the migration backend ([`backend`]), command lines, processes,
//! accelerator and version checks, what `imgrun boot` shares with the
//! backend ([`session`]), and what `imgrun run --keep` says ([`kept`]).

pub mod accel;
pub mod argv;
pub mod backend;
pub mod boot_cache;
pub mod boot_plan;
pub mod initramfs;
pub mod kept;
pub mod process;
pub mod pvh;
pub mod session;
pub mod version;
