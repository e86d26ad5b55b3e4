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
    /// (`{"Measurements": {"PCR0": …}}`) or `{"PCR0": …, "PCR1": …, "PCR2": …}`.
    #[arg(long, value_name = "FILE")]
    pcrs: PathBuf,
    /// The parent instance's IAM role (`arn:aws:iam::ACCOUNT:role/NAME`).
    #[arg(long, value_name = "ARN")]
    role: String,
    /// Also a key-administration statement for this role (describe, read and replace the
    /// policy, tags, deletion) — never `kms:Decrypt`, `kms:*` or `ReEncrypt`.
    #[arg(long, value_name = "ARN")]
    admin_role: Option<String>,
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

/// Runs `kms-policy`.
pub fn run(args: KmsPolicyArgs) -> Result<()> {
    let pcrs = pcr_file("--pcrs", &args.pcrs)?;
    let mut policy = policy(&pcrs, &args.role)?;
    if let Some(admin) = &args.admin_role {
        check_role(admin)?;
        if let Some(statements) = policy["Statement"].as_array_mut() {
            statements.push(json!({
                "Sid": "StrongroomKeyAdministration",
                "Effect": "Allow",
                "Principal": {"AWS": admin},
                "Action": ADMIN,
                "Resource": "*",
            }));
        }
    }
    print_json(&policy)
}

/// Checks an IAM role ARN: `arn:PARTITION:iam::12-digit-account:role/[path/]name`.
fn check_role(arn: &str) -> Result<()> {
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
        bail!("--role {arn:?} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)");
    }
    Ok(())
}

/// The key policy for these measurements and this role.
pub fn policy(pcrs: &BTreeMap<u16, Vec<u8>>, role: &str) -> Result<Value> {
    check_role(role)?;
    let mut wanted = Vec::with_capacity(3);
    for index in 0..3u16 {
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
        wanted.push((
            format!("kms:RecipientAttestation:PCR{index}"),
            hex::encode(value),
        ));
    }
    let all: serde_json::Map<String, Value> = wanted
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut statements = vec![json!({
        "Sid": "StrongroomRootKeyForTheMeasuredEnclave",
        "Effect": "Allow",
        "Principal": {"AWS": role},
        "Action": GATED,
        "Resource": "*",
        "Condition": {"StringEqualsIgnoreCase": all},
    })];
    for (i, (key, value)) in wanted.iter().enumerate() {
        statements.push(json!({
            "Sid": format!("StrongroomDenyOtherPCR{i}"),
            "Effect": "Deny",
            "Principal": "*",
            "Action": GATED,
            "Resource": "*",
            "Condition": {"StringNotEqualsIgnoreCase": {key: value}},
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
        let a = policy(&parse_pcr_file(&nitro).unwrap(), ROLE).unwrap();
        let b = policy(&parse_pcr_file(&plain).unwrap(), ROLE).unwrap();
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
        let text = policy(&measured, ROLE).unwrap().to_string();
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
    fn debug_mode_and_incomplete_measurements_are_refused() {
        let mut debug = pcrs(1);
        debug.insert(0, vec![0; 48]);
        let e = policy(&debug, ROLE).unwrap_err().to_string();
        assert!(e.contains("debug-mode"), "{e}");
        let mut missing = pcrs(1);
        missing.remove(&2);
        assert!(
            policy(&missing, ROLE)
                .unwrap_err()
                .to_string()
                .contains("PCR2")
        );
    }

    #[test]
    fn only_role_arns_are_accepted() {
        for good in [ROLE, "arn:aws-us-gov:iam::123456789012:role/path/to/role"] {
            assert!(check_role(good).is_ok(), "{good}");
        }
        for bad in [
            "arn:aws:iam::123456789012:user/alice",
            "arn:aws:iam::12345:role/x",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:sts::123456789012:assumed-role/x/y",
            "*",
            "arn:aws:iam::123456789012:role/a b",
        ] {
            assert!(check_role(bad).is_err(), "{bad}");
        }
    }
}
