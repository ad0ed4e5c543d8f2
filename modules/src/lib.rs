//! Kernel module metadata (`.modinfo`) and dependency resolution.
#![forbid(unsafe_code)]

// Core (no heavy dependencies; used by the init too).
pub mod dep;
pub mod name;
pub mod resolve;

// Reading `.ko` files (feature `elf`; used by the builder only).
#[cfg(feature = "elf")]
pub mod decompress;
#[cfg(feature = "elf")]
pub mod modinfo;
#[cfg(feature = "elf")]
pub mod tree;
