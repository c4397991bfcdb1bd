//! Fuzzes `tapegrad_optim::OptimizerState::from_bytes`: on any bytes it must return `Ok`
//! or `Err`, never panic or allocate without bound. A state that decodes must re-encode
//! to the same bytes, and loading it into each optimizer (for parameters shaped as its
//! entries say) and taking a step must again be `Ok` or `Err`: a hostile state file must
//! not be able to crash training on resume.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapegrad_core::Tensor;
use tapegrad_optim::{Adam, AdamW, Momentum, Optimizer, OptimizerState, RmsProp, Sgd};

/// Caps on the parameters built for a step, so one input cannot take seconds.
const MAX_PARAMS: usize = 16;
const MAX_ELEMENTS: usize = 4096;

fuzz_target!(|data: &[u8]| {
    check(data);
    // Framed (magic, version 2, dtype, CRC-32 over it all), so the fuzzer spends its time
    // in the bincode body and the validation rather than on guessing the checksum.
    let mut framed = b"TGOPTIMS".to_vec();
    framed.extend_from_slice(&2u32.to_le_bytes());
    framed.extend_from_slice(b"f32");
    framed.extend_from_slice(data);
    let crc = crc32(&framed);
    framed.extend_from_slice(&crc.to_le_bytes());
    check(&framed);
});

/// CRC-32 (IEEE), bitwise: the checksum the state format uses.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

fn check(bytes: &[u8]) {
    let Ok(state) = OptimizerState::<f32>::from_bytes(bytes) else {
        return;
    };
    let encoded = state.to_bytes().expect("a decoded state re-encodes");
    let again = OptimizerState::<f32>::from_bytes(&encoded).expect("a re-encoded state decodes");
    // Compared as bytes: a NaN hyper-parameter is not equal to itself.
    assert_eq!(
        again.to_bytes().expect("it re-encodes"),
        encoded,
        "decoding is not the inverse of encoding"
    );

    // Parameters named and shaped as the state's entries (small ones only), plus one new.
    let mut tensors: Vec<(String, Tensor<f32>)> = state
        .params
        .iter()
        .filter(|e| tapegrad_core::Shape::from(e.shape.clone()).numel() <= MAX_ELEMENTS)
        .take(MAX_PARAMS)
        .map(|e| {
            (
                e.name.clone(),
                Tensor::<f32>::full(e.shape.clone(), 0.5).expect("a small tensor"),
            )
        })
        .collect();
    tensors.push(("fresh".into(), Tensor::<f32>::full([4], 0.5).expect("a small tensor")));

    let optimizers: Vec<Box<dyn Optimizer<f32>>> = vec![
        Box::new(Sgd::pytorch_default().expect("valid preset")),
        Box::new(Momentum::pytorch_default().expect("valid preset")),
        Box::new(RmsProp::pytorch_default().expect("valid preset")),
        Box::new(Adam::pytorch_default().expect("valid preset")),
        Box::new(AdamW::keras_default().expect("valid preset")),
    ];
    for mut opt in optimizers {
        let named: Vec<(String, &Tensor<f32>)> = tensors.iter().map(|(n, t)| (n.clone(), t)).collect();
        if opt.load_state(state.clone(), &named).is_err() {
            continue;
        }
        let mut params: Vec<(String, Tensor<f32>)> = tensors.clone();
        let grads: Vec<Option<Tensor<f32>>> = params
            .iter()
            .map(|(_, t)| Some(Tensor::full(t.shape().clone(), 0.25).expect("a small tensor")))
            .collect();
        let mut named: Vec<(String, &mut Tensor<f32>)> = params.iter_mut().map(|(n, t)| (n.clone(), t)).collect();
        let _ = opt.step_with_grads(&mut named, &grads);
        let _ = opt.state().to_bytes();
    }
}
