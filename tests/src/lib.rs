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

pub mod console;
pub mod env;
pub mod guest;
pub mod kmsg;
pub mod ping;
pub mod tree;
pub mod vm;
