//! Fuzzes `tapegrad_optim::OptimizerState::from_bytes`: on any bytes it must return `Ok`
//! or `Err`, never panic or allocate without bound. A state that decodes must re-encode
//! to the same bytes, and loading it into each optimizer and taking a step must again be
//! `Ok` or `Err`: a hostile state file must not be able to crash training on resume.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapegrad_optim::{Adam, Momentum, Optimizer, OptimizerState, RmsProp, Sgd};

/// `OptimizerState::to_bytes`'s header (private in the crate; fixed by the format).
const MAGIC: &[u8; 8] = b"TGOPTIM1";

/// Caps on the parameters built for a step, so one input cannot take seconds.
const MAX_PARAMS: usize = 16;
const MAX_ELEMENTS: usize = 4096;

fuzz_target!(|data: &[u8]| {
    check(data);
    // With the header in front, so the fuzzer spends its time in the bincode body rather
    // than on guessing the 8-byte magic.
    let mut framed = MAGIC.to_vec();
    framed.extend_from_slice(data);
    check(&framed);
});

fn check(bytes: &[u8]) {
    let Ok(state) = OptimizerState::<f32>::from_bytes(bytes) else {
        return;
    };
    let encoded = state.to_bytes().expect("a decoded state re-encodes");
    let again = OptimizerState::<f32>::from_bytes(&encoded).expect("a re-encoded state decodes");
    assert_eq!(
        again.to_bytes().expect("a decoded state re-encodes"),
        encoded,
        "re-encoding is not stable"
    );

    let optimizers: Vec<Box<dyn Optimizer<f32>>> = vec![
        Box::new(Sgd::new(0.01).expect("valid lr")),
        Box::new(Momentum::pytorch(0.01, 0.9).expect("valid config")),
        Box::new(RmsProp::pytorch(0.01).expect("valid lr")),
        Box::new(Adam::pytorch(1e-3).expect("valid lr")),
    ];
    for mut opt in optimizers {
        if opt.load_state(state.clone()).is_err() {
            continue;
        }
        // Parameters shaped like the state's buffers where it has them (a mismatch must be
        // an error, and a match must step), four elements where it does not.
        let positions = state.param_steps.len().clamp(1, MAX_PARAMS);
        let mut params: Vec<Vec<f32>> = (0..positions)
            .map(|i| {
                let len = state.buffers.first().and_then(|b| b.per_param.get(i)).map_or(4, |p| {
                    if p.is_empty() {
                        4
                    } else {
                        p.len()
                    }
                });
                vec![0.5; len.min(MAX_ELEMENTS)]
            })
            .collect();
        let grads: Vec<Vec<f32>> = params.iter().map(|p| vec![0.25; p.len()]).collect();
        let mut updates: Vec<(&mut [f32], Option<&[f32]>)> = params
            .iter_mut()
            .zip(&grads)
            .map(|(p, g)| (p.as_mut_slice(), Some(g.as_slice())))
            .collect();
        let _ = opt.step_slices(&mut updates);
        let _ = opt.state().to_bytes();
    }
}
