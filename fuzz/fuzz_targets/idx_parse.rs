//! Fuzzes `tapegrad_train::data::idx::parse_idx`, the MNIST (IDX) reader: on any bytes it
//! must return `Ok` or `Err`, never panic, overflow in its size arithmetic, or allocate
//! more than the input. What parses must describe itself exactly (the dims' product is the
//! element count) and re-encode to the very same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapegrad_train::data::idx::{encode_idx, parse_idx};

fuzz_target!(|data: &[u8]| {
    if let Ok(array) = parse_idx(data) {
        let count: usize = array.dims.iter().product();
        assert_eq!(count, array.data.len(), "dims {:?} disagree with the data", array.dims);
        assert_eq!(
            encode_idx(&array.dims, &array.data),
            data,
            "IDX round trip changed the bytes"
        );
    }
});
