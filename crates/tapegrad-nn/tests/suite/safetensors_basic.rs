//! Safetensors export/import: round trip, header layout, errors.

use tapegrad_core::{Element, Tensor};
use tapegrad_nn::safetensors::{self, Layout};
use tapegrad_nn::{Activation, Dense, Module, SeedableRng, Sequential, StdRng};

fn model<T: Element>(seed: u64, hidden: usize) -> Sequential<T> {
    let mut rng = StdRng::seed_from_u64(seed);
    Sequential::new()
        .add(
            Dense::new(3, hidden, &mut rng)
                .unwrap()
                .with_activation(Activation::Tanh),
        )
        .add(Dense::new(hidden, 2, &mut rng).unwrap())
}

fn bits<T: Element>(m: &Sequential<T>) -> Vec<(String, Vec<u64>)> {
    m.parameters()
        .into_iter()
        .map(|(n, p)| (n, p.data().iter().map(|v| v.as_f64().to_bits()).collect()))
        .collect()
}

fn round_trip<T: Element>() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let a = model::<T>(1, 4);
    for layout in [Layout::PyTorch, Layout::Keras] {
        safetensors::save(&a, &path, layout).unwrap();
        let mut b = model::<T>(2, 4);
        safetensors::load(&mut b, &path, layout, true).unwrap();
        assert_eq!(bits(&a), bits(&b));
        let mut c = model::<T>(3, 4);
        safetensors::load_from_bytes(&mut c, &safetensors::to_bytes(&a, layout).unwrap(), layout, true).unwrap();
        assert_eq!(bits(&a), bits(&c));
    }
}

#[test]
fn round_trip_is_bit_exact() {
    round_trip::<f32>();
    round_trip::<f64>();
}

#[test]
fn header_layout_follows_the_spec() {
    let a = model::<f32>(1, 4);
    let bytes = safetensors::to_bytes(&a, Layout::Keras).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(n % 8, 0, "header padded to 8 bytes");
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let obj = header.as_object().unwrap();
    let mut names: Vec<&String> = obj.keys().collect();
    names.sort();
    assert_eq!(names, ["0.bias", "0.weight", "1.bias", "1.weight", "__metadata__"]);
    assert_eq!(obj["__metadata__"]["layout"], "keras");
    let mut spans = vec![];
    for (name, p) in a.parameters() {
        let info = &obj[&name];
        assert_eq!(info["dtype"], "F32");
        let shape: Vec<usize> = info["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(shape, p.dims());
        let offs = info["data_offsets"].as_array().unwrap();
        let (begin, end) = (offs[0].as_u64().unwrap() as usize, offs[1].as_u64().unwrap() as usize);
        assert_eq!(end - begin, p.numel() * 4);
        let want: Vec<u8> = p.data().iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(&data[begin..end], &want[..], "{name}");
        spans.push((begin, end));
    }
    spans.sort();
    assert_eq!(spans[0].0, 0);
    assert!(spans.windows(2).all(|w| w[0].1 == w[1].0), "contiguous");
    assert_eq!(spans.last().unwrap().1, data.len());
    // f64 tensors are tagged F64.
    let bytes = safetensors::to_bytes(&model::<f64>(1, 4), Layout::Keras).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    assert_eq!(header["0.weight"]["dtype"], "F64");
}

#[test]
fn reads_a_hand_written_file() {
    let json = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let mut file = (json.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(json);
    file.extend(1.5f32.to_le_bytes());
    file.extend((-2.0f32).to_le_bytes());
    let state = safetensors::decode::<f32>(&file).unwrap().into_state_dict();
    assert_eq!(state[0].0, "w");
    assert_eq!(state[0].1.to_vec(), vec![1.5, -2.0]);
    // F32 into f64 is a conversion, exact here.
    let state = safetensors::decode::<f64>(&file).unwrap();
    assert_eq!(state.tensors[0].dtype, "F32");
    assert!(state.metadata.is_empty());
    assert_eq!(state.tensors[0].values.as_ref().unwrap().to_vec(), vec![1.5, -2.0]);
}

#[test]
fn mismatches_and_corruption_are_errors() {
    let bytes = safetensors::to_bytes(&model::<f32>(1, 4), Layout::Keras).unwrap();
    let err = safetensors::load_from_bytes(&mut model::<f32>(1, 5), &bytes, Layout::Keras, true)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'0.weight'") && err.contains("[3, 4]") && err.contains("[3, 5]"),
        "{err}"
    );
    for len in 0..bytes.len() {
        assert!(safetensors::decode::<f32>(&bytes[..len]).is_err(), "length {len}");
    }
    // A hostile header length.
    let mut bad = bytes.clone();
    bad[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(safetensors::decode::<f32>(&bad).is_err());
    // Flips never panic (a flip inside the raw data is a valid file with another value).
    for pos in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[pos] ^= 0xFF;
        let _ = safetensors::decode::<f32>(&bad);
    }
    let state = vec![
        ("a".to_string(), Tensor::<f32>::ones([1]).unwrap()),
        ("a".to_string(), Tensor::ones([1]).unwrap()),
    ];
    assert!(safetensors::encode(&state, &Default::default()).is_err());
}

#[test]
fn data_offsets_near_u64_max_are_refused_not_overflowed() {
    // Found by the `checkpoint_structured` fuzz target: the safetensors crate adds the
    // last data offset to the header size unchecked; an offset of 2⁶⁴ − 1 overflowed
    // (a panic under overflow checks) instead of being refused.
    for end in [u64::MAX, u64::MAX - 8, 1 << 40, 1] {
        let json = format!(r#"{{"w":{{"dtype":"U8","shape":[{end}],"data_offsets":[0,{end}]}}}}"#);
        let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(json.as_bytes());
        let e = safetensors::decode::<f32>(&bytes).unwrap_err().to_string();
        assert!(e.contains(&format!("data offset {end}")) && e.contains("'w'"), "{e}");
        let mut layer = Dense::<f32>::new(3, 2, &mut StdRng::seed_from_u64(0)).unwrap();
        assert!(safetensors::load_from_bytes(&mut layer, &bytes, Layout::Keras, false).is_err());
    }
}

#[test]
fn a_tensor_named_like_the_metadata_key_is_refused_when_written() {
    // Found by the `checkpoint_structured` fuzz target: encode wrote a tensor under the
    // key `__metadata__`, giving a file that decode then refused.
    let t = Tensor::<f32>::from_vec(vec![1.0], [1]).unwrap();
    let e = safetensors::encode(&[("__metadata__".to_string(), t)], &Default::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("'__metadata__'"), "{e}");
}
