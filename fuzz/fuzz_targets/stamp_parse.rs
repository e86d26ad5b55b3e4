//! The stamp header parser on arbitrary bytes; whatever parses must print back to a header
//! that parses to the same stamp.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom_auth::Stamp;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(stamp) = Stamp::parse(text)
    {
        assert_eq!(Stamp::parse(&stamp.to_header()).as_ref(), Ok(&stamp));
    }
});
