//! Fuzzes the two model-file decoders, `tapegrad_nn::checkpoint::decode` and
//! `tapegrad_nn::safetensors::decode`: on any bytes they must return `Ok` or `Err`, never
//! panic, overflow, or allocate without bound. Whatever decodes must also survive a round
//! trip: encoding it and decoding again gives the same names, shapes and values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapegrad_core::Element;
use tapegrad_nn::{checkpoint, safetensors, StateDict};

fuzz_target!(|data: &[u8]| {
    // The raw bytes, as a file read from disk would give them.
    checkpoint_roundtrip::<f32>(data);
    checkpoint_roundtrip::<f64>(data);
    safetensors_roundtrip::<f32>(data);
    safetensors_roundtrip::<f64>(data);

    // The same bytes inside a valid header and CRC-32. A random input essentially never has
    // a matching checksum, so without this the fuzzer would only ever exercise the header
    // checks; framed, it explores the bincode body (dtype string, entries, shapes).
    let framed = frame(data);
    checkpoint_roundtrip::<f32>(&framed);
    checkpoint_roundtrip::<f64>(&framed);
});

fn checkpoint_roundtrip<T: Element>(bytes: &[u8]) {
    if let Ok(state) = checkpoint::decode::<T>(bytes) {
        let again = checkpoint::encode(&state).expect("a decoded checkpoint re-encodes");
        let back = checkpoint::decode::<T>(&again).expect("a re-encoded checkpoint decodes");
        assert_same(&state, &back);
    }
}

fn safetensors_roundtrip<T: Element>(bytes: &[u8]) {
    if let Ok(file) = safetensors::decode::<T>(bytes) {
        let _ = file.layout();
        let metadata = file.metadata.clone();
        let state = file.into_state_dict();
        let again = safetensors::encode(&state, &metadata).expect("decoded safetensors re-encode");
        let back = safetensors::decode::<T>(&again).expect("re-encoded safetensors decode");
        assert_eq!(back.metadata, metadata, "round trip changed the metadata");
        assert_same(&state, &back.into_state_dict());
    }
}

/// Equal names, shapes and values (NaN equal to NaN: the formats store bits, and a NaN's
/// payload is not something a checkpoint promises to keep).
fn assert_same<T: Element>(a: &StateDict<T>, b: &StateDict<T>) {
    assert_eq!(a.len(), b.len(), "round trip changed the number of tensors");
    for ((na, ta), (nb, tb)) in a.iter().zip(b) {
        assert_eq!(na, nb, "round trip changed a name");
        assert_eq!(ta.dims(), tb.dims(), "round trip changed the shape of '{na}'");
        let same = ta.data().iter().zip(tb.data()).all(|(x, y)| {
            let (x, y) = (x.as_f64(), y.as_f64());
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
        });
        assert!(same, "round trip changed the values of '{na}'");
    }
}

/// `TAPEGRAD`, the format version, `body`, then the CRC-32 of all of it: a checkpoint
/// whose only possible faults are in the body.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 16);
    out.extend_from_slice(checkpoint::MAGIC);
    out.extend_from_slice(&checkpoint::FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(body);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// CRC-32 (IEEE 802.3, reflected; zlib's), bit by bit: the checkpoint's own is private.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                0xEDB8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
