use super::*;

fn keys(kind: &str) -> StorageKeys {
    StorageKeys {
        kind: Some(kind.into()),
        ..StorageKeys::default()
    }
}

fn iscsi() -> Storage {
    Storage::Iscsi {
        target: "iqn.2026-12.org.imgbuild:busybox".parse().unwrap(),
        portal: "10.99.0.1:3260".parse().unwrap(),
        lun: 1,
    }
}

fn nbd() -> Storage {
    Storage::Nbd {
        server: "10.99.0.1:10809".parse().unwrap(),
        export: "busybox".parse().unwrap(),
    }
}

#[test]
fn xl_targets_per_kind() {
    let file = Storage::File {
        path: "/srv/out/busybox/rootfs.img".into(),
    };
    let phy = Storage::Phy {
        device: "/dev/vg0/busybox".into(),
    };
    assert_eq!(file.xl_target(), "/srv/out/busybox/rootfs.img");
    assert_eq!(phy.xl_target(), "/dev/vg0/busybox");
    assert_eq!(
        iscsi().xl_target(),
        "/dev/disk/by-path/ip-10.99.0.1:3260-iscsi-iqn.2026-12.org.imgbuild:busybox-lun-1"
    );
    assert_eq!(nbd().xl_target(), "/run/imgrun/nbd/10.99.0.1_10809_busybox");
    let v6 = Storage::Iscsi {
        target: "eui.02004567a425678d".parse().unwrap(),
        portal: parse_iscsi_portal("[fd00::1]").unwrap(),
        lun: 0,
    };
    assert_eq!(
        v6.xl_target(),
        "/dev/disk/by-path/ip-fd00::1:3260-iscsi-eui.02004567a425678d-lun-0"
    );
    let named = Storage::Nbd {
        server: Portal::parse("NAS.example.org", NBD_PORT).unwrap(),
        export: "Disk_1".parse().unwrap(),
    };
    assert_eq!(
        named.xl_target(),
        "/run/imgrun/nbd/nas.example.org_10809_Disk_1"
    );
    for (s, kind, shared) in [
        (&file, "file", false),
        (&phy, "phy", true),
        (&iscsi(), "iscsi", true),
        (&nbd(), "nbd", true),
    ] {
        assert_eq!(s.kind(), kind);
        assert_eq!(s.is_shared(), shared, "{kind}");
        assert_eq!(s.storage_kind().to_string(), kind);
        assert_eq!(kind.parse::<StorageKind>(), Ok(s.storage_kind()));
        assert_eq!(s.check(), Ok(()));
        // Nothing that would end the xl.cfg disk spec.
        assert!(check_host_path(&s.xl_target()).is_ok(), "{kind}");
    }
}

#[test]
fn keys_round_trip() {
    for s in [
        Storage::File {
            path: "/srv/a.img".into(),
        },
        Storage::Phy {
            device: "/dev/sdb".into(),
        },
        iscsi(),
        nbd(),
    ] {
        assert_eq!(StorageKeys::from(&s).check(), Ok(s.clone()));
    }
    let mut k = keys("iscsi");
    k.target = Some("IQN.2026-12.org.x".into());
    k.portal = Some("10.0.0.5".into());
    let s = k.check().unwrap();
    assert_eq!(
        s,
        Storage::Iscsi {
            target: "iqn.2026-12.org.x".parse().unwrap(),
            portal: "10.0.0.5:3260".parse().unwrap(),
            lun: 0,
        }
    );
    let mut k = keys("nbd");
    k.server = Some("nas".into());
    k.export = Some("e".into());
    let Storage::Nbd { server, .. } = k.check().unwrap() else {
        panic!("not nbd")
    };
    assert_eq!(server.to_string(), "nas:10809");
    // No kind is a file.
    let k = StorageKeys {
        path: Some("/a".into()),
        ..StorageKeys::default()
    };
    assert_eq!(k.check(), Ok(Storage::File { path: "/a".into() }));
}

fn err(k: StorageKeys) -> StorageKeyError {
    k.check().unwrap_err()
}

#[test]
fn key_errors_name_the_key() {
    let e = err(keys("ceph"));
    assert_eq!(e.key, "kind");
    assert!(e.message.contains("one of: file, phy, iscsi, nbd"), "{e}");

    let mut k = keys("nbd");
    k.lun = Some(1);
    k.server = Some("10.0.0.1".into());
    let e = err(k);
    assert_eq!(
        (e.key, e.missing, e.message.as_str()),
        ("lun", false, "`lun` is an iscsi key; this storage is nbd")
    );

    let k = StorageKeys {
        portal: Some("10.0.0.1".into()),
        ..StorageKeys::default()
    };
    assert_eq!(
        err(k).message,
        "`portal` is an iscsi key; this storage is file"
    );

    let mut k = keys("iscsi");
    k.target = Some("iqn.2026-12.org.x".into());
    let e = err(k);
    assert_eq!(
        (e.key, e.missing, e.message.as_str()),
        ("portal", true, "a storage of kind iscsi needs `portal`")
    );
    assert_eq!(err(keys("phy")).key, "device");
    assert_eq!(err(keys("nbd")).key, "server");
    assert_eq!(err(keys("file")).key, "path");

    let full = |edit: &dyn Fn(&mut StorageKeys)| {
        let mut k = keys("iscsi");
        k.target = Some("iqn.2026-12.org.x".into());
        k.portal = Some("10.0.0.1".into());
        edit(&mut k);
        k.check()
    };
    assert!(full(&|_| ()).is_ok());
    let e = full(&|k| k.target = Some("iqn.2026.org.x".into())).unwrap_err();
    assert_eq!(e.key, "target");
    assert!(e.message.contains("not an iSCSI name"), "{e}");
    let e = full(&|k| k.portal = Some("nas.example.org:3260".into())).unwrap_err();
    assert_eq!(e.key, "portal");
    assert!(e.message.contains("must be an IP address"), "{e}");
    let e = full(&|k| k.lun = Some(256)).unwrap_err();
    assert_eq!(e.key, "lun");
    assert!(e.message.contains("0 to 255"), "{e}");
    assert_eq!(full(&|k| k.lun = Some(-1)).unwrap_err().key, "lun");

    let mut k = keys("nbd");
    k.server = Some("10.0.0.1".into());
    k.export = Some("a/b".into());
    assert_eq!(err(k).key, "export");
    let mut k = keys("phy");
    k.device = Some("dev/sdb".into());
    assert_eq!(err(k).key, "device");
    let mut k = keys("file");
    k.path = Some("/a'b".into());
    assert_eq!(err(k).key, "path");
}

#[test]
fn host_paths() {
    for ok in [
        "/a",
        "/srv/out/busybox/rootfs.img",
        "/dev/mapper/vg-lv",
        "/a, b",
    ] {
        assert!(check_host_path(ok).is_ok(), "{ok}");
    }
    for bad in ["", "a", "./a", "/a'b", "/a\"b", "/a\nb", "/a\tb"] {
        assert!(check_host_path(bad).is_err(), "{bad:?}");
    }
    assert!(
        Storage::Phy {
            device: "sdb".into()
        }
        .check()
        .is_err()
    );
    let mut s = iscsi();
    if let Storage::Iscsi { lun, .. } = &mut s {
        *lun = 300;
    }
    assert!(s.check().is_err());
}

#[test]
fn of_key() {
    assert_eq!(StorageKind::of_key("lun"), Some(StorageKind::Iscsi));
    assert_eq!(StorageKind::of_key("export"), Some(StorageKind::Nbd));
    assert_eq!(StorageKind::of_key("path"), Some(StorageKind::File));
    assert_eq!(StorageKind::of_key("kind"), None);
    assert_eq!(StorageKind::of_key("size"), None);
}

#[test]
fn display() {
    assert_eq!(
        iscsi().to_string(),
        "iscsi iqn.2026-12.org.imgbuild:busybox at 10.99.0.1:3260, LUN 1"
    );
    assert_eq!(nbd().to_string(), "nbd export busybox at 10.99.0.1:10809");
}

#[cfg(feature = "serde")]
#[test]
fn json() {
    let v = serde_json::to_value(iscsi()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "kind": "iscsi",
            "target": "iqn.2026-12.org.imgbuild:busybox",
            "portal": "10.99.0.1:3260",
            "lun": 1
        })
    );
    let v = serde_json::to_value(nbd()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({ "kind": "nbd", "server": "10.99.0.1:10809", "export": "busybox" })
    );
    for s in [iscsi(), nbd(), Storage::File { path: "/x".into() }] {
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Storage>(&text).unwrap(), s);
    }
    let e = serde_json::from_str::<Storage>(r#"{"kind":"nbd","server":"h","export":"e","lun":0}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("`lun` is an iscsi key"), "{e}");
    let e = serde_json::from_str::<Storage>(r#"{"kind":"file","path":"/x","size":1}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `size`"), "{e}");
}

#[test]
fn check_kind_is_the_first_half() {
    let mut k = keys("iscsi");
    assert_eq!(k.check_kind(), Ok(StorageKind::Iscsi));
    k.export = Some("e".into());
    assert_eq!(k.check_kind().unwrap_err().key, "export");
    assert_eq!(StorageKeys::default().check_kind(), Ok(StorageKind::File));
}

#[test]
fn the_xl_cfg_of_every_kind_reads_back_its_target() {
    use crate::xl_cfg::{Disk, Vif, XlConfig, XlFiles};
    for s in [
        Storage::File {
            path: "/srv/out/busybox/rootfs.img".into(),
        },
        Storage::Phy {
            device: "/dev/vg0/busybox, root".into(),
        },
        iscsi(),
        nbd(),
    ] {
        let c = XlConfig {
            guest_type: crate::GuestType::Pv,
            name: "busybox".into(),
            kernel: "/k".into(),
            ramdisk: "/r".into(),
            cmdline: "root=/dev/xvda".into(),
            memory_mib: 512,
            vcpus: 1,
            disks: vec![Disk {
                vdev: "xvda".into(),
                target: s.xl_target(),
            }],
            vif: Vif {
                mac: None,
                bridge: "xenbr0".into(),
            },
            on_poweroff: "destroy".into(),
            on_reboot: "restart".into(),
            on_crash: "destroy".into(),
        };
        let text = c.render();
        assert!(
            text.contains(&format!(
                "disk = [ 'format=raw, vdev=xvda, access=rw, target={}' ]\n",
                s.xl_target()
            )),
            "{text}"
        );
        assert_eq!(XlFiles::parse(&text).unwrap().disks, [s.xl_target()]);
    }
}
