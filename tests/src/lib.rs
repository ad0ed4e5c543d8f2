//! Helpers for the end-to-end tests in `tests/tests/`: they boot the guest
//! that `imgbuild recipe` builds under real QEMU (TCG) with the real Debian
//! kernel, drive its serial console, and talk to it from a private network
//! namespace.
//!
//! - [`env`]: who may run these tests (root), one QEMU at a time.
//! - [`guest`]: builds the guest once per test binary from a recipe variant.
//! - [`vm`]: one QEMU (killed by PID on drop) and its namespace (removed on drop).
//! - [`console`]: the serial console over QEMU's unix socket.
//! - [`ping`]: ICMP echo from inside a namespace (no `ping` binary needed).
//! - [`tree`]: seeded random directory trees and their host-side digests.
//! - [`kmsg`]: reading the kernel log timestamps and the init's lines off a console.
//!
//! Run them with `cargo test -p imgbuild-e2e` as root (the network tests skip,
//! saying so, without root). They need `qemu-system-x86_64` (10.x), `debugfs`
//! and `e2fsck`, and download the Debian kernel and busybox through the
//! builder's cache on first use. Environment:
//! - `IMGBUILD_E2E_GUEST=<out/busybox>`: use that build instead of building
//!   (it must come from the same recipe variant, see [`guest`]);
//! - `IMGBUILD_E2E_IMGBUILD=<path>`: the `imgbuild` binary to use;
//! - `IMGBUILD_E2E_QEMU=<path>`: the QEMU binary;
//! - `IMGBUILD_E2E_SEED=<n>`: the random tree of the ext4 test;
//! - `IMGBUILD_E2E_KEEP=1`: keep the per-VM directories (console logs) in `$TMPDIR`.

pub mod console;
pub mod env;
pub mod guest;
pub mod kmsg;
pub mod ping;
pub mod tree;
pub mod vm;
