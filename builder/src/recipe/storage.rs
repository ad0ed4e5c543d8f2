//! `[xen.storage]` and its short form `[xen] disk_target`: where the root
//! disk lives on the Xen hosts. The kinds, their keys and their values'
//! rules are the contract's (`guest_contract::storage`); here, where each
//! key stands in the recipe, so every error names its place.

use std::ops::Range;

use guest_contract::storage::{
    Storage, StorageKeyError, StorageKeys, StorageKind, check_host_path,
};
use toml::Spanned;

use super::raw::{RawStorage, RawXen};
use super::{Diag, RecipeError};

/// The root disk's storage; `None` is the default, a file at the absolute
/// path of `out/<name>/rootfs.img` (the builder fills it in: the output
/// directory is not the recipe's).
pub(super) fn storage(d: &Diag, x: &RawXen) -> Result<Option<Storage>, RecipeError> {
    match (&x.disk_target, &x.storage) {
        (None, None) => Ok(None),
        (Some(t), None) => disk_target(d, t).map(Some),
        (None, Some(s)) => table(d, s),
        (Some(t), Some(s)) => {
            // Said at whichever comes second.
            let (span, key) = if t.span().start > s.span().start {
                (t.span(), "xen.disk_target")
            } else {
                (s.span(), "xen.storage")
            };
            Err(d.at(
                &span,
                key,
                "give either xen.disk_target (the short form of a file storage) or [xen.storage], not both",
            ))
        }
    }
}

/// `disk_target = "/path"`: a file storage at that path.
fn disk_target(d: &Diag, t: &Spanned<String>) -> Result<Storage, RecipeError> {
    let path = t.get_ref().clone();
    check_host_path(&path).map_err(|e| d.at(&t.span(), "xen.disk_target", e.0))?;
    Ok(Storage::File { path })
}

/// `[xen.storage]` (or `storage = { … }` in `[xen]`).
fn table(d: &Diag, s: &Spanned<RawStorage>) -> Result<Option<Storage>, RecipeError> {
    let r = s.get_ref();
    let text = |v: &Option<Spanned<String>>| v.as_ref().map(|v| v.get_ref().clone());
    let keys = StorageKeys {
        kind: text(&r.kind),
        path: text(&r.path),
        device: text(&r.device),
        target: text(&r.target),
        portal: text(&r.portal),
        lun: r.lun.as_ref().map(|l| *l.get_ref()),
        server: text(&r.server),
        export: text(&r.export),
    };
    let located = |e: StorageKeyError| {
        let span = span_of(r, e.key)
            .filter(|_| !e.missing)
            .unwrap_or_else(|| s.span());
        d.at(&span, &format!("xen.storage.{}", e.key), e.message)
    };
    let kind = keys.check_kind().map_err(located)?;
    if kind == StorageKind::File && keys.path.is_none() {
        return Ok(None);
    }
    keys.check().map(Some).map_err(located)
}

/// Where `key` is written in the table, if it is.
fn span_of(r: &RawStorage, key: &str) -> Option<Range<usize>> {
    let text = match key {
        "kind" => &r.kind,
        "path" => &r.path,
        "device" => &r.device,
        "target" => &r.target,
        "portal" => &r.portal,
        "server" => &r.server,
        "export" => &r.export,
        "lun" => return r.lun.as_ref().map(Spanned::span),
        _ => return None,
    };
    text.as_ref().map(Spanned::span)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::recipe::{Recipe, RecipeError};

    fn parse(xen: &str) -> Result<Recipe, RecipeError> {
        Recipe::parse(
            Path::new("/r/g.toml"),
            &format!("[guest]\nname = \"g\"\n{xen}"),
        )
    }

    fn storage(xen: &str) -> Option<String> {
        parse(xen).unwrap().xen.storage.map(|s| s.to_string())
    }

    /// Key, line and column of the error.
    fn err(xen: &str) -> (String, usize, usize, String) {
        let e = parse(xen).unwrap_err();
        (e.key, e.loc.line, e.loc.column, e.message)
    }

    #[test]
    fn kinds_and_defaults() {
        assert_eq!(storage(""), None);
        assert_eq!(storage("[xen.storage]\n"), None);
        assert_eq!(storage("[xen.storage]\nkind = \"file\"\n"), None);
        assert_eq!(
            storage("[xen]\ndisk_target = \"/srv/g.img\"\n").as_deref(),
            Some("file /srv/g.img")
        );
        assert_eq!(
            storage("[xen.storage]\npath = \"/srv/g.img\"\n").as_deref(),
            Some("file /srv/g.img")
        );
        assert_eq!(
            storage("[xen.storage]\nkind = \"phy\"\ndevice = \"/dev/vg/g\"\n").as_deref(),
            Some("phy /dev/vg/g")
        );
        assert_eq!(
            storage(
                "[xen.storage]\nkind = \"iscsi\"\ntarget = \"iqn.2026-12.org.imgbuild:g\"\nportal = \"10.99.0.1\"\n"
            )
            .as_deref(),
            Some("iscsi iqn.2026-12.org.imgbuild:g at 10.99.0.1:3260, LUN 0")
        );
        assert_eq!(
            storage("[xen]\nstorage = { kind = \"nbd\", server = \"nas\", export = \"g\" }\n")
                .as_deref(),
            Some("nbd export g at nas:10809")
        );
    }

    #[test]
    fn errors_name_key_and_place() {
        let nbd = "[xen.storage]\nkind = \"nbd\"\nserver = \"10.0.0.1\"\nexport = \"g\"\n";
        let e = err(&format!("{nbd}lun = 1\n"));
        assert_eq!(
            e,
            (
                "xen.storage.lun".into(),
                7,
                7,
                "`lun` is an iscsi key; this storage is nbd".into()
            )
        );
        // A missing key is said at the table.
        let e = err("[xen.storage]\nkind = \"iscsi\"\ntarget = \"iqn.2026-12.org.x\"\n");
        assert_eq!((e.0.as_str(), e.1), ("xen.storage.portal", 3), "{e:?}");
        assert!(e.3.contains("needs `portal`"), "{e:?}");
        let e = err("[xen]\nstorage = { kind = \"phy\" }\n");
        assert_eq!((e.0.as_str(), e.1, e.2), ("xen.storage.device", 4, 11));
        let e = err("[xen.storage]\nkind = \"ceph\"\n");
        assert_eq!((e.0.as_str(), e.1, e.2), ("xen.storage.kind", 4, 8));
        let e = err(
            "[xen.storage]\nkind = \"iscsi\"\ntarget = \"iqn.2026-12.org.x\"\nportal = \"nas.example.org\"\n",
        );
        assert_eq!((e.0.as_str(), e.1, e.2), ("xen.storage.portal", 6, 10));
        assert!(e.3.contains("must be an IP address"), "{e:?}");
        let e = err("[xen.storage]\nkind = \"file\"\nlun = 3\n");
        assert_eq!(e.0, "xen.storage.lun");
        let e = err("[xen.storage]\npath = \"rel.img\"\n");
        assert_eq!((e.0.as_str(), e.1), ("xen.storage.path", 4));
    }

    #[test]
    fn disk_target_or_storage_not_both() {
        let e = err("[xen]\ndisk_target = \"/a\"\n[xen.storage]\npath = \"/b\"\n");
        assert_eq!((e.0.as_str(), e.1), ("xen.storage", 5), "{e:?}");
        assert!(e.3.contains("not both"), "{e:?}");
        let e = err("[xen]\nstorage = { path = \"/b\" }\ndisk_target = \"/a\"\n");
        assert_eq!((e.0.as_str(), e.1, e.2), ("xen.disk_target", 5, 15));
        let e = err("[xen]\ndisk_target = \"relative.img\"\n");
        assert_eq!(e.0, "xen.disk_target");
    }
}
