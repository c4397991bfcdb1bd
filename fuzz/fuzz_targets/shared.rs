//! Pieces the fuzz targets share (each target includes this file with `#[path]`; not every
//! target uses every piece): hostile floats for `arbitrary`-derived descriptions, the
//! checkpoint frame, and the small model a decoded state dict is loaded into.
#![allow(dead_code)]

use arbitrary::Arbitrary;
use tapegrad_core::Tensor;
use tapegrad_nn::{Dense, Module, ReLU, Sequential};

/// A float the fuzzer reaches with one byte of choice: the IEEE values that break
/// arithmetic (NaN, ±∞, −0, subnormals, the extremes) besides any other bit pattern.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Hostile {
    Any(f64),
    Small(i8),
    Nan,
    Inf,
    NegInf,
    NegZero,
    Subnormal,
    Max,
    Min,
    Epsilon,
}

impl Hostile {
    pub fn value(self) -> f64 {
        match self {
            Hostile::Any(v) => v,
            Hostile::Small(i) => f64::from(i) / 4.0,
            Hostile::Nan => f64::NAN,
            Hostile::Inf => f64::INFINITY,
            Hostile::NegInf => f64::NEG_INFINITY,
            Hostile::NegZero => -0.0,
            Hostile::Subnormal => f64::from(f32::from_bits(1)),
            Hostile::Max => f64::MAX,
            Hostile::Min => f64::MIN,
            Hostile::Epsilon => f64::EPSILON,
        }
    }
}

/// A `u64` counter reached the same way: 0, 1, the largest values, or any other.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Counter {
    Any(u64),
    Small(u8),
    Zero,
    Max,
    MaxMinusOne,
    I64Max,
}

impl Counter {
    pub fn value(self) -> u64 {
        match self {
            Counter::Any(v) => v,
            Counter::Small(v) => u64::from(v),
            Counter::Zero => 0,
            Counter::Max => u64::MAX,
            Counter::MaxMinusOne => u64::MAX - 1,
            Counter::I64Max => i64::MAX as u64,
        }
    }
}

/// A dimension: mostly small (so tensors get built), sometimes huge.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Dim {
    Small(u8),
    Any(u64),
    UsizeMax,
    TwoPow40,
}

impl Dim {
    pub fn value(self) -> usize {
        match self {
            Dim::Small(v) => usize::from(v % 6),
            Dim::Any(v) => v as usize,
            Dim::UsizeMax => usize::MAX,
            Dim::TwoPow40 => 1 << 40,
        }
    }
}

/// A name: one of the small model's parameter names (so loads can succeed), or any string.
#[derive(Arbitrary, Clone, Debug)]
pub enum Name {
    Known(u8),
    Any(String),
}

/// The small model's parameter names, in its order.
pub const MODEL_PARAMS: [&str; 4] = ["0.weight", "0.bias", "2.weight", "2.bias"];

impl Name {
    pub fn value(&self) -> String {
        match self {
            Name::Known(i) => MODEL_PARAMS[usize::from(*i) % MODEL_PARAMS.len()].to_string(),
            Name::Any(s) => s.clone(),
        }
    }
}

/// The model a decoded state dict is loaded into: `Dense(3 → 2)`, `ReLU`, `Dense(2 → 1)`,
/// whose parameters are `0.weight [3, 2]`, `0.bias [2]`, `2.weight [2, 1]`, `2.bias [1]`.
pub fn small_model() -> Sequential<f32> {
    let dense = |i: usize, o: usize| {
        let w = Tensor::from_vec((0..i * o).map(|k| k as f32 / 8.0).collect(), [i, o]).expect("small weight");
        let b = Tensor::zeros([o]).expect("small bias");
        Dense::from_weights(w, Some(b)).expect("valid dense layer")
    };
    Sequential::new().add(dense(3, 2)).add(ReLU).add(dense(2, 1))
}

/// Loads `state` into fresh small models with `load_state_dict` and, strict and not,
/// `load_state_dict_with`. A successful load must leave every parameter with its shape, and
/// the model must still run forward on a `[2, 3]` input (giving `[2, 1]`).
pub fn load_into_model(state: &[(String, Tensor<f32>)]) {
    let mut model = small_model();
    if model.load_state_dict(state).is_ok() {
        check_model(&mut model);
    }
    for strict in [true, false] {
        let mut model = small_model();
        if let Ok(report) = model.load_state_dict_with(state, strict) {
            assert!(!strict || report.is_complete(), "a strict load reported {report:?}");
            check_model(&mut model);
        }
    }
}

fn check_model(model: &mut Sequential<f32>) {
    let shapes: Vec<Vec<usize>> = model.state_dict().iter().map(|(_, t)| t.dims().to_vec()).collect();
    assert_eq!(
        shapes,
        [vec![3, 2], vec![2], vec![2, 1], vec![1]],
        "a load changed a parameter's shape"
    );
    let x = Tensor::<f32>::from_vec(vec![0.5, -1.0, 2.0, 0.0, 1.0, -0.5], [2, 3]).expect("input");
    let y = model.forward(&x).expect("a loaded model runs forward");
    assert_eq!(y.dims(), [2, 1]);
}

/// CRC-32 (IEEE 802.3, reflected; zlib's), bit by bit: the checksum both the checkpoint
/// and the optimizer-state formats end with (theirs are private).
pub fn crc32(bytes: &[u8]) -> u32 {
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

/// `TAPEGRAD`, the format version, `body`, then the CRC-32 of all of it: a checkpoint
/// whose only possible faults are in the body.
pub fn checkpoint_frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 16);
    out.extend_from_slice(tapegrad_nn::checkpoint::MAGIC);
    out.extend_from_slice(&tapegrad_nn::checkpoint::FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(body);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}
