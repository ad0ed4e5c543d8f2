//! `ext4fs-builder`: write ext4 filesystem images without root.
#![forbid(unsafe_code)]
