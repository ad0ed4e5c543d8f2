//! imgbuild: recipe, sources, rootfs plan, initramfs and xl.cfg.
