//! Fuzzes `tapegrad_train::data::idx::decode_idx`, the MNIST (IDX) stream decoder: on any
//! bytes it must return `Ok` or `Err`, never panic, overflow in its size arithmetic, or
//! allocate more than the input (the declared size is capped at the input's length, as a
//! caller who knows the expected size caps it). What parses must describe itself exactly (the dims' product is the
//! element count) and re-encode to the very same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapegrad_train::data::idx::{decode_idx, encode_idx};

fuzz_target!(|data: &[u8]| {
    if let Ok(array) = decode_idx(data, data.len()) {
        let count: usize = array.dims.iter().product();
        assert_eq!(count, array.data.len(), "dims {:?} disagree with the data", array.dims);
        assert_eq!(
            encode_idx(&array.dims, &array.data),
            data,
            "IDX round trip changed the bytes"
        );
    }
});
