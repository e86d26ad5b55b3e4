//! Policy documents, proposal bodies and genesis documents on arbitrary bytes (all reach
//! the enclave from the parent or a proposer before any quorum has looked at them): no
//! input panics the parsers, and an accepted policy's canonical form parses back to the
//! same digest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom_enclave::governance::{Genesis, ProposalBody};
use strongroom_policy::Policy;

fuzz_target!(|data: &[u8]| {
    if let Ok(policy) = Policy::from_json(data) {
        let again = Policy::from_json(&policy.to_canonical_json()).expect("canonical form parses");
        assert_eq!(again.digest(), policy.digest());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Policy::from_toml(text);
    }
    let _ = ProposalBody::parse(data);
    let _ = Genesis::from_json(data);
});
