//! Every host of a run attached to the guest's storage: what the Xen
//! backend holds between its preflight and its teardown. Attaching checks
//! each host in turn ([`super::check`]) and stops at the first that cannot
//! reach the storage; releasing detaches the hosts this run attached,
//! except those the caller says the guest is still on.

use guest_contract::storage::Storage;

use super::{Attached, StorageError};
use crate::cancel::Cancel;
use crate::report::HostStorage;
use crate::xen::host::XenHost;

/// The storage, the image's size, and per host what attaching found.
#[derive(Debug)]
pub struct AttachedHosts {
    storage: Storage,
    need: u64,
    hosts: Vec<Option<Attached>>,
}

impl AttachedHosts {
    /// Nothing attached yet, for `n` hosts; `need`: the image's size.
    pub fn new(storage: Storage, need: u64, n: usize) -> AttachedHosts {
        AttachedHosts {
            storage,
            need,
            hosts: vec![None; n],
        }
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Attaches and checks every host (nothing for a file, whose checks
    /// are the backend's), reporting each with `note`. The first host that
    /// cannot reach the storage ends it; the hosts attached before it stay
    /// recorded, so that [`AttachedHosts::release`] undoes them.
    pub fn attach_all(
        &mut self,
        hosts: &[XenHost],
        cancel: &Cancel,
        note: &mut dyn FnMut(String),
    ) -> Result<(), StorageError> {
        if !self.storage.is_shared() {
            return Ok(());
        }
        for (slot, host) in self.hosts.iter_mut().zip(hosts) {
            let a = super::check(host, &self.storage, self.need, cancel)?;
            note(format!(
                "xen host {}: {}: {} is {}, {} bytes ({})",
                host.name(),
                self.storage,
                a.target,
                a.device.as_deref().unwrap_or("?"),
                a.size.unwrap_or(0),
                if a.made_here() {
                    "attached now"
                } else {
                    "already attached"
                }
            ));
            *slot = Some(a);
        }
        Ok(())
    }

    /// Host `h`'s storage for the report, once attached.
    pub fn report(&self, h: usize) -> Option<HostStorage> {
        let a = self.hosts.get(h)?.as_ref()?;
        Some(HostStorage {
            storage: self.storage.to_string(),
            target: a.target.clone(),
            device: a.device.clone()?,
            size_bytes: a.size?,
            attached_by_run: a.made_here(),
        })
    }

    /// Detaches every host this run attached for which `guest_is_on(h)` is
    /// false (a host the guest still runs on keeps its disk). Returns what
    /// could not be detached, one line per host.
    pub fn release(
        &mut self,
        hosts: &[XenHost],
        cancel: &Cancel,
        guest_is_on: &mut dyn FnMut(usize) -> bool,
    ) -> Vec<String> {
        let mut failed = Vec::new();
        for (h, (slot, host)) in self.hosts.iter_mut().zip(hosts).enumerate() {
            if !slot.as_ref().is_some_and(Attached::made_here) || guest_is_on(h) {
                continue;
            }
            if let Some(a) = slot.take() {
                if let Err(e) = a.release(host, cancel) {
                    failed.push(e.to_string());
                }
            }
        }
        failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_attaches_nothing() {
        let mut a = AttachedHosts::new(
            Storage::File {
                path: "/srv/g/rootfs.img".into(),
            },
            1,
            2,
        );
        let hosts = [XenHost::Local, XenHost::Local];
        let mut notes = Vec::new();
        a.attach_all(&hosts, &Cancel::default(), &mut |n| notes.push(n))
            .unwrap();
        assert!(notes.is_empty());
        assert_eq!(a.report(0), None);
        assert!(
            a.release(&hosts, &Cancel::default(), &mut |_| false)
                .is_empty()
        );
    }

    #[test]
    fn the_first_host_that_cannot_reach_it_is_named() {
        let mut a = AttachedHosts::new(
            Storage::Phy {
                device: "/dev/imgrun-no-such-device".into(),
            },
            1,
            1,
        );
        let e = a
            .attach_all(&[XenHost::Local], &Cancel::default(), &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("host localhost: phy /dev/imgrun-no-such-device:"),
            "{e}"
        );
    }
}
