//! The kind of Xen domain, xl.cfg(5)'s `type`: one type, [`GuestType`], for
//! the recipe (`[xen] type`), the xl.cfg the builder writes and the runner
//! reads back (`type =`, or the older `builder =`), and the manifest
//! (`guest.xen_type`).
//!
//! imgbuild writes PV and PVH guests ([`GuestType::WRITTEN`]), both booted
//! the same way: `kernel`, `ramdisk` and `cmdline` in the xl.cfg (direct
//! kernel boot), the same front-end drivers, the `hvc0` console. They
//! differ in how they migrate: a PV guest's log-dirty tracking is shadow
//! paging's, which a hypervisor may be built without; a PVH guest's is
//! HAP's (EPT/NPT). HVM is here because an xl.cfg a person wrote may say
//! it: the runner refuses it.

use std::fmt;
use std::str::FromStr;

use crate::net::ValueError;

/// A Xen domain's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GuestType {
    /// Paravirtualised: `type = "pv"`, xl's default for a config with `kernel =`.
    #[default]
    Pv,
    /// An HVM container without emulated devices: `type = "pvh"`.
    Pvh,
    /// A fully virtualised machine: `type = "hvm"` (or `builder = "hvm"`).
    /// Not a guest imgbuild writes.
    Hvm,
}

impl GuestType {
    /// Every type, in xl.cfg(5)'s order.
    pub const ALL: [GuestType; 3] = [GuestType::Pv, GuestType::Pvh, GuestType::Hvm];
    /// The types imgbuild writes: what a recipe and a manifest may say.
    pub const WRITTEN: [GuestType; 2] = [GuestType::Pv, GuestType::Pvh];

    /// `pv`, `pvh` or `hvm`: the word in the recipe, the xl.cfg and the manifest.
    pub fn word(self) -> &'static str {
        match self {
            GuestType::Pv => "pv",
            GuestType::Pvh => "pvh",
            GuestType::Hvm => "hvm",
        }
    }

    /// A type imgbuild writes, by its exact word (as the recipe and the
    /// manifest have it; the builder writes only lower case).
    pub fn written(word: &str) -> Result<GuestType, ValueError> {
        GuestType::WRITTEN
            .into_iter()
            .find(|t| t.word() == word)
            .ok_or_else(|| {
                ValueError(format!(
                    "`{word}` is not a guest type imgbuild writes; one of: {}",
                    words(&GuestType::WRITTEN)
                ))
            })
    }
}

fn words(types: &[GuestType]) -> String {
    let w: Vec<&str> = types.iter().map(|t| t.word()).collect();
    w.join(", ")
}

/// Any type, by its word in any case, as xl reads `type =`.
impl FromStr for GuestType {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<GuestType, ValueError> {
        GuestType::ALL
            .into_iter()
            .find(|t| t.word().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                ValueError(format!(
                    "`{s}` is not a Xen guest type; one of: {}",
                    words(&GuestType::ALL)
                ))
            })
    }
}

/// `PV`, `PVH`, `HVM`, as prose names them ("PVH guest busybox").
impl fmt::Display for GuestType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GuestType::Pv => "PV",
            GuestType::Pvh => "PVH",
            GuestType::Hvm => "HVM",
        })
    }
}

/// The [`GuestType::word`].
#[cfg(feature = "serde")]
impl serde::Serialize for GuestType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.word())
    }
}

/// Any type, as [`FromStr`] reads it.
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for GuestType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<GuestType, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: ValueError| serde::de::Error::custom(e.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_names() {
        for t in GuestType::ALL {
            assert_eq!(t.word().parse::<GuestType>(), Ok(t));
            assert_eq!(t.to_string().parse::<GuestType>(), Ok(t), "{t}");
        }
        assert_eq!(GuestType::Pvh.to_string(), "PVH");
        assert_eq!(GuestType::Pvh.word(), "pvh");
        assert_eq!(GuestType::default(), GuestType::Pv);
        assert_eq!(
            "pvhvm".parse::<GuestType>().unwrap_err().0,
            "`pvhvm` is not a Xen guest type; one of: pv, pvh, hvm"
        );
    }

    #[test]
    fn imgbuild_writes_pv_and_pvh() {
        assert_eq!(GuestType::written("pv"), Ok(GuestType::Pv));
        assert_eq!(GuestType::written("pvh"), Ok(GuestType::Pvh));
        assert_eq!(
            GuestType::written("hvm").unwrap_err().0,
            "`hvm` is not a guest type imgbuild writes; one of: pv, pvh"
        );
        // The recipe's and the manifest's word is exact.
        assert!(GuestType::written("PVH").is_err());
        assert!(GuestType::written("").is_err());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn json_is_the_word() {
        let j = serde_json::to_string(&GuestType::Pvh).unwrap();
        assert_eq!(j, "\"pvh\"");
        assert_eq!(
            serde_json::from_str::<GuestType>(&j).unwrap(),
            GuestType::Pvh
        );
        let e = serde_json::from_str::<GuestType>("\"xen\"").unwrap_err();
        assert!(e.to_string().contains("not a Xen guest type"), "{e}");
    }
}
