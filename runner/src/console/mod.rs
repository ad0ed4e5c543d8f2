//! Commands typed into the guest's console shell: how `imgrun run` runs
//! the user's command and `migrate-check --workload` its workload.
//!
//! The channel is the guest's console (ttyS0 under QEMU, hvc0 under Xen),
//! which only the host sees: no network service is added to the guest.
//! [`link`] connects to it (QEMU's console socket, `xl console` over ssh),
//! [`session`] drives the shell on it, [`line`] makes the lines typed
//! (quoting, the tty's limits) and [`demux`] reads a command's output and
//! exit status back out of everything else the console shows.

pub mod demux;
pub mod line;
pub mod link;
pub mod session;

pub use link::{ConsoleLink, LinkError};
pub use session::{ConsoleError, ConsoleSession};
