//! The layout check that runs before AWS's EIF reader: on any bytes it returns an error or
//! a layout whose sections all lie inside the file, in order, without panicking or
//! allocating by a size the file does not hold.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use strongroom_eif::{SECTION_HEADER_SIZE, check_layout};

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    if let Ok(layout) = check_layout(&mut Cursor::new(data), len) {
        let mut end = 0;
        for s in &layout.sections {
            assert!(s.offset >= end, "sections overlap");
            end = s.offset + SECTION_HEADER_SIZE + s.size;
            assert!(end <= len, "a section runs past the end of the file");
        }
    }
});
