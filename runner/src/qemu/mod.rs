//! QEMU: the migration backend ([`backend`]), command lines, processes,
//! accelerator and version checks, what `imgrun boot` shares with the
//! backend ([`session`]), and what `imgrun run --keep` says ([`kept`]).

pub mod accel;
pub mod argv;
pub mod backend;
pub mod kept;
pub mod process;
pub mod session;
pub mod version;
