//! The NBD steps of an attach: the host's NBD devices, `nbd-client`
//! ([`super::nbd_client`]) and the runner's link at the storage's
//! [`guest_contract::storage::Storage::xl_target`].

use guest_contract::storage::NBD_LINK_DIR;

use super::nbd_client::{self as nbd, Failure};
use super::{Attached, CMD_TIMEOUT, Ctx, Made, StorageError, argv, tail};

impl Ctx<'_> {
    pub(super) fn nbd_state(&self, link: &str) -> Result<nbd::State, StorageError> {
        Ok(nbd::State::parse(&self.must(&nbd::state(link))?))
    }

    pub(super) fn nbd_attach(
        &self,
        host: &str,
        port: u16,
        export: &str,
        server: &str,
    ) -> Result<Attached, StorageError> {
        let link = self.storage.xl_target();
        let mut st = self.nbd_state(&link)?;
        if let Some(dev) = st.linked_busy() {
            let (dev, size) = self.device_and_size(&dev)?;
            return Ok(self.attached(link, Some(dev), Some(size), None));
        }
        if st.devices.is_empty() {
            let a = argv(&["modprobe", "nbd"]);
            let o = self.run(&a, CMD_TIMEOUT)?;
            if !o.success {
                return Err(self.setup("the kernel has no nbd driver (modprobe nbd failed)", &o));
            }
            st = self.nbd_state(&link)?;
        }
        let free: Vec<String> = st
            .devices
            .iter()
            .filter(|(_, busy)| !busy)
            .map(|(d, _)| format!("/dev/{d}"))
            .collect();
        if free.is_empty() {
            return Err(self.no_device(
                "/dev/nbd*",
                &format!(
                    "are all in use ({} devices): disconnect one, or load nbd with a larger nbds_max",
                    st.devices.len()
                ),
            ));
        }
        let mut last = None;
        // Another connection may take a free device between our look and
        // nbd-client: try the next.
        for dev in free.iter().take(3) {
            let a = nbd::connect(host, port, export, dev);
            let o = self.run(&a, CMD_TIMEOUT)?;
            if o.success {
                return self.nbd_link(dev, &link);
            }
            let e = match Failure::of(&o.stderr) {
                Failure::NoExport => StorageError::NotOffered {
                    host: self.name(),
                    server: format!("NBD server {server}"),
                    what: "export",
                    name: export.to_string(),
                    offers: self.nbd_exports(host, port),
                },
                Failure::Unreachable => StorageError::Unreachable {
                    host: self.name(),
                    storage: self.what(),
                    server: format!("NBD server {server}"),
                    tail: tail(&o),
                },
                Failure::NoDriver => {
                    self.setup("the kernel has no nbd driver (or one without netlink)", &o)
                }
                Failure::Busy | Failure::Other => {
                    last = Some(self.failed(&a, &o));
                    continue;
                }
            };
            return Err(e);
        }
        Err(last.unwrap_or_else(|| self.no_device("/dev/nbd*", "none could be connected")))
    }

    /// The exports the server lists (`nbd-client -l`), for an error.
    pub(super) fn nbd_exports(&self, host: &str, port: u16) -> String {
        let a = argv(&["nbd-client", "-l", host, &port.to_string()]);
        match self.run(&a, CMD_TIMEOUT) {
            Ok(o) if o.success => {
                let names: Vec<&str> = o
                    .stdout
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with("Negotiation"))
                    .collect();
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            }
            _ => "the server does not list them".into(),
        }
    }

    /// Links `dev` at `link`; on failure disconnects `dev` again.
    pub(super) fn nbd_link(&self, dev: &str, link: &str) -> Result<Attached, StorageError> {
        let linked = self
            .must(&argv(&["mkdir", "-p", NBD_LINK_DIR]))
            .and_then(|_| self.must(&argv(&["ln", "-sfn", dev, link])))
            .and_then(|_| self.device_and_size(link));
        match linked {
            Ok((device, size)) => Ok(self.attached(
                link.to_string(),
                Some(device),
                Some(size),
                Some(Made::NbdConnect {
                    dev: dev.to_string(),
                }),
            )),
            Err(e) => {
                let _ = self.nbd_disconnect(dev, link);
                Err(e)
            }
        }
    }

    pub(super) fn nbd_disconnect(&self, dev: &str, link: &str) -> Result<(), StorageError> {
        self.must(&nbd::disconnect(dev))?;
        self.must(&argv(&["rm", "-f", link]))?;
        Ok(())
    }
}
