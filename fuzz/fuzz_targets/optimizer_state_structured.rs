//! Structure-aware companion of `optimizer_state`: an `arbitrary`-derived description of an
//! optimizer state (kind, hyper-parameters, buffer names and the per-parameter entries,
//! each starting from a real optimizer's template and then bent: counters up to
//! `u64::MAX`, hyper-parameters NaN/±∞/negative/huge, buffers of the wrong length or with
//! non-finite values, shapes of 2⁴⁰ or `usize::MAX`), encoded with the library's own
//! `OptimizerState::to_bytes`, decoded with `from_bytes`, loaded into every optimizer and
//! stepped. Raw bytes rarely reach such valid-but-hostile states; this does on most inputs.
//! Every call must return `Ok` or `Err`; what decodes must be what was encoded.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tapegrad_core::{Shape, Tensor};
use tapegrad_optim::{Adam, AdamW, Momentum, Optimizer, OptimizerState, ParamEntry, RmsProp, Sgd};

#[path = "shared.rs"]
mod shared;
use shared::{Counter, Dim, Hostile, Name};

/// Caps on what one input builds, so that one input cannot take seconds.
const MAX_ELEMENTS: usize = 4096;

#[derive(Arbitrary, Debug)]
struct StateDesc {
    /// Which optimizer's fresh state is the template (kind, hyper names, buffer names).
    template: u8,
    /// Replaces the template's kind when set.
    kind: Option<String>,
    global_step: Counter,
    /// `(index into the template's hyper-parameters, new value)`; also appended as new.
    hyper_edits: Vec<(u8, Hostile)>,
    extra_hyper: Option<(String, Hostile)>,
    /// Drops or renames one buffer name when set.
    buffer_edit: Option<(u8, Option<String>)>,
    params: Vec<EntryDesc>,
}

#[derive(Arbitrary, Debug)]
struct EntryDesc {
    name: Name,
    dims: Vec<Dim>,
    step: Counter,
    /// Which buffer length to use: the shape's element count, or another.
    length_off: Option<u8>,
    fill: Hostile,
    /// A few elements set to other values, by index.
    pokes: Vec<(u16, Hostile)>,
    extra_buffer: bool,
}

fn optimizers() -> Vec<Box<dyn Optimizer<f32>>> {
    vec![
        Box::new(Sgd::pytorch_default().expect("valid preset")),
        Box::new(Momentum::pytorch_default().expect("valid preset")),
        Box::new(RmsProp::pytorch_default().expect("valid preset")),
        Box::new(Adam::pytorch_default().expect("valid preset")),
        Box::new(AdamW::keras_default().expect("valid preset")),
    ]
}

fn build(desc: &StateDesc) -> OptimizerState<f32> {
    let mut all = optimizers();
    let n = all.len();
    let mut state = all.swap_remove(usize::from(desc.template) % n).state();
    if let Some(kind) = &desc.kind {
        state.kind = kind.clone();
    }
    state.step = desc.global_step.value();
    for &(i, v) in desc.hyper_edits.iter().take(8) {
        if !state.hyper.is_empty() {
            let k = usize::from(i) % state.hyper.len();
            state.hyper[k].1 = v.value();
        }
    }
    if let Some((name, v)) = &desc.extra_hyper {
        state.hyper.push((name.clone(), v.value()));
    }
    if let Some((i, rename)) = &desc.buffer_edit {
        if !state.buffer_names.is_empty() {
            let k = usize::from(*i) % state.buffer_names.len();
            match rename {
                Some(new) => state.buffer_names[k] = new.clone(),
                None => {
                    state.buffer_names.remove(k);
                }
            }
        }
    }
    let n_buffers = state.buffer_names.len();
    state.params = desc
        .params
        .iter()
        .take(8)
        .map(|e| {
            let shape: Vec<usize> = e.dims.iter().take(4).map(|d| d.value()).collect();
            let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            let len = match (numel, e.length_off) {
                (Some(n), None) => n.min(MAX_ELEMENTS),
                (Some(n), Some(off)) => n
                    .saturating_add(usize::from(off % 3))
                    .saturating_sub(1)
                    .min(MAX_ELEMENTS),
                (None, _) => usize::from(e.length_off.unwrap_or(1) % 4),
            };
            let make = || {
                let mut b = vec![e.fill.value() as f32; len];
                for &(i, v) in e.pokes.iter().take(4) {
                    if let Some(x) = b.get_mut(usize::from(i)) {
                        *x = v.value() as f32;
                    }
                }
                b
            };
            let count = n_buffers + usize::from(e.extra_buffer);
            ParamEntry {
                name: e.name.value(),
                shape,
                step: e.step.value(),
                buffers: (0..count).map(|_| make()).collect(),
            }
        })
        .collect();
    state
}

fuzz_target!(|desc: StateDesc| {
    let state = build(&desc);
    // The struct itself, as a caller holding one in memory would load it.
    load_and_step(&state);
    // Through the library's own encoder and decoder.
    let Ok(bytes) = state.to_bytes() else {
        return;
    };
    if let Ok(decoded) = OptimizerState::<f32>::from_bytes(&bytes) {
        assert_eq!(
            decoded.to_bytes().expect("a decoded state re-encodes"),
            bytes,
            "decode ∘ encode changed the bytes"
        );
        load_and_step(&decoded);
    }
});

/// Loads `state` into each optimizer for parameters named and shaped as its (small)
/// entries plus one new one, then takes a step; each must be `Ok` or `Err`. After a
/// successful step with finite buffers the state must again encode and decode.
fn load_and_step(state: &OptimizerState<f32>) {
    let mut tensors: Vec<(String, Tensor<f32>)> = state
        .params
        .iter()
        .filter(|e| {
            e.shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .is_some_and(|n| n <= MAX_ELEMENTS)
                && e.shape.len() <= 4
        })
        .map(|e| {
            (
                e.name.clone(),
                Tensor::<f32>::full(Shape::from(e.shape.clone()), 0.5).expect("a small tensor"),
            )
        })
        .collect();
    tensors.push(("fresh".into(), Tensor::<f32>::full([3], 0.5).expect("a small tensor")));
    for mut opt in optimizers() {
        let named: Vec<(String, &Tensor<f32>)> = tensors.iter().map(|(n, t)| (n.clone(), t)).collect();
        if opt.load_state(state.clone(), &named).is_err() {
            continue;
        }
        let mut params = tensors.clone();
        let grads: Vec<Option<Tensor<f32>>> = params
            .iter()
            .map(|(_, t)| Some(Tensor::full(t.shape().clone(), 0.25).expect("a small tensor")))
            .collect();
        let mut named: Vec<(String, &mut Tensor<f32>)> = params.iter_mut().map(|(n, t)| (n.clone(), t)).collect();
        if opt.step_with_grads(&mut named, &grads).is_ok() {
            // Hostile hyper-parameters (a weight decay of 1e38) can overflow a buffer to ∞
            // in a valid step, as in PyTorch; `from_bytes` refuses such a state. Any other
            // state after a step must survive saving and resuming.
            let after = opt.state();
            let finite = after
                .params
                .iter()
                .flat_map(|e| e.buffers.iter().flatten())
                .all(|v| v.is_finite());
            let bytes = after.to_bytes().expect("the state after a step encodes");
            match OptimizerState::<f32>::from_bytes(&bytes) {
                Ok(back) => assert_eq!(
                    back.to_bytes().expect("it re-encodes"),
                    bytes,
                    "the state after a step does not round-trip"
                ),
                Err(e) => assert!(!finite, "a finite state after a step is refused: {e}"),
            }
        }
    }
}
