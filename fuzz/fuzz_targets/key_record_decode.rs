//! A key record's plaintext on arbitrary bytes (a key blob is sealed, so only an enclave of
//! this deployment's writes reach the decoder, but the root key may be one the parent
//! chose): no input panics it, and what decodes encodes to exactly the bytes it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom_enclave::keys::KeyRecord;

fuzz_target!(|data: &[u8]| {
    let (id, plaintext) = data.split_at(data.len().min(16));
    let mut key_id = [0u8; 16];
    key_id[..id.len()].copy_from_slice(id);
    if let Ok(record) = KeyRecord::from_plaintext(key_id, plaintext) {
        assert_eq!(record.id, key_id);
        assert_eq!(&record.to_plaintext()[..], plaintext, "not canonical");
        assert_eq!(record.public_key().len(), 65);
    }
});
