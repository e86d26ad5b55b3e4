//! `strongroom kms-policy`: the KMS key policy statements that release the root key only
//! to an enclave with the given measurements.
//!
//! The shape is allow-on-match plus explicit deny otherwise, as AWS recommends for
//! attestation-gated keys: the parent's role may call `Decrypt` and `GenerateDataKey` only
//! with a `Recipient` attestation document whose PCR0, PCR1 and PCR2 are these; one `Deny`
//! per PCR (for every principal) refuses the same calls when that PCR differs or is absent
//! (a negated condition holds when the key is missing, so a call with no attestation
//! document at all is refused whatever other statements or IAM policies allow); and
//! `ReEncrypt*`, which would re-wrap the root key under an ungated key, is denied outright.
//!
//! With several releases (`--pcrs` repeated, during an upgrade: the running image and the
//! next), one allow statement per release, each requiring that release's three values
//! together, and each per-PCR deny listing every release's value for its PCR: an enclave
//! with all the PCRs of one release gets the key; a mix of two releases' values matches
//! no allow statement and gets nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::client::print_json;
use crate::input::pcr_file;

/// The calls that hand out the root key (to the enclave, under its attested RSA key).
const GATED: [&str; 2] = ["kms:Decrypt", "kms:GenerateDataKey"];

/// Arguments of `kms-policy`.
#[derive(clap::Args)]
pub struct KmsPolicyArgs {
    /// The enclave image's measurements: what `nitro-cli build-enclave` prints
    /// (`{"Measurements": {"PCR0": …}}`) or `{"PCR0": …, "PCR1": …, "PCR2": …}`. Repeat it
    /// for a transition policy that allows each of several releases (the running one
    /// first, then the next): the allow statements are
    /// `StrongroomRootKeyForTheMeasuredEnclave`, then `…Enclave2`, `…Enclave3` in order.
    #[arg(long, value_name = "FILE", required = true)]
    pcrs: Vec<PathBuf>,
    /// The parent instance's IAM role (`arn:aws:iam::ACCOUNT:role/NAME`).
    #[arg(long, value_name = "ARN")]
    role: String,
    /// Also a key-administration statement for this role (describe, read and replace the
    /// policy, tags, deletion) — never `kms:Decrypt`, `kms:*` or `ReEncrypt`.
    #[arg(long, value_name = "ARN")]
    admin_role: Option<String>,
    /// Also a read-only statement for this role (repeatable): describe the key, read its
    /// policy, grants, tags and rotation status — what an auditor checks, nothing more.
    #[arg(long, value_name = "ARN")]
    auditor_role: Vec<String>,
}

/// What key administrators may do: everything needed to manage the key and its policy
/// (an upgrade adds new PCRs), nothing that yields key material.
const ADMIN: [&str; 9] = [
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:PutKeyPolicy",
    "kms:ListResourceTags",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:GetKeyRotationStatus",
];

/// What auditors may do: read the key's description, policy, grants, tags and rotation
/// status (`aws kms get-key-policy`, `describe-key`, `list-grants`), nothing that changes
/// the key or yields key material.
const AUDIT: [&str; 6] = [
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:ListKeyPolicies",
    "kms:ListGrants",
    "kms:ListResourceTags",
    "kms:GetKeyRotationStatus",
];

/// Runs `kms-policy`.
pub fn run(args: KmsPolicyArgs) -> Result<()> {
    let mut releases = Vec::with_capacity(args.pcrs.len());
    for path in &args.pcrs {
        let pcrs = pcr_file("--pcrs", path)?;
        // Checked here too, so that the error names the file.
        pinned(&pcrs).with_context(|| format!("--pcrs {}", path.display()))?;
        releases.push(pcrs);
    }
    let mut policy = policy(&releases, &args.role)?;
    let admins: Vec<String> = args.admin_role.into_iter().collect();
    for (flag, sid, roles, actions) in [
        (
            "--admin-role",
            "StrongroomKeyAdministration",
            &admins,
            &ADMIN[..],
        ),
        (
            "--auditor-role",
            "StrongroomKeyAudit",
            &args.auditor_role,
            &AUDIT[..],
        ),
    ] {
        if let Some(statement) = role_statement(flag, sid, roles, actions)?
            && let Some(statements) = policy["Statement"].as_array_mut()
        {
            statements.push(statement);
        }
    }
    print_json(&policy)
}

/// An allow statement of `actions` for `roles` (none: no statement; one: the ARN as a
/// string, as AWS writes it; several: a list).
fn role_statement(
    flag: &str,
    sid: &str,
    roles: &[String],
    actions: &[&str],
) -> Result<Option<Value>> {
    let mut distinct: Vec<&String> = Vec::with_capacity(roles.len());
    for role in roles {
        check_role(flag, role)?;
        if distinct.contains(&role) {
            bail!("{flag} {role} is given twice");
        }
        distinct.push(role);
    }
    let principal = match distinct.as_slice() {
        [] => return Ok(None),
        [one] => json!(one),
        many => json!(many),
    };
    Ok(Some(json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": actions,
        "Resource": "*",
    })))
}

/// Checks an IAM role ARN: `arn:PARTITION:iam::12-digit-account:role/[path/]name`.
fn check_role(flag: &str, arn: &str) -> Result<()> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = matches!(
        parts.as_slice(),
        ["arn", "aws" | "aws-cn" | "aws-us-gov", "iam", "", account, resource]
            if account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource.strip_prefix("role/").is_some_and(|name| {
                    !name.is_empty()
                        && name.len() <= 512
                        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
                })
    );
    if !ok {
        bail!("{flag} {arn:?} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)");
    }
    Ok(())
}

/// The hex PCR0, PCR1 and PCR2 of one release; refused if one is missing or all zeros.
fn pinned(pcrs: &BTreeMap<u16, Vec<u8>>) -> Result<[String; 3]> {
    let mut wanted: [String; 3] = Default::default();
    for (index, slot) in (0..3u16).zip(wanted.iter_mut()) {
        let value = pcrs.get(&index).with_context(|| {
            format!("PCR{index} is missing: the policy pins PCR0, PCR1 and PCR2")
        })?;
        if value.iter().all(|b| *b == 0) {
            bail!(
                "PCR{index} is all zeros: that is a debug-mode enclave (nitro-cli run-enclave \
                 --debug-mode), whose memory the parent can read; never release the root key \
                 to one"
            );
        }
        *slot = hex::encode(value);
    }
    Ok(wanted)
}

/// The Sid of release `n`'s allow statement (0-based): the first keeps the single-release
/// name, so a one-release policy is the same whatever produced it.
fn allow_sid(n: usize) -> String {
    match n {
        0 => "StrongroomRootKeyForTheMeasuredEnclave".to_string(),
        n => format!("StrongroomRootKeyForTheMeasuredEnclave{}", n + 1),
    }
}

/// The key policy for these releases' measurements (one or more; each PCR0–2 set allowed
/// as a whole) and this role. The same release given twice is refused: it is a mistake
/// (the old file passed for the new, say), never a need.
pub fn policy(releases: &[BTreeMap<u16, Vec<u8>>], role: &str) -> Result<Value> {
    check_role("--role", role)?;
    if releases.is_empty() {
        bail!("no measurements: give --pcrs FILE (once per release)");
    }
    let mut pinned_sets: Vec<[String; 3]> = Vec::with_capacity(releases.len());
    for (n, pcrs) in releases.iter().enumerate() {
        let wanted = if releases.len() == 1 {
            pinned(pcrs)?
        } else {
            pinned(pcrs)
                .with_context(|| format!("release {} (the --pcrs file in that place)", n + 1))?
        };
        if let Some(same) = pinned_sets.iter().position(|w| *w == wanted) {
            bail!(
                "--pcrs files {} and {} are the same release (PCR0, PCR1 and PCR2 identical): \
                 give each release once",
                same + 1,
                n + 1
            );
        }
        pinned_sets.push(wanted);
    }
    let key = |index: usize| format!("kms:RecipientAttestation:PCR{index}");
    let mut statements = Vec::new();
    for (n, wanted) in pinned_sets.iter().enumerate() {
        let all: serde_json::Map<String, Value> = wanted
            .iter()
            .enumerate()
            .map(|(i, v)| (key(i), Value::String(v.clone())))
            .collect();
        statements.push(json!({
            "Sid": allow_sid(n),
            "Effect": "Allow",
            "Principal": {"AWS": role},
            "Action": GATED,
            "Resource": "*",
            "Condition": {"StringEqualsIgnoreCase": all},
        }));
    }
    for i in 0..3 {
        // Every release's value for this PCR, each once (releases often share PCR1, the
        // kernel); one value stays a plain string, as in a single-release policy.
        let mut values: Vec<&String> = Vec::new();
        for wanted in &pinned_sets {
            if !values.contains(&&wanted[i]) {
                values.push(&wanted[i]);
            }
        }
        let value = match values.as_slice() {
            [one] => json!(one),
            many => json!(many),
        };
        statements.push(json!({
            "Sid": format!("StrongroomDenyOtherPCR{i}"),
            "Effect": "Deny",
            "Principal": "*",
            "Action": GATED,
            "Resource": "*",
            "Condition": {"StringNotEqualsIgnoreCase": {key(i): value}},
        }));
    }
    statements.push(json!({
        "Sid": "StrongroomDenyReEncrypt",
        "Effect": "Deny",
        "Principal": "*",
        "Action": ["kms:ReEncryptFrom", "kms:ReEncryptTo"],
        "Resource": "*",
    }));
    Ok(json!({"Version": "2012-10-17", "Statement": statements}))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::test_support::{nitro_pcr_file, pcrs};
    use strongroom_attestation::parse_pcr_file;
    use strongroom_mock_kms::policy::{Policy, RequestContext};

    const ROLE: &str = "arn:aws:iam::123456789012:role/strongroom-parent";
    const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn attested(pcrs: &BTreeMap<u16, Vec<u8>>) -> RequestContext {
        let pcrs: BTreeMap<u8, Vec<u8>> = pcrs.iter().map(|(i, v)| (*i as u8, v.clone())).collect();
        RequestContext::new().with_attestation(&pcrs)
    }

    #[test]
    fn both_pcr_file_forms_give_the_same_policy() {
        let h = |b: u8| hex::encode([b; 48]);
        let nitro = nitro_pcr_file(1);
        let plain = format!(
            r#"{{"PCR0": "{}", "PCR1": "{}", "PCR2": "{}"}}"#,
            h(1),
            h(2),
            h(3)
        );
        let a = policy(&[parse_pcr_file(&nitro).unwrap()], ROLE).unwrap();
        let b = policy(&[parse_pcr_file(&plain).unwrap()], ROLE).unwrap();
        assert_eq!(a, b);
        let allow = &a["Statement"][0];
        assert_eq!(allow["Principal"]["AWS"], ROLE);
        assert_eq!(
            allow["Condition"]["StringEqualsIgnoreCase"]["kms:RecipientAttestation:PCR1"],
            h(2)
        );
    }

    #[test]
    fn kms_releases_the_key_only_to_the_measured_enclave() {
        let measured = pcrs(1);
        let text = policy(std::slice::from_ref(&measured), ROLE)
            .unwrap()
            .to_string();
        // Evaluated by the mock KMS's implementation of key-policy evaluation.
        let p = Policy::parse(&text).unwrap();
        for action in GATED {
            assert!(
                p.evaluate(action, KEY, &attested(&measured)).is_allowed(),
                "{action}"
            );
            // Any one PCR different: refused.
            for index in 0..3u16 {
                let mut other = measured.clone();
                other.get_mut(&index).unwrap()[0] ^= 1;
                assert!(!p.evaluate(action, KEY, &attested(&other)).is_allowed());
            }
            // No attestation document at all: refused, explicitly.
            assert!(!p.evaluate(action, KEY, &RequestContext::new()).is_allowed());
        }
        assert!(
            !p.evaluate("kms:ReEncryptFrom", KEY, &attested(&measured))
                .is_allowed()
        );
    }

    #[test]
    fn a_transition_policy_releases_the_key_to_either_release_and_never_a_mix() {
        let old = pcrs(0x10);
        let new = pcrs(0x20);
        let value = policy(&[old.clone(), new.clone()], ROLE).unwrap();
        let sids: Vec<&str> = value["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Sid"].as_str().unwrap())
            .collect();
        assert_eq!(
            sids,
            [
                "StrongroomRootKeyForTheMeasuredEnclave",
                "StrongroomRootKeyForTheMeasuredEnclave2",
                "StrongroomDenyOtherPCR0",
                "StrongroomDenyOtherPCR1",
                "StrongroomDenyOtherPCR2",
                "StrongroomDenyReEncrypt",
            ]
        );
        assert_eq!(
            value["Statement"][3]["Condition"]["StringNotEqualsIgnoreCase"]["kms:RecipientAttestation:PCR1"],
            json!([hex::encode(&old[&1]), hex::encode(&new[&1])])
        );
        let p = Policy::parse(&value.to_string()).unwrap();
        for action in GATED {
            let allowed = |pcrs: &BTreeMap<u16, Vec<u8>>| {
                p.evaluate(action, KEY, &attested(pcrs)).is_allowed()
            };
            assert!(allowed(&old), "{action}: the running release");
            assert!(allowed(&new), "{action}: the next release");
            // Every mix of the two releases' values: refused.
            for mask in 1..7u8 {
                let mix: BTreeMap<u16, Vec<u8>> = (0..3u16)
                    .map(|i| {
                        let from = if mask & (1 << i) != 0 { &new } else { &old };
                        (i, from[&i].clone())
                    })
                    .collect();
                assert!(!allowed(&mix), "{action}: mix {mask:03b}");
            }
            // Any other value of any PCR, in either release: refused.
            for release in [&old, &new] {
                for index in 0..3u16 {
                    let mut other = release.clone();
                    other.get_mut(&index).unwrap()[0] ^= 1;
                    assert!(!allowed(&other), "{action}: PCR{index} changed");
                }
            }
            assert!(!allowed(&pcrs(0x30)), "{action}: a third release");
            assert!(!p.evaluate(action, KEY, &RequestContext::new()).is_allowed());
        }
        assert!(
            !p.evaluate("kms:ReEncryptFrom", KEY, &attested(&new))
                .is_allowed()
        );

        // Releases that share a PCR (the same kernel: PCR1) list it once.
        let mut same_kernel = new.clone();
        same_kernel.insert(1, old[&1].clone());
        let value = policy(&[old.clone(), same_kernel.clone()], ROLE).unwrap();
        assert_eq!(
            value["Statement"][3]["Condition"]["StringNotEqualsIgnoreCase"]["kms:RecipientAttestation:PCR1"],
            json!(hex::encode(&old[&1]))
        );
        let p = Policy::parse(&value.to_string()).unwrap();
        assert!(
            p.evaluate(GATED[0], KEY, &attested(&same_kernel))
                .is_allowed()
        );
        assert!(p.evaluate(GATED[0], KEY, &attested(&old)).is_allowed());
        let mut mix = old.clone();
        mix.insert(2, new[&2].clone());
        assert!(!p.evaluate(GATED[0], KEY, &attested(&mix)).is_allowed());

        // Three releases: a third allow statement, numbered.
        let three = policy(&[old.clone(), new.clone(), pcrs(0x30)], ROLE).unwrap();
        assert_eq!(
            three["Statement"][2]["Sid"],
            "StrongroomRootKeyForTheMeasuredEnclave3"
        );
    }

    #[test]
    fn a_transition_policy_refuses_duplicates_and_debug_releases() {
        let e = policy(&[pcrs(1), pcrs(2), pcrs(1)], ROLE)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--pcrs files 1 and 3 are the same release"),
            "{e}"
        );
        let mut debug = pcrs(2);
        debug.insert(1, vec![0; 48]);
        let e = format!("{:#}", policy(&[pcrs(1), debug], ROLE).unwrap_err());
        assert!(
            e.contains("release 2") && e.contains("PCR1 is all zeros"),
            "{e}"
        );
        assert!(policy(&[], ROLE).is_err());
    }

    #[test]
    fn a_single_release_policy_is_unchanged() {
        // What every earlier version printed for pcrs(1) (the deny values plain strings).
        let h = |b: u8| hex::encode([b; 48]);
        let got = policy(&[pcrs(1)], ROLE).unwrap();
        let deny = |i: u8| {
            json!({
                "Sid": format!("StrongroomDenyOtherPCR{i}"),
                "Effect": "Deny",
                "Principal": "*",
                "Action": GATED,
                "Resource": "*",
                "Condition": {"StringNotEqualsIgnoreCase": {
                    format!("kms:RecipientAttestation:PCR{i}"): h(1 + i)}},
            })
        };
        let want = json!({"Version": "2012-10-17", "Statement": [
            {
                "Sid": "StrongroomRootKeyForTheMeasuredEnclave",
                "Effect": "Allow",
                "Principal": {"AWS": ROLE},
                "Action": GATED,
                "Resource": "*",
                "Condition": {"StringEqualsIgnoreCase": {
                    "kms:RecipientAttestation:PCR0": h(1),
                    "kms:RecipientAttestation:PCR1": h(2),
                    "kms:RecipientAttestation:PCR2": h(3),
                }},
            },
            deny(0), deny(1), deny(2),
            {
                "Sid": "StrongroomDenyReEncrypt",
                "Effect": "Deny",
                "Principal": "*",
                "Action": ["kms:ReEncryptFrom", "kms:ReEncryptTo"],
                "Resource": "*",
            },
        ]});
        assert_eq!(got.to_string(), want.to_string());
    }

    #[test]
    fn debug_mode_and_incomplete_measurements_are_refused() {
        let mut debug = pcrs(1);
        debug.insert(0, vec![0; 48]);
        let e = policy(&[debug], ROLE).unwrap_err().to_string();
        assert!(e.contains("debug-mode"), "{e}");
        let mut missing = pcrs(1);
        missing.remove(&2);
        assert!(
            policy(&[missing], ROLE)
                .unwrap_err()
                .to_string()
                .contains("PCR2")
        );
    }

    #[test]
    fn auditors_may_read_the_key_and_its_policy_and_nothing_else() {
        const AUDITOR: &str = "arn:aws:iam::123456789012:role/auditor";
        const OTHER: &str = "arn:aws:iam::210987654321:role/external-auditor";
        let one = role_statement(
            "--auditor-role",
            "StrongroomKeyAudit",
            &[AUDITOR.into()],
            &AUDIT,
        )
        .unwrap()
        .unwrap();
        assert_eq!(one["Principal"]["AWS"], AUDITOR);
        assert_eq!(one["Effect"], "Allow");
        assert!(one.get("Condition").is_none());
        let actions: Vec<&str> = one["Action"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(actions.contains(&"kms:GetKeyPolicy") && actions.contains(&"kms:DescribeKey"));
        for action in &actions {
            let verb = action.strip_prefix("kms:").unwrap();
            assert!(
                ["Describe", "Get", "List"]
                    .iter()
                    .any(|v| verb.starts_with(v)),
                "{action} is not read-only"
            );
            assert!(!GATED.contains(action), "{action}");
        }

        let two = role_statement(
            "--auditor-role",
            "StrongroomKeyAudit",
            &[AUDITOR.into(), OTHER.into()],
            &AUDIT,
        )
        .unwrap()
        .unwrap();
        assert_eq!(two["Principal"]["AWS"], serde_json::json!([AUDITOR, OTHER]));
        assert!(
            role_statement("--auditor-role", "S", &[], &AUDIT)
                .unwrap()
                .is_none()
        );
        let twice = role_statement(
            "--auditor-role",
            "S",
            &[AUDITOR.into(), AUDITOR.into()],
            &AUDIT,
        );
        assert!(twice.unwrap_err().to_string().contains("given twice"));
        let user = role_statement(
            "--auditor-role",
            "S",
            &["arn:aws:iam::123456789012:user/a".into()],
            &AUDIT,
        );
        assert!(user.unwrap_err().to_string().starts_with("--auditor-role "));
    }

    #[test]
    fn only_role_arns_are_accepted() {
        for good in [ROLE, "arn:aws-us-gov:iam::123456789012:role/path/to/role"] {
            assert!(check_role("--role", good).is_ok(), "{good}");
        }
        for bad in [
            "arn:aws:iam::123456789012:user/alice",
            "arn:aws:iam::12345:role/x",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:sts::123456789012:assumed-role/x/y",
            "*",
            "arn:aws:iam::123456789012:role/a b",
        ] {
            assert!(check_role("--role", bad).is_err(), "{bad}");
        }
    }
}
