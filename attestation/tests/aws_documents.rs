//! Real AWS-signed attestation documents: each verifies at its time, and each mutation is
//! refused with its own error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use strongroom_attestation::mock::{MockNsm, MockNsmConfig};
use strongroom_attestation::{Expectations, Nsm, TrustedRoot, VerifyError, from_millis, verify};

struct Vector {
    file: &'static str,
    timestamp_ms: u64,
    debug: bool,
    pcr0: &'static str,
}

const VECTORS: [Vector; 4] = [
    Vector {
        file: "aws-2022-10-13.cbor",
        timestamp_ms: 1_665_651_482_136,
        debug: false,
        pcr0: "f4d48b81a460c9916d1e685119074bf24660afd3e34fae9fca0a0d28d9d5599936332687e6f66fc890ac8cf150142d8b",
    },
    Vector {
        file: "aws-2023-01-18.cbor",
        timestamp_ms: 1_674_047_239_280,
        debug: false,
        pcr0: "d265a83faa7b4fa0d73b82b6d06253e894445922937d0ee5a74fe4891da9817611a71e71b98e5329232902de3cf419af",
    },
    Vector {
        file: "aws-debug-2022-10-12.cbor",
        timestamp_ms: 1_665_582_606_081,
        debug: true,
        pcr0: "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    },
    Vector {
        file: "aws-debug-2023-09-18.cbor",
        timestamp_ms: 1_695_049_410_860,
        debug: true,
        pcr0: "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    },
];

fn load(file: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// One minute after the document was made: inside every certificate's validity.
fn at(v: &Vector) -> SystemTime {
    from_millis(v.timestamp_ms) + Duration::from_secs(60)
}

fn expect(v: &Vector) -> Expectations {
    Expectations::new(at(v)).allow_debug(v.debug)
}

fn flip(doc: &[u8], index: usize) -> Vec<u8> {
    let mut d = doc.to_vec();
    d[index] ^= 0x01;
    d
}

fn position_of(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

#[test]
fn each_document_verifies_at_its_time() {
    for v in &VECTORS {
        let doc = load(v.file);
        let pcr0 = hex::decode(v.pcr0).unwrap();
        let verified = verify(&doc, &expect(v).pcr(0, pcr0.clone()))
            .unwrap_or_else(|e| panic!("{}: {e}", v.file));
        assert_eq!(verified.document.timestamp, v.timestamp_ms, "{}", v.file);
        assert_eq!(verified.document.pcrs[&0], pcr0);
        assert_eq!(verified.document.pcrs.len(), 16);
        assert!(verified.certificate.subject.contains("aws"), "{}", v.file);
    }
}

#[test]
fn published_pcrs_of_the_production_documents_match() {
    let v = &VECTORS[0];
    let e = expect(v)
        .pcr(1, hex::decode("bcdf05fefccaa8e55bf2c8d6dee9e79bbff31e34bf28a99aa19e6b29c37ee80b214a414b7607236edf26fcb78654e63f").unwrap())
        .pcr(2, hex::decode("d8f114da658de5481f8d9ec73907feb553560787522f705c92d7d96beed8e15e2aa611984e098c576832c292e8dc469a").unwrap())
        .pcr(8, hex::decode("8790eb3cce6c83d07e84b126dc61ca923333d6f66615c4a79157de48c5ab2418bdc60746ea7b7afbff03a1c6210201cb").unwrap());
    let verified = verify(&load(v.file), &e).unwrap();
    assert_eq!(verified.document.nonce.as_ref().map(Vec::len), Some(256));
}

#[test]
fn debug_document_fields_are_as_published() {
    let v = &VECTORS[2];
    let verified = verify(&load(v.file), &expect(v)).unwrap();
    assert_eq!(
        verified.document.user_data.as_deref(),
        Some(&b"hello, world!"[..])
    );
    assert_eq!(
        verified.document.public_key.as_deref(),
        Some(&b"my super secret key"[..])
    );
    assert_eq!(verified.document.nonce, None);
}

#[test]
fn a_flipped_signature_bit_is_a_bad_signature() {
    for v in &VECTORS {
        let doc = load(v.file);
        // The ES384 signature is the last 96 bytes of the COSE_Sign1 array.
        let bad = flip(&doc, doc.len() - 20);
        assert_eq!(
            verify(&bad, &expect(v)).unwrap_err(),
            VerifyError::BadSignature,
            "{}",
            v.file
        );
    }
}

#[test]
fn a_flipped_payload_bit_is_a_bad_signature() {
    for v in &VECTORS {
        let doc = load(v.file);
        // Inside module_id: still valid syntax, so only the signature can catch it.
        let in_module_id = position_of(&doc, b"-enc") + 1;
        let err = verify(&flip(&doc, in_module_id), &expect(v)).unwrap_err();
        assert_eq!(err, VerifyError::BadSignature, "{}", v.file);
        // Inside PCR3, which no expectation names.
        let verified = verify(&doc, &expect(v)).unwrap();
        let in_pcr3 = position_of(&doc, &verified.document.pcrs[&3]) + 7;
        let err = verify(&flip(&doc, in_pcr3), &expect(v)).unwrap_err();
        assert_eq!(err, VerifyError::BadSignature, "{}", v.file);
    }
}

#[test]
fn a_wrong_pcr_is_named() {
    let v = &VECTORS[1];
    let err = verify(&load(v.file), &expect(v).pcr(2, vec![0xaa; 48])).unwrap_err();
    match err {
        VerifyError::PcrMismatch {
            index,
            expected,
            found,
        } => {
            assert_eq!(index, 2);
            assert_eq!(expected, "aa".repeat(48));
            assert!(found.starts_with("e4f634d2"));
        }
        other => panic!("expected PcrMismatch, got {other}"),
    }
    let err = verify(&load(v.file), &expect(v).pcr(20, vec![0; 48])).unwrap_err();
    assert_eq!(err, VerifyError::PcrMissing(20));
}

#[test]
fn a_wrong_nonce_is_named() {
    let v = &VECTORS[0];
    let err = verify(&load(v.file), &expect(v).nonce(vec![1, 2, 3])).unwrap_err();
    assert!(
        matches!(err, VerifyError::FieldMismatch { field: "nonce", .. }),
        "got {err}"
    );
    let v = &VECTORS[2];
    let err = verify(&load(v.file), &expect(v).nonce(vec![1, 2, 3])).unwrap_err();
    assert_eq!(err, VerifyError::ExpectedFieldMissing("nonce"));
}

#[test]
fn times_outside_the_certificates_are_refused() {
    for v in &VECTORS {
        let doc = load(v.file);
        let later = at(v) + Duration::from_secs(4 * 3600);
        let err = verify(&doc, &Expectations::new(later).allow_debug(v.debug)).unwrap_err();
        assert!(
            matches!(&err, VerifyError::CertificateExpired { which, .. } if which == "certificate"),
            "{}: {err}",
            v.file
        );
        let earlier = from_millis(v.timestamp_ms) - Duration::from_secs(3600);
        let err = verify(&doc, &Expectations::new(earlier).allow_debug(v.debug)).unwrap_err();
        assert!(
            matches!(err, VerifyError::CertificateNotYetValid { .. }),
            "{}: {err}",
            v.file
        );
    }
}

#[test]
fn debug_documents_need_explicit_permission() {
    for v in VECTORS.iter().filter(|v| v.debug) {
        let err = verify(&load(v.file), &Expectations::new(at(v))).unwrap_err();
        assert_eq!(err, VerifyError::DebugMode, "{}", v.file);
    }
}

#[test]
fn a_mock_root_does_not_accept_aws_documents() {
    let mock = MockNsm::ephemeral(MockNsmConfig::default()).unwrap();
    for v in &VECTORS {
        let err = verify(&load(v.file), &expect(v).root(mock.trusted_root())).unwrap_err();
        assert!(
            matches!(err, VerifyError::RootMismatch { .. }),
            "{}: {err}",
            v.file
        );
    }
}

#[test]
fn maximum_age_is_enforced() {
    let v = &VECTORS[0];
    let doc = load(v.file);
    let e = expect(v).max_age(Duration::from_secs(30));
    assert!(matches!(
        verify(&doc, &e),
        Err(VerifyError::TooOld {
            age_secs: 60,
            max_secs: 30
        })
    ));
    assert!(verify(&doc, &expect(v).max_age(Duration::from_secs(120))).is_ok());
}

#[test]
fn tagged_form_verifies_and_garbage_does_not() {
    let v = &VECTORS[0];
    let doc = load(v.file);
    let mut tagged = vec![0xd2];
    tagged.extend_from_slice(&doc);
    assert!(verify(&tagged, &expect(v)).is_ok());
    assert!(matches!(
        verify(&doc[..doc.len() / 2], &expect(v)),
        Err(VerifyError::MalformedCose(_))
    ));
    assert!(matches!(
        verify(&vec![0u8; 40_000], &expect(v)),
        Err(VerifyError::TooLarge { len: 40_000, .. })
    ));
}

#[test]
fn an_embedded_root_is_pinned_by_fingerprint() {
    let v = &VECTORS[0];
    let pem = std::fs::read_to_string(format!(
        "{}/tests/data/aws-nitro-enclaves-root-g1.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let explicit = TrustedRoot::from_pem(&pem).unwrap();
    assert_eq!(
        explicit.fingerprint(),
        TrustedRoot::aws_nitro_g1().fingerprint()
    );
    assert_eq!(explicit.der(), TrustedRoot::aws_nitro_g1().der());
    assert!(verify(&load(v.file), &expect(v).root(explicit)).is_ok());
}
