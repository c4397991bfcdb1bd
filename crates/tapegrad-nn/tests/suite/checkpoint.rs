//! Checkpoints: bit-exact round trips, strict loading, and every corruption an error.

use rand::rngs::StdRng;
use rand::SeedableRng;
use tapegrad_core::{Element, Tensor};
use tapegrad_nn::{checkpoint, Activation, Dense, Dropout, Module, Sequential};

fn model<T: Element>(seed: u64, hidden: usize) -> Sequential<T> {
    let mut rng = StdRng::seed_from_u64(seed);
    Sequential::new()
        .add(
            Dense::new(3, hidden, &mut rng)
                .unwrap()
                .with_activation(Activation::Relu),
        )
        .add(Dropout::new(0.1, 0).unwrap())
        .add(Dense::linear(hidden, 2, &mut rng).unwrap())
}

fn bits<T: Element>(m: &Sequential<T>) -> Vec<(String, Vec<u64>)> {
    m.parameters()
        .into_iter()
        .map(|(n, p)| (n, p.data().iter().map(|v| v.as_f64().to_bits()).collect()))
        .collect()
}

/// Independent bitwise CRC-32 (IEEE), for crafting files with a valid checksum.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
        }
    }
    !c
}

fn reseal(mut content: Vec<u8>) -> Vec<u8> {
    let crc = crc32(&content);
    content.extend_from_slice(&crc.to_le_bytes());
    content
}

fn round_trip<T: Element>() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.tgc");
    let mut a = model::<T>(1, 4);
    // Values that must survive bit-exactly: subnormals, signed zero, extremes.
    a.parameters_mut()[1].1.data_mut()[..3].copy_from_slice(&[
        T::min_positive_value() / T::from_f64_lossy(8.0),
        -T::zero(),
        T::max_value(),
    ]);
    checkpoint::save(&a, &path).unwrap();
    let mut b = model::<T>(2, 4);
    assert_ne!(bits(&a), bits(&b));
    checkpoint::load(&mut b, &path).unwrap();
    assert_eq!(bits(&a), bits(&b));
    assert!(
        b.parameters().iter().all(|(_, p)| p.is_leaf()),
        "loaded params stay trainable"
    );
    // In memory too, and deterministic.
    let bytes = checkpoint::to_bytes(&a).unwrap();
    assert_eq!(bytes, std::fs::read(&path).unwrap());
    assert_eq!(&bytes[..8], b"TAPEGRAD");
    assert_eq!(
        u32::from_le_bytes(bytes[8..12].try_into().unwrap()),
        checkpoint::FORMAT_VERSION
    );
    let mut c = model::<T>(3, 4);
    checkpoint::load_from_bytes(&mut c, &bytes).unwrap();
    assert_eq!(bits(&a), bits(&c));
    // The only file left in the directory is the checkpoint (no temporary).
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, ["model.tgc"]);
}

#[test]
fn save_load_is_bit_exact_f32() {
    round_trip::<f32>();
}

#[test]
fn save_load_is_bit_exact_f64() {
    round_trip::<f64>();
}

#[test]
fn state_dicts_round_trip_in_memory() {
    let state = vec![
        (
            "m.0".to_string(),
            Tensor::<f64>::from_vec(vec![1.5, -2.0], [2]).unwrap(),
        ),
        ("step".to_string(), Tensor::scalar(7.0)),
        ("empty".to_string(), Tensor::zeros([0, 3]).unwrap()),
    ];
    let back = checkpoint::decode::<f64>(&checkpoint::encode(&state).unwrap()).unwrap();
    assert_eq!(back.len(), 3);
    for ((n, t), (m, u)) in state.iter().zip(&back) {
        assert_eq!((n, t.dims(), t.to_vec()), (m, u.dims(), u.to_vec()));
    }
    let dup = vec![state[0].clone(), state[0].clone()];
    assert!(checkpoint::encode(&dup).unwrap_err().to_string().contains("twice"));
}

#[test]
fn overwriting_replaces_the_previous_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt");
    let a = model::<f32>(1, 4);
    let b = model::<f32>(2, 4);
    checkpoint::save(&a, &path).unwrap();
    checkpoint::save(&b, &path).unwrap();
    let mut c = model::<f32>(3, 4);
    checkpoint::load(&mut c, &path).unwrap();
    assert_eq!(bits(&b), bits(&c));
    // A save that cannot happen is an error and leaves the old file alone.
    let bad = dir.path().join("missing-dir").join("ckpt");
    assert!(matches!(checkpoint::save(&a, &bad), Err(tapegrad_core::Error::Io(_))));
    checkpoint::load(&mut c, &path).unwrap();
    let err = checkpoint::load(&mut c, dir.path().join("nope"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn architecture_mismatch_names_the_parameter_and_both_shapes() {
    let bytes = checkpoint::to_bytes(&model::<f32>(1, 4)).unwrap();
    let mut wider = model::<f32>(1, 5);
    let before = bits(&wider);
    let err = checkpoint::load_from_bytes(&mut wider, &bytes).unwrap_err().to_string();
    assert!(
        err.contains("'0.weight'") && err.contains("[3, 4]") && err.contains("[3, 5]"),
        "{err}"
    );
    assert_eq!(bits(&wider), before, "a failed load modifies nothing");
    let mut rng = StdRng::seed_from_u64(0);
    let mut deeper = model::<f32>(1, 4).add(Dense::new(2, 2, &mut rng).unwrap());
    let err = checkpoint::load_from_bytes(&mut deeper, &bytes)
        .unwrap_err()
        .to_string();
    assert!(err.contains("'3.weight'") && err.contains("missing"), "{err}");
    let mut shallower = Sequential::<f32>::new().add(Dense::new(3, 4, &mut rng).unwrap());
    let err = checkpoint::load_from_bytes(&mut shallower, &bytes)
        .unwrap_err()
        .to_string();
    assert!(err.contains("'2.weight'"), "{err}");
    let mut no_bias = Sequential::<f32>::new()
        .add(Dense::new(3, 4, &mut rng).unwrap().without_bias())
        .add(Dropout::new(0.1, 0).unwrap())
        .add(Dense::new(4, 2, &mut rng).unwrap());
    let err = checkpoint::load_from_bytes(&mut no_bias, &bytes)
        .unwrap_err()
        .to_string();
    assert!(err.contains("'0.bias'"), "{err}");
}

#[test]
fn dtype_mismatch_names_both_dtypes() {
    let bytes = checkpoint::to_bytes(&model::<f64>(1, 4)).unwrap();
    let err = checkpoint::load_from_bytes(&mut model::<f32>(1, 4), &bytes)
        .unwrap_err()
        .to_string();
    assert!(err.contains("f64") && err.contains("f32"), "{err}");
    let bytes = checkpoint::to_bytes(&model::<f32>(1, 4)).unwrap();
    assert!(checkpoint::decode::<f64>(&bytes).is_err());
}

#[test]
fn every_truncation_is_an_error() {
    for bytes in [
        checkpoint::to_bytes(&model::<f32>(1, 4)).unwrap(),
        checkpoint::to_bytes(&model::<f64>(1, 3)).unwrap(),
    ] {
        for len in 0..bytes.len() {
            assert!(checkpoint::decode::<f32>(&bytes[..len]).is_err(), "length {len}");
            assert!(checkpoint::decode::<f64>(&bytes[..len]).is_err(), "length {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(checkpoint::decode::<f32>(&longer).is_err());
    }
}

#[test]
fn every_byte_flip_is_an_error() {
    let bytes = checkpoint::to_bytes(&model::<f32>(1, 4)).unwrap();
    let mut m = model::<f32>(9, 4);
    let before = bits(&m);
    for pos in 0..bytes.len() {
        for mask in [0x01u8, 0x80, 0xFF, 0x5A] {
            let mut bad = bytes.clone();
            bad[pos] ^= mask;
            assert!(
                checkpoint::load_from_bytes(&mut m, &bad).is_err(),
                "flip {mask:#x} at {pos}"
            );
        }
    }
    assert_eq!(bits(&m), before);
}

#[test]
fn wrong_magic_and_wrong_version_are_named() {
    let bytes = checkpoint::to_bytes(&model::<f32>(1, 4)).unwrap();
    let mut bad = bytes.clone();
    bad[..8].copy_from_slice(b"PYTORCH!");
    let err = checkpoint::decode::<f32>(&bad).unwrap_err().to_string();
    assert!(err.contains("not a tapegrad checkpoint"), "{err}");
    let mut bad = bytes[..bytes.len() - 4].to_vec();
    bad[8..12].copy_from_slice(&2u32.to_le_bytes());
    let err = checkpoint::decode::<f32>(&reseal(bad)).unwrap_err().to_string();
    assert!(err.contains("version 2"), "{err}");
    assert!(checkpoint::decode::<f32>(b"").is_err());
    assert!(checkpoint::decode::<f32>(b"TAPEGRAD").is_err());
}

/// Files with a valid checksum but hostile contents: the decoder must refuse them without
/// allocating what their length prefixes claim (the test would abort on OOM otherwise).
#[test]
fn hostile_length_prefixes_are_refused_without_allocating() {
    let header = |body: &[u8]| {
        let mut v = b"TAPEGRAD".to_vec();
        v.extend_from_slice(&1u32.to_le_bytes());
        v.extend_from_slice(body);
        reseal(v)
    };
    let dtype = |s: &str| {
        let mut v = (s.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v
    };
    // A dtype string claiming 2⁶⁰ bytes.
    let mut body = (1u64 << 60).to_le_bytes().to_vec();
    body.extend_from_slice(b"f32");
    assert!(checkpoint::decode::<f32>(&header(&body)).is_err());
    // An entry count of u64::MAX.
    let mut body = dtype("f32");
    body.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(checkpoint::decode::<f32>(&header(&body)).is_err());
    // One entry whose name claims 2⁶² bytes.
    let mut body = dtype("f32");
    body.extend_from_slice(&1u64.to_le_bytes());
    body.extend_from_slice(&(1u64 << 62).to_le_bytes());
    body.extend_from_slice(b"w");
    assert!(checkpoint::decode::<f32>(&header(&body)).is_err());
    // One entry with a data length of 2⁶¹ floats.
    let mut body = dtype("f32");
    body.extend_from_slice(&1u64.to_le_bytes());
    body.extend(dtype("w"));
    body.extend_from_slice(&1u64.to_le_bytes());
    body.extend_from_slice(&4u64.to_le_bytes());
    body.extend_from_slice(&(1u64 << 61).to_le_bytes());
    body.extend_from_slice(&[0; 16]);
    assert!(checkpoint::decode::<f32>(&header(&body)).is_err());
    // A shape whose product overflows, with 4 values; and one that does not match.
    for shape in [[1u64 << 40, 1 << 40], [2, 3]] {
        let mut body = dtype("f32");
        body.extend_from_slice(&1u64.to_le_bytes());
        body.extend(dtype("w"));
        body.extend_from_slice(&2u64.to_le_bytes());
        body.extend_from_slice(&shape[0].to_le_bytes());
        body.extend_from_slice(&shape[1].to_le_bytes());
        body.extend_from_slice(&4u64.to_le_bytes());
        body.extend_from_slice(&[0; 16]);
        let err = checkpoint::decode::<f32>(&header(&body)).unwrap_err().to_string();
        assert!(err.contains("'w'") && err.contains("4 values"), "{err}");
        // The same file with a matching shape [2, 2] decodes: the crafted layout is right.
        let mut ok = dtype("f32");
        ok.extend_from_slice(&1u64.to_le_bytes());
        ok.extend(dtype("w"));
        ok.extend_from_slice(&2u64.to_le_bytes());
        ok.extend_from_slice(&2u64.to_le_bytes());
        ok.extend_from_slice(&2u64.to_le_bytes());
        ok.extend_from_slice(&4u64.to_le_bytes());
        ok.extend_from_slice(&[0; 16]);
        assert_eq!(checkpoint::decode::<f32>(&header(&ok)).unwrap()[0].1.dims(), &[2, 2]);
    }
    // An unknown dtype.
    assert!(checkpoint::decode::<f32>(&header(&dtype("f16"))).is_err());
}
