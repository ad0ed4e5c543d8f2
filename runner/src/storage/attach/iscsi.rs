//! The iSCSI steps of an attach: the session check, discovery, login and
//! logout with `iscsiadm` ([`super::iscsiadm`]), then the wait for udev's
//! `/dev/disk/by-path` link to the LUN.

use guest_contract::storage::BY_PATH_DIR;

use super::iscsiadm::{self, Exit};
use super::{Attached, CMD_TIMEOUT, Ctx, DEVICE_WAIT, Made, StorageError, argv, tail};
use crate::xen::host::Output;

impl Ctx<'_> {
    /// An iscsiadm failure in words, by its exit code.
    pub(super) fn iscsi_failure(&self, argv: &[String], o: &Output, portal: &str) -> StorageError {
        match Exit::of(o.code) {
            Exit::Unreachable => StorageError::Unreachable {
                host: self.name(),
                storage: self.what(),
                server: format!("portal {portal}"),
                tail: tail(o),
            },
            Exit::LoginRefused => StorageError::LoginRefused {
                host: self.name(),
                storage: self.what(),
                tail: tail(o),
            },
            Exit::NoDriver => self.setup(
                "the kernel has no iSCSI initiator (iscsi_tcp): `modprobe iscsi_tcp`, or a kernel with CONFIG_ISCSI_TCP",
                o,
            ),
            Exit::NoDaemon => self.setup(
                "iscsid is not running: start it (`systemctl start iscsid`, or `iscsid`)",
                o,
            ),
            _ => self.failed(argv, o),
        }
    }

    /// The host's iSCSI sessions.
    pub(super) fn sessions(&self) -> Result<Vec<iscsiadm::Record>, StorageError> {
        let a = iscsiadm::sessions();
        let o = self.run(&a, CMD_TIMEOUT)?;
        match Exit::of(o.code) {
            Exit::Ok => Ok(iscsiadm::parse_sessions(&o.stdout)),
            Exit::NotFound => Ok(Vec::new()),
            _ => Err(self.iscsi_failure(&a, &o, "")),
        }
    }

    pub(super) fn iscsi_attach(
        &self,
        target: &str,
        portal: &str,
        link: &str,
    ) -> Result<Attached, StorageError> {
        let on = self
            .sessions()?
            .iter()
            .any(|r| r.target == target && r.portal == portal);
        let made = if on {
            None
        } else {
            self.iscsi_login(target, portal)?
        };
        let wait = self.wait_for_block(link);
        let found = wait.and_then(|()| self.device_and_size(link));
        match found {
            Ok((dev, size)) => Ok(self.attached(link.to_string(), Some(dev), Some(size), made)),
            Err(e) => {
                if made.is_some() {
                    let _ = self.logout(target, portal);
                }
                Err(e)
            }
        }
    }

    /// Discovers the portal's targets (the target must be among them) and
    /// logs in; `None` if a session was there already.
    pub(super) fn iscsi_login(
        &self,
        target: &str,
        portal: &str,
    ) -> Result<Option<Made>, StorageError> {
        let a = iscsiadm::discovery(portal);
        let o = self.run(&a, CMD_TIMEOUT)?;
        if !o.success {
            return Err(self.iscsi_failure(&a, &o, portal));
        }
        let offered = iscsiadm::parse_discovery(&o.stdout);
        if !offered.iter().any(|r| r.target == target) {
            let mut names: Vec<&str> = offered.iter().map(|r| r.target.as_str()).collect();
            names.dedup();
            return Err(StorageError::NotOffered {
                host: self.name(),
                server: format!("portal {portal}"),
                what: "target",
                name: target.to_string(),
                offers: if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                },
            });
        }
        let a = iscsiadm::login(target, portal);
        let o = self.run(&a, CMD_TIMEOUT)?;
        match Exit::of(o.code) {
            Exit::Ok => Ok(Some(Made::IscsiLogin)),
            Exit::SessionExists => Ok(None),
            _ => Err(self.iscsi_failure(&a, &o, portal)),
        }
    }

    pub(super) fn logout(&self, target: &str, portal: &str) -> Result<(), StorageError> {
        let a = iscsiadm::logout(target, portal);
        let o = self.run(&a, CMD_TIMEOUT)?;
        match Exit::of(o.code) {
            Exit::Ok | Exit::NotFound => Ok(()),
            _ => Err(self.iscsi_failure(&a, &o, portal)),
        }
    }

    /// Waits up to [`DEVICE_WAIT`] for `link` to be a block device; if it
    /// never is, says whether udev runs and which LUNs the sessions saw.
    pub(super) fn wait_for_block(&self, link: &str) -> Result<(), StorageError> {
        const WAIT: &str = r#"n=0
while [ ! -b "$1" ]; do
  [ "$n" -ge "$2" ] && exit 1
  n=$((n+1))
  sleep 0.2
done"#;
        let tries = (DEVICE_WAIT.as_millis() / 200).to_string();
        let a = argv(&["sh", "-c", WAIT, "sh", link, &tries]);
        if self.run(&a, DEVICE_WAIT + CMD_TIMEOUT)?.success {
            return Ok(());
        }
        let secs = DEVICE_WAIT.as_secs();
        let udev = self.run(&argv(&["test", "-e", "/run/udev/control"]), CMD_TIMEOUT)?;
        if !udev.success {
            return Err(self.no_device(
                link,
                &format!(
                    "did not appear within {secs} s: udev is not running on this host (no /run/udev/control), and udev makes the {} links; start systemd-udevd",
                    BY_PATH_DIR
                ),
            ));
        }
        let seen = self
            .run(&iscsiadm::session_detail(), CMD_TIMEOUT)
            .map(|o| iscsiadm::lun_lines(&o.stdout))
            .unwrap_or_default();
        Err(self.no_device(
            link,
            &format!(
                "did not appear as a block device within {secs} s (udev runs); the sessions' LUNs: {}",
                if seen.is_empty() {
                    "none".to_string()
                } else {
                    seen.join("; ")
                }
            ),
        ))
    }
}
