//! Arbitrary frame payloads decoded as the enclave decodes them (`Envelope<Request>`) and,
//! when they decode, handled by an unsealed enclave: no input may panic it.
#![no_main]

mod support;

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use strongroom_attestation::mock::{MockNsm, MockNsmConfig};
use strongroom_enclave::Enclave;
use strongroom_protocol::decode_payload;
use strongroom_protocol::messages::Request;

/// A genesis with one admin and one principal (the RFC 8032 test-vector public key), who
/// may sign digests; fuzzed calls carry no valid stamp, so they exercise routing, limits
/// and stamp parsing.
const GENESIS: &str = r#"{"version": 1,
  "admins": {"threshold": 1, "keys": [{"algorithm": "ed25519", "public": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"}]},
  "policy": {"version": 1,
    "principals": [{"id": "p", "roles": [], "keys": [{"algorithm": "ed25519", "public": "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"}]}],
    "rules": [{"name": "digests", "effect": "allow", "actions": ["sign_digest"]}]}}"#;

/// An enclave unsealed once, through the real exchange, with a fixed root key.
static ENCLAVE: LazyLock<Enclave<MockNsm>> = LazyLock::new(|| {
    let nsm = MockNsm::ephemeral(MockNsmConfig::default()).expect("mock NSM");
    let enclave = Enclave::new(nsm);
    support::unseal_first_boot(&enclave, GENESIS);
    enclave
});

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = decode_payload::<Request>(data) {
        let _ = ENCLAVE.handle(envelope.body);
    }
});
