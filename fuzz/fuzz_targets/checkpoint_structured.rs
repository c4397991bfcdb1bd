//! Structure-aware companion of `checkpoint_decode`: an `arbitrary`-derived state dict
//! (names, mostly the small model's; shapes, small or hostile; values NaN/±∞/−0/subnormal)
//! encoded with the library's own `checkpoint::encode` and `safetensors::encode` (with
//! metadata, a `layout` entry included), and an `arbitrary`-derived safetensors header
//! (dtypes, shapes and data offsets chosen freely, so valid JSON with hostile values),
//! decoded and loaded into a small model with `load_state_dict` and
//! `load_state_dict_with` (strict and not) and the `load_from_bytes` of both formats.
//! Every call must return `Ok` or `Err`; what the encoder wrote must decode to the same.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use tapegrad_core::Tensor;
use tapegrad_nn::safetensors::{self, Layout};
use tapegrad_nn::{checkpoint, StateDict};

#[path = "shared.rs"]
mod shared;
use shared::{load_into_model, small_model, Dim, Hostile, Name};

const MAX_ELEMENTS: usize = 1024;

#[derive(Arbitrary, Debug)]
struct Input {
    tensors: Vec<TensorDesc>,
    metadata: Vec<(String, String)>,
    layout: Option<bool>,
    header: HeaderDesc,
}

#[derive(Arbitrary, Debug)]
struct TensorDesc {
    name: Name,
    dims: Vec<Dim>,
    fill: Hostile,
    pokes: Vec<(u16, Hostile)>,
}

/// A safetensors header written by hand: the JSON is well formed, its values are not.
#[derive(Arbitrary, Debug)]
struct HeaderDesc {
    entries: Vec<HeaderEntry>,
    metadata: Option<Vec<(String, String)>>,
    /// Padding spaces after the JSON (the format allows them) and the data bytes.
    padding: u8,
    data: Vec<u8>,
    /// Declares a header length other than the JSON's when set.
    length_off: Option<i8>,
}

#[derive(Arbitrary, Debug)]
struct HeaderEntry {
    name: Name,
    dtype: u8,
    shape: Vec<u64>,
    begin: u64,
    len: LenDesc,
}

#[derive(Arbitrary, Debug)]
enum LenDesc {
    /// Exactly what the shape and dtype need.
    Exact,
    Any(u64),
}

const DTYPES: [&str; 10] = [
    "F32", "F64", "F16", "BF16", "I64", "I32", "U8", "BOOL", "F8_E4M3", "C64",
];

fn dtype_size(d: &str) -> u64 {
    match d {
        "F64" | "I64" | "C64" => 8,
        "F32" | "I32" => 4,
        "F16" | "BF16" => 2,
        _ => 1,
    }
}

fn state_dict(descs: &[TensorDesc]) -> StateDict<f32> {
    descs
        .iter()
        .take(6)
        .filter_map(|d| {
            let dims: Vec<usize> = d.dims.iter().take(4).map(|x| x.value()).collect();
            let n = dims.iter().try_fold(1usize, |a, &x| a.checked_mul(x))?;
            if n > MAX_ELEMENTS {
                return None;
            }
            let mut v = vec![d.fill.value() as f32; n];
            for &(i, x) in d.pokes.iter().take(4) {
                if let Some(slot) = v.get_mut(usize::from(i)) {
                    *slot = x.value() as f32;
                }
            }
            Some((d.name.value(), Tensor::from_vec(v, dims).ok()?))
        })
        .collect()
}

fn header_bytes(h: &HeaderDesc) -> Vec<u8> {
    let mut json = serde_json::Map::new();
    if let Some(meta) = &h.metadata {
        let m: serde_json::Map<String, serde_json::Value> = meta
            .iter()
            .take(4)
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        json.insert("__metadata__".into(), m.into());
    }
    for e in h.entries.iter().take(6) {
        let dtype = DTYPES[usize::from(e.dtype) % DTYPES.len()];
        let shape: Vec<u64> = e.shape.iter().take(4).copied().collect();
        let need = shape.iter().fold(dtype_size(dtype), |a, &d| a.wrapping_mul(d));
        let len = match e.len {
            LenDesc::Exact => need,
            LenDesc::Any(n) => n,
        };
        let entry = serde_json::json!({
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [e.begin, e.begin.wrapping_add(len)],
        });
        json.insert(e.name.value(), entry);
    }
    let mut text = serde_json::to_vec(&serde_json::Value::Object(json)).expect("JSON encodes");
    text.extend(std::iter::repeat_n(b' ', usize::from(h.padding % 8)));
    let declared = (text.len() as u64).wrapping_add_signed(h.length_off.map_or(0, i64::from));
    let mut out = declared.to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&h.data);
    out
}

fuzz_target!(|input: Input| {
    let state = state_dict(&input.tensors);
    load_into_model(&state);

    // Checkpoint: encode, decode, compare, load.
    if let Ok(bytes) = checkpoint::encode(&state) {
        let back = checkpoint::decode::<f32>(&bytes).expect("an encoded checkpoint decodes");
        assert_same(&state, &back);
        let mut model = small_model();
        let _ = checkpoint::load_from_bytes(&mut model, &bytes);
    }

    // Safetensors with metadata (and maybe a layout entry).
    let mut metadata: BTreeMap<String, String> = input.metadata.iter().take(4).cloned().collect();
    if let Some(torch) = input.layout {
        let layout = if torch { Layout::PyTorch } else { Layout::Keras };
        metadata.insert("layout".into(), layout.name().into());
    }
    if let Ok(bytes) = safetensors::encode(&state, &metadata) {
        let file = safetensors::decode::<f32>(&bytes).expect("encoded safetensors decode");
        assert_eq!(file.metadata, metadata, "safetensors round trip changed the metadata");
        // The format stores tensors by name (a JSON object), so they come back sorted.
        let mut sorted = state.clone();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        assert_same(&sorted, &file.into_state_dict());
        load_safetensors(&bytes);
    }

    // A hand-written header with hostile values.
    let bytes = header_bytes(&input.header);
    if let Ok(file) = safetensors::decode::<f32>(&bytes) {
        let _ = file.layout();
        load_into_model(&file.into_state_dict());
    }
    let _ = safetensors::decode::<f64>(&bytes);
    load_safetensors(&bytes);
});

fn load_safetensors(bytes: &[u8]) {
    for layout in [Layout::PyTorch, Layout::Keras] {
        for strict in [true, false] {
            let mut model = small_model();
            let _ = safetensors::load_from_bytes(&mut model, bytes, layout, strict);
        }
    }
}

/// Same names, shapes and values; NaN equal to NaN.
fn assert_same(a: &StateDict<f32>, b: &StateDict<f32>) {
    assert_eq!(a.len(), b.len(), "round trip changed the number of tensors");
    for ((na, ta), (nb, tb)) in a.iter().zip(b) {
        assert_eq!(na, nb, "round trip changed a name");
        assert_eq!(ta.dims(), tb.dims(), "round trip changed the shape of '{na}'");
        let same = ta
            .data()
            .iter()
            .zip(tb.data())
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()));
        assert!(same, "round trip changed the values of '{na}'");
    }
}
