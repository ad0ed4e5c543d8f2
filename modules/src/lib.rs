//! Kernel module metadata (`.modinfo`) and dependency resolution.
#![forbid(unsafe_code)]
