//! QEMU: the migration backend ([`backend`]), command lines, processes,
//! accelerator and version checks, and what `imgrun boot` shares with the
//! backend ([`session`]).

pub mod accel;
pub mod argv;
pub mod backend;
pub mod process;
pub mod session;
pub mod version;
