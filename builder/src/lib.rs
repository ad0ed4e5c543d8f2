//! imgbuild: recipe, sources, rootfs plan, initramfs and xl.cfg.

pub mod cli;
pub mod init_binary;
pub mod init_conf;
pub mod initramfs;
pub mod initramfs_out;
pub mod inspect;
pub mod interrupt;
pub mod kernel;
pub mod kmods;
pub mod libvirt;
pub mod manifest;
pub mod pipeline;
pub mod progress;
pub mod recipe;
pub mod rootfs;
pub mod sources;
pub mod tarball;
pub mod xlcfg;
