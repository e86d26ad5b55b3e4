//! Arbitrary frame payloads decoded as the enclave decodes them (`Envelope<Request>`) and,
//! when they decode, handled by an unsealed enclave: no input may panic it.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use strongroom_attestation::AttestationDocument;
use strongroom_attestation::mock::{MockNsm, MockNsmConfig};
use strongroom_enclave::Enclave;
use strongroom_protocol::decode_payload;
use strongroom_protocol::messages::{CompleteUnseal, Request, Response};

/// An enclave unsealed once, through the real exchange, with a fixed root key.
static ENCLAVE: LazyLock<Enclave<MockNsm>> = LazyLock::new(|| {
    let nsm = MockNsm::ephemeral(MockNsmConfig::default()).expect("mock NSM");
    let enclave = Enclave::new(nsm);
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
        state: None,
    }));
    assert!(matches!(answer, Response::Unsealed { .. }));
    enclave
});

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = decode_payload::<Request>(data) {
        let _ = ENCLAVE.handle(envelope.body);
    }
});
