//! The QEMU backend: command lines, processes, accelerator and version checks.

pub mod accel;
pub mod argv;
pub mod process;
pub mod version;
