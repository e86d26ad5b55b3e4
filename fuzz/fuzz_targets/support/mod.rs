//! What several fuzz targets share: an enclave unsealed through the real exchange.

use strongroom_attestation::AttestationDocument;
use strongroom_attestation::mock::MockNsm;
use strongroom_enclave::Enclave;
use strongroom_protocol::messages::{CompleteUnseal, Request, Response};

/// Unseals `enclave` on its first boot with `genesis` and a fixed root key, playing KMS:
/// the root key sealed for the RSA key of the enclave's own challenge document.
pub fn unseal_first_boot(enclave: &Enclave<MockNsm>, genesis: &str) {
    let Response::UnsealChallenge { attestation_document } = enclave.handle(Request::BeginUnseal)
    else {
        panic!("no challenge")
    };
    // The document's payload is the third element of the COSE_Sign1 array.
    let sign1: ciborium::Value = ciborium::from_reader(attestation_document.as_slice()).expect("cbor");
    let payload = sign1.as_array().and_then(|a| a[2].as_bytes()).expect("payload").clone();
    let doc = AttestationDocument::from_payload(&payload).expect("payload");
    let envelope = strongroom_envelope::seal_for_recipient(&doc.public_key.expect("key"), &[9u8; 32])
        .expect("envelope");
    let answer = enclave.handle(Request::CompleteUnseal(CompleteUnseal {
        ciphertext_for_recipient: envelope.into(),
        key_check: None,
        snapshot_len: None,
        genesis: Some(genesis.as_bytes().to_vec().into()),
    }));
    assert!(matches!(answer, Response::ReplayFrom { seq: 0 }));
    let answer = enclave.handle(Request::FinishBoot);
    assert!(matches!(answer, Response::Unsealed { .. }));
}
