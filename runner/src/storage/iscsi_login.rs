//! iSCSI login keys (RFC 7143 §6, §13): what an initiator that only writes
//! offers, and what the session may do once the target has answered.
//! Pure; the exchange of Login PDUs is [`super::iscsi`]'s.

/// RFC 7143 defaults, used when the target does not answer a key.
const DEFAULT_MAX_RECV_DATA_SEGMENT: u32 = 8192;
const DEFAULT_MAX_BURST: u32 = 262_144;
const DEFAULT_FIRST_BURST: u32 = 65_536;

/// What we offer in the operational stage.
#[derive(Debug, Clone, Copy)]
pub struct Offer {
    /// The longest data segment we receive (declarative).
    pub max_recv_data_segment: u32,
    pub max_burst: u32,
    pub first_burst: u32,
    pub initial_r2t: bool,
    pub immediate_data: bool,
}

impl Default for Offer {
    fn default() -> Offer {
        Offer {
            max_recv_data_segment: 262_144,
            max_burst: 1 << 20,
            first_burst: 262_144,
            // No: we would send the first burst unsolicited, if the target lets us.
            initial_r2t: false,
            immediate_data: true,
        }
    }
}

/// The session's rules for sending data, as negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The target's MaxRecvDataSegmentLength: the most data in one PDU we send.
    pub max_send_segment: u32,
    pub max_burst: u32,
    pub first_burst: u32,
    /// The target wants an R2T before any data but the immediate.
    pub initial_r2t: bool,
    pub immediate_data: bool,
}

fn yes_no(b: bool) -> String {
    if b { "Yes" } else { "No" }.to_string()
}

/// The keys of the first Login Request (security stage, no authentication).
pub fn security_keys(initiator: &str, target: &str) -> Vec<(&'static str, String)> {
    vec![
        ("InitiatorName", initiator.to_string()),
        ("TargetName", target.to_string()),
        ("SessionType", "Normal".to_string()),
        ("AuthMethod", "None".to_string()),
    ]
}

/// Checks the target's answer to [`security_keys`].
pub fn check_security(answers: &[(String, String)]) -> Result<(), String> {
    match value(answers, "AuthMethod") {
        None | Some("None") => Ok(()),
        Some(m) => Err(format!(
            "the target wants AuthMethod={m}; imgrun logs in without authentication (no CHAP): \
             allow this initiator without it on the target"
        )),
    }
}

impl Offer {
    /// The keys of the operational stage.
    pub fn keys(&self) -> Vec<(&'static str, String)> {
        vec![
            ("HeaderDigest", "None".to_string()),
            ("DataDigest", "None".to_string()),
            (
                "MaxRecvDataSegmentLength",
                self.max_recv_data_segment.to_string(),
            ),
            ("InitialR2T", yes_no(self.initial_r2t)),
            ("ImmediateData", yes_no(self.immediate_data)),
            ("MaxBurstLength", self.max_burst.to_string()),
            ("FirstBurstLength", self.first_burst.to_string()),
            ("MaxOutstandingR2T", "1".to_string()),
            ("MaxConnections", "1".to_string()),
            ("ErrorRecoveryLevel", "0".to_string()),
        ]
    }

    /// The session's rules from the target's answers (all operational
    /// stage Login Responses' keys, in order).
    pub fn settle(&self, answers: &[(String, String)]) -> Result<Negotiated, String> {
        for d in ["HeaderDigest", "DataDigest"] {
            match value(answers, d) {
                None | Some("None") => {}
                Some(v) => {
                    return Err(format!(
                        "the target wants {d}={v}; imgrun sends no digests (configure the target with {d}=None)"
                    ));
                }
            }
        }
        if let Some(v) = number(answers, "ErrorRecoveryLevel")? {
            if v != 0 {
                return Err(format!("the target answered ErrorRecoveryLevel={v} to 0"));
            }
        }
        // Numerical keys: the target answers at most our offer (min()); an
        // answer above it is treated as our offer.
        let min = |key, ours: u32, default: u32| -> Result<u32, String> {
            Ok(number(answers, key)?.unwrap_or(default).min(ours))
        };
        let max_burst = min("MaxBurstLength", self.max_burst, DEFAULT_MAX_BURST)?;
        let first_burst =
            min("FirstBurstLength", self.first_burst, DEFAULT_FIRST_BURST)?.min(max_burst);
        let max_send_segment =
            number(answers, "MaxRecvDataSegmentLength")?.unwrap_or(DEFAULT_MAX_RECV_DATA_SEGMENT);
        if !(512..=0x00ff_ffff).contains(&max_send_segment) || max_burst < 512 {
            return Err(format!(
                "the target's MaxRecvDataSegmentLength={max_send_segment} or MaxBurstLength={max_burst} is out of range (512 to 16777215)"
            ));
        }
        // InitialR2T is OR, ImmediateData AND; an absent answer is the default (Yes).
        let initial_r2t = self.initial_r2t || boolean(answers, "InitialR2T")?.unwrap_or(true);
        let immediate_data =
            self.immediate_data && boolean(answers, "ImmediateData")?.unwrap_or(true);
        Ok(Negotiated {
            max_send_segment,
            max_burst,
            first_burst,
            initial_r2t,
            immediate_data,
        })
    }
}

/// Answers to keys the target offered on its own (which the RFC requires us
/// to answer): its value accepted, except declarative keys that need none.
pub fn answer_target_offers(
    offered: &[(&'static str, String)],
    answers: &[(String, String)],
) -> Vec<(String, String)> {
    const DECLARATIVE: [&str; 5] = [
        "MaxRecvDataSegmentLength",
        "TargetAlias",
        "TargetPortalGroupTag",
        "TargetAddress",
        "TargetName",
    ];
    answers
        .iter()
        .filter(|(k, _)| !offered.iter().any(|(o, _)| o == k) && !DECLARATIVE.contains(&k.as_str()))
        .cloned()
        .collect()
}

/// The last value of `key` (a later answer replaces an earlier one).
fn value<'a>(answers: &'a [(String, String)], key: &str) -> Option<&'a str> {
    answers
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !matches!(*v, "Irrelevant" | "NotUnderstood" | "Reject"))
}

fn number(answers: &[(String, String)], key: &str) -> Result<Option<u32>, String> {
    value(answers, key)
        .map(|v| {
            v.parse::<u32>()
                .map_err(|_| format!("the target answered {key}={v}, not a number"))
        })
        .transpose()
}

fn boolean(answers: &[(String, String)], key: &str) -> Result<Option<bool>, String> {
    value(answers, key)
        .map(|v| match v {
            "Yes" => Ok(true),
            "No" => Ok(false),
            _ => Err(format!("the target answered {key}={v}, not Yes or No")),
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &[(&str, &str)]) -> Vec<(String, String)> {
        text.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_targets_limits_win() {
        let o = Offer::default();
        let n = o
            .settle(&pairs(&[
                ("HeaderDigest", "None"),
                ("DataDigest", "None"),
                ("MaxRecvDataSegmentLength", "8192"),
                ("InitialR2T", "Yes"),
                ("ImmediateData", "Yes"),
                ("MaxBurstLength", "262144"),
                ("FirstBurstLength", "65536"),
                ("MaxOutstandingR2T", "1"),
                ("ErrorRecoveryLevel", "0"),
            ]))
            .unwrap();
        assert_eq!(
            n,
            Negotiated {
                max_send_segment: 8192,
                max_burst: 262_144,
                first_burst: 65_536,
                initial_r2t: true,
                immediate_data: true
            }
        );
        // Answers above our offer are held to it; unanswered keys take RFC defaults.
        let n = o
            .settle(&pairs(&[
                ("InitialR2T", "No"),
                ("ImmediateData", "No"),
                ("MaxBurstLength", "99999999"),
                ("FirstBurstLength", "Irrelevant"),
            ]))
            .unwrap();
        assert_eq!(
            n,
            Negotiated {
                max_send_segment: 8192,
                max_burst: 1 << 20,
                first_burst: 65_536,
                initial_r2t: false,
                immediate_data: false
            }
        );
    }

    #[test]
    fn refusals_say_what_to_change() {
        let o = Offer::default();
        let e = o.settle(&pairs(&[("HeaderDigest", "CRC32C")])).unwrap_err();
        assert!(
            e.contains("HeaderDigest=CRC32C") && e.contains("HeaderDigest=None"),
            "{e}"
        );
        let e = o.settle(&pairs(&[("MaxBurstLength", "lots")])).unwrap_err();
        assert!(e.contains("MaxBurstLength=lots, not a number"), "{e}");
        let e = o.settle(&pairs(&[("InitialR2T", "Maybe")])).unwrap_err();
        assert!(e.contains("not Yes or No"), "{e}");
        let e = o
            .settle(&pairs(&[("MaxRecvDataSegmentLength", "16")]))
            .unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        let e = check_security(&pairs(&[("AuthMethod", "CHAP")])).unwrap_err();
        assert!(
            e.contains("AuthMethod=CHAP") && e.contains("no CHAP"),
            "{e}"
        );
        check_security(&pairs(&[
            ("AuthMethod", "None"),
            ("TargetPortalGroupTag", "1"),
        ]))
        .unwrap();
    }

    #[test]
    fn offers_and_answers() {
        let keys = Offer::default().keys();
        let text = crate::storage::iscsi_pdu::encode_text(&keys);
        let text = String::from_utf8(text).unwrap();
        assert!(text.starts_with("HeaderDigest=None\0DataDigest=None\0MaxRecvDataSegmentLength=262144\0InitialR2T=No\0ImmediateData=Yes\0"), "{text}");
        assert!(
            text.ends_with("MaxOutstandingR2T=1\0MaxConnections=1\0ErrorRecoveryLevel=0\0"),
            "{text}"
        );
        let answers = pairs(&[
            ("MaxRecvDataSegmentLength", "8192"),
            ("DataPDUInOrder", "Yes"),
            ("InitialR2T", "Yes"),
            ("TargetPortalGroupTag", "1"),
        ]);
        assert_eq!(
            answer_target_offers(&keys, &answers),
            pairs(&[("DataPDUInOrder", "Yes")])
        );
        let s = security_keys("iqn.2026-12.org.imgbuild:imgrun-h", "iqn.2026-12.org.x:t");
        assert_eq!(s[3], ("AuthMethod", "None".to_string()));
    }
}
