//! Log records on arbitrary entry bytes (they come back from the parent's storage at every
//! boot): no input panics the decoder, and whatever decodes survives the trip through an
//! audit entry unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom_log::Record;
use strongroom_identity::{AuditEntry, IdentityKey};

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = Record::from_entry_bytes(data) {
        let Ok((kind, fields)) = record.to_fields() else {
            return;
        };
        let key = IdentityKey::from_seed(&[7; 32]);
        if let Ok((entry, _)) = AuditEntry::build(&key, 1, &[0; 32], 2, kind, fields) {
            let again = Record::from_entry_bytes(&entry.bytes).expect("a built record decodes");
            assert_eq!(again, record);
        }
    }
});
