//! The guest's shared storage as the runner handles it on the Xen hosts.
//!
//! Putting the image onto it (`imgrun storage push`) is [`push`], over a
//! [`sink::Sink`] per kind: [`nbd`] (an in-process NBD client), [`iscsi`],
//! [`iscsi_task`] and [`iscsi_lun`] (an in-process iSCSI initiator) and
//! [`local`] (a file or a block device).
//!
//! Attaching a Xen host to it (an iSCSI login, an NBD connection; `imgrun
//! storage attach|detach|check`, and `migrate-check --xen` on every host
//! before `xl create`) is [`attach`].

pub mod attach;
pub mod iscsi;
pub mod iscsi_login;
pub mod iscsi_lun;
pub mod iscsi_pdu;
pub mod iscsi_task;
pub mod local;
pub mod nbd;
pub mod nbd_msg;
pub mod push;
pub mod push_summary;
pub mod runs;
pub mod scsi;
pub mod sink;
pub mod wire;
