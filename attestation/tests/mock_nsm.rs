//! Documents from the mock NSM: same shape as AWS's, verify against the mock root only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use ciborium::Value;
use strongroom_attestation::mock::{MockNsm, MockNsmConfig};
use strongroom_attestation::{
    AttestationRequest, Expectations, Nsm, NsmError, TrustedRoot, VerifyError, claimed_timestamp,
    from_millis, verify,
};

fn request() -> AttestationRequest {
    AttestationRequest {
        user_data: Some(b"policy-hash".to_vec()),
        nonce: Some(vec![7; 32]),
        public_key: Some(vec![0x30; 294]),
    }
}

#[test]
fn mock_documents_verify_against_the_mock_root_with_every_expectation() {
    let config = MockNsmConfig::default();
    let nsm = MockNsm::ephemeral(config.clone()).unwrap();
    let doc = nsm.attestation(&request()).unwrap();
    let e = Expectations::new(SystemTime::now())
        .root(nsm.trusted_root())
        .pcr(0, config.pcrs[&0].clone())
        .pcr(1, config.pcrs[&1].clone())
        .pcr(2, config.pcrs[&2].clone())
        .pcr(8, vec![0; 48])
        .nonce(vec![7; 32])
        .user_data(b"policy-hash".to_vec())
        .public_key(vec![0x30; 294])
        .max_age(Duration::from_secs(60));
    let verified = verify(&doc, &e).unwrap();
    assert_eq!(verified.document.module_id, config.module_id);
    assert!(verified.certificate.subject.contains("mock"));
}

#[test]
fn mock_documents_fail_against_the_aws_root() {
    let nsm = MockNsm::ephemeral(MockNsmConfig::default()).unwrap();
    let doc = nsm.attestation(&request()).unwrap();
    let err = verify(&doc, &Expectations::new(SystemTime::now())).unwrap_err();
    assert!(matches!(err, VerifyError::RootMismatch { .. }), "{err}");
    // Another mock's root is no better.
    let other = MockNsm::ephemeral(MockNsmConfig::default()).unwrap();
    let err = verify(
        &doc,
        &Expectations::new(SystemTime::now()).root(other.trusted_root()),
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::RootMismatch { .. }), "{err}");
}

#[test]
fn mock_documents_have_the_nsm_layout() {
    let nsm = MockNsm::ephemeral(MockNsmConfig::default()).unwrap();
    let doc = nsm.attestation(&AttestationRequest::default()).unwrap();
    let real = std::fs::read(format!(
        "{}/tests/data/aws-2022-10-13.cbor",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    // Untagged COSE_Sign1: array(4), protected = bstr(a1 01 38 22) i.e. {1: -35}, then {}.
    assert_eq!(doc[..7], real[..7]);
    let Value::Array(parts) = ciborium::from_reader::<Value, _>(doc.as_slice()).unwrap() else {
        panic!("not an array")
    };
    assert_eq!(parts.len(), 4);
    assert_eq!(parts[1], Value::Map(vec![]));
    assert_eq!(parts[3].as_bytes().map(Vec::len), Some(96));
    let payload = parts[2].as_bytes().unwrap();
    let Value::Map(fields) = ciborium::from_reader::<Value, _>(payload.as_slice()).unwrap() else {
        panic!("payload not a map")
    };
    let names: Vec<_> = fields
        .iter()
        .map(|(k, _)| k.as_text().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "module_id",
            "digest",
            "timestamp",
            "pcrs",
            "certificate",
            "cabundle",
            "public_key",
            "user_data",
            "nonce"
        ]
    );
    // Absent optional fields are null, as the NSM writes them.
    assert!(fields[6..].iter().all(|(_, v)| v.is_null()));
    let pcrs = fields[3].1.as_map().unwrap();
    assert_eq!(pcrs.len(), 16);
    assert!(
        pcrs.iter()
            .all(|(_, v)| v.as_bytes().map(Vec::len) == Some(48))
    );
    // root, regional, zonal, instance
    assert_eq!(fields[5].1.as_array().unwrap().len(), 4);
}

#[test]
fn the_nsm_size_limits_are_enforced() {
    let nsm = MockNsm::ephemeral(MockNsmConfig::default()).unwrap();
    let too_big = AttestationRequest {
        user_data: Some(vec![0; 513]),
        ..Default::default()
    };
    assert!(matches!(
        nsm.attestation(&too_big),
        Err(NsmError::InputSize {
            field: "user_data",
            len: 513,
            ..
        })
    ));
    let max = AttestationRequest {
        user_data: Some(vec![1; 512]),
        nonce: Some(vec![2; 512]),
        public_key: Some(vec![3; 1024]),
    };
    let doc = nsm.attestation(&max).unwrap();
    assert!(
        verify(
            &doc,
            &Expectations::new(SystemTime::now()).root(nsm.trusted_root())
        )
        .is_ok()
    );
}

#[test]
fn mock_leaf_expires_after_three_hours() {
    let nsm = MockNsm::ephemeral(MockNsmConfig::default()).unwrap();
    let now = SystemTime::now();
    let doc = nsm.attestation_at(&request(), now).unwrap();
    let later = now + Duration::from_secs(3 * 3600 + 60);
    let err = verify(&doc, &Expectations::new(later).root(nsm.trusted_root())).unwrap_err();
    assert!(
        matches!(&err, VerifyError::CertificateExpired { which, .. } if which == "certificate"),
        "{err}"
    );
}

#[test]
fn intermediates_rotate_before_they_expire() {
    let nsm = MockNsm::ephemeral(MockNsmConfig::default()).unwrap();
    // Two days on, the first instance certificate (one day) would have expired.
    let later = SystemTime::now() + Duration::from_secs(2 * 24 * 3600);
    let doc = nsm.attestation_at(&request(), later).unwrap();
    assert!(verify(&doc, &Expectations::new(later).root(nsm.trusted_root())).is_ok());
}

#[test]
fn documents_for_an_earlier_time_after_a_later_one_still_verify() {
    let nsm = MockNsm::ephemeral(MockNsmConfig::default()).unwrap();
    let now = SystemTime::now();
    let (early, late) = (
        now + Duration::from_secs(2 * 24 * 3600),
        now + Duration::from_secs(9 * 24 * 3600),
    );
    for at in [late, early, late] {
        let doc = nsm.attestation_at(&request(), at).unwrap();
        let e = Expectations::new(at).root(nsm.trusted_root());
        assert!(verify(&doc, &e).is_ok());
    }
}

#[test]
fn an_old_document_verifies_at_its_claimed_time_and_not_long_after() {
    let nsm = MockNsm::ephemeral(MockNsmConfig::default()).unwrap();
    // Ten days on (fresh intermediates then), to the millisecond the document carries.
    let made = from_millis(
        u64::try_from(
            (SystemTime::now() + Duration::from_secs(10 * 24 * 3600))
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap(),
    );
    let doc = nsm.attestation_at(&request(), made).unwrap();
    assert_eq!(claimed_timestamp(&doc).unwrap(), made);
    let at_its_time = Expectations::new(made).root(nsm.trusted_root());
    assert_eq!(verify(&doc, &at_its_time).unwrap().timestamp(), made);
    // A day later its leaf has expired: the time matters.
    let later = Expectations::new(made + Duration::from_secs(24 * 3600)).root(nsm.trusted_root());
    assert!(matches!(
        verify(&doc, &later).unwrap_err(),
        VerifyError::CertificateExpired { .. }
    ));
    // Not a document: refused, not guessed.
    assert!(claimed_timestamp(b"not cbor").is_err());
    assert!(matches!(
        claimed_timestamp(&vec![0; 40 * 1024]).unwrap_err(),
        VerifyError::TooLarge { .. }
    ));
}

#[test]
fn debug_mode_pcrs_make_debug_documents() {
    let mut config = MockNsmConfig::default();
    config.pcrs.insert(0, vec![0; 48]);
    let nsm = MockNsm::ephemeral(config).unwrap();
    let doc = nsm.attestation(&request()).unwrap();
    let e = Expectations::new(SystemTime::now()).root(nsm.trusted_root());
    assert_eq!(verify(&doc, &e).unwrap_err(), VerifyError::DebugMode);
    assert!(verify(&doc, &e.allow_debug(true)).is_ok());
}

#[test]
fn a_persisted_root_is_pinned_from_its_file() {
    let dir = std::env::temp_dir().join(format!(
        "strongroom-mock-root-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let first = MockNsm::open_or_create(&dir, MockNsmConfig::default()).unwrap();
    let doc = first.attestation(&request()).unwrap();
    drop(first);
    // A verifier in another process knows only root.pem.
    let pem = std::fs::read_to_string(dir.join("root.pem")).unwrap();
    let root = TrustedRoot::from_pem(&pem).unwrap();
    assert!(
        verify(
            &doc,
            &Expectations::new(SystemTime::now()).root(root.clone())
        )
        .is_ok()
    );
    // A restarted mock NSM keeps the root, so its documents verify against the same file.
    let second = MockNsm::open_or_create(&dir, MockNsmConfig::default()).unwrap();
    let doc2 = second.attestation(&request()).unwrap();
    assert!(verify(&doc2, &Expectations::new(SystemTime::now()).root(root)).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}
