//! Fuzzes the IDX reader through gzip, as `read_idx` and `Mnist::load` run it on a `.gz`
//! file: `decode_idx` over a `flate2` `GzDecoder`. The input is tried (1) as the `.gz`
//! file's bytes themselves, so corrupt, truncated and bomb-like streams reach the decoder,
//! and (2) as an IDX file that is gzip-compressed first, so the decoder's checks run
//! behind a valid gzip stream. Every call must return `Ok` or `Err`, never panic or
//! allocate more than the cap; what parses must describe itself and, in (2), re-encode
//! to the uncompressed input.
#![no_main]

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use libfuzzer_sys::fuzz_target;
use std::io::Write;
use tapegrad_train::data::idx::{decode_idx, encode_idx};

/// The element cap, as a caller who knows the expected size passes one (MNIST's loader
/// passes 60,000 × 28 × 28); small here so a bomb's declared size is refused quickly.
const CAP: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    if let Ok(array) = decode_idx(GzDecoder::new(data), CAP) {
        check(&array.dims, &array.data);
    }
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(data).expect("compressing into memory");
    let compressed = gz.finish().expect("compressing into memory");
    let plain = decode_idx(data, CAP);
    let through_gzip = decode_idx(GzDecoder::new(&compressed[..]), CAP);
    assert_eq!(plain, through_gzip, "gzip changed what the IDX decoder reads");
    if let Ok(array) = through_gzip {
        check(&array.dims, &array.data);
        assert_eq!(
            encode_idx(&array.dims, &array.data),
            data,
            "IDX round trip changed the bytes"
        );
    }
});

fn check(dims: &[usize], data: &[u8]) {
    let count: usize = dims.iter().product();
    assert_eq!(count, data.len(), "dims {dims:?} disagree with the data");
    assert!(count <= CAP, "dims {dims:?} passed the cap of {CAP}");
}
