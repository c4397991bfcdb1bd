//! State keyed by parameter name: freezing and unfreezing a layer leaves every
//! parameter's moments attached to its own tensor, through a save and load too.

use crate::api::{assert_mentions, msg};
use rand::{rngs::StdRng, SeedableRng};
use tapegrad_core::{Gradients, Tensor};
use tapegrad_nn::{loss, Activation, Dense, Module, Reduction, Sequential};
use tapegrad_optim::{Adam, Optimizer, OptimizerState};

/// Two layers of the same shapes (4 → 4 → 4): a state keyed by position would hand layer
/// 0's moments to layer 1 without any size mismatch to notice it.
fn model() -> Sequential<f64> {
    let mut rng = StdRng::seed_from_u64(7);
    Sequential::new()
        .add(Dense::new(4, 4, &mut rng).unwrap().with_activation(Activation::Tanh))
        .add(Dense::new(4, 4, &mut rng).unwrap())
}

fn grads(model: &mut Sequential<f64>, batch: u64) -> Gradients<f64> {
    let x = Tensor::from_vec(
        (0..8)
            .map(|i| ((i as u64 * 7 + batch * 3) % 11) as f64 / 5.0 - 1.0)
            .collect(),
        [2, 4],
    )
    .unwrap();
    let labels = [(batch % 4) as usize, ((batch + 1) % 4) as usize];
    loss::sparse_categorical_cross_entropy_with_logits(&model.forward(&x).unwrap(), &labels[..], Reduction::Mean)
        .unwrap()
        .backward()
        .unwrap()
}

/// The reference: the same model never frozen, stepped with explicit gradients where
/// the frozen step simply has none for layer 0.
fn reference_step(model: &mut Sequential<f64>, opt: &mut Adam<f64>, batch: u64, skip_layer0: bool) {
    let g = grads(model, batch);
    let mut params = model.parameters_mut();
    let list: Vec<Option<Tensor<f64>>> = params
        .iter()
        .map(|(n, p)| g.get(p).filter(|_| !(skip_layer0 && n.starts_with("0."))).cloned())
        .collect();
    opt.step_with_grads(&mut params, &list).unwrap();
}

fn step(model: &mut Sequential<f64>, opt: &mut dyn Optimizer<f64>, batch: u64) {
    let g = grads(model, batch);
    opt.step(&mut model.trainable_parameters_mut(), &g).unwrap();
}

fn assert_same(a: &Sequential<f64>, oa: &dyn Optimizer<f64>, b: &Sequential<f64>, ob: &dyn Optimizer<f64>, when: &str) {
    for ((na, pa), (nb, pb)) in a.parameters().iter().zip(b.parameters()) {
        assert_eq!((na, pa.to_vec()), (&nb, pb.to_vec()), "{when}: parameter values");
    }
    let (sa, sb) = (oa.state(), ob.state());
    assert_eq!(sa.params.len(), 4, "{when}");
    for (ea, eb) in sa.params.iter().zip(&sb.params) {
        assert_eq!(ea, eb, "{when}: the state of `{}`", ea.name);
    }
    assert_eq!(sa.step, sb.step, "{when}");
}

#[test]
fn freezing_a_layer_keeps_every_parameters_moments_on_its_own_tensor() {
    let (mut m, mut r) = (model(), model());
    let (mut opt, mut reference) = (Adam::pytorch(0.05).unwrap(), Adam::pytorch(0.05).unwrap());
    for batch in 0..3 {
        step(&mut m, &mut opt, batch);
        reference_step(&mut r, &mut reference, batch, false);
    }
    assert_same(&m, &opt, &r, &reference, "before freezing");
    let layer0_before: Vec<_> = opt
        .state()
        .params
        .into_iter()
        .filter(|e| e.name.starts_with("0."))
        .collect();

    m.freeze("0").unwrap();
    assert_eq!(m.trainable_parameters_mut().len(), 2);
    step(&mut m, &mut opt, 3); // only `1.weight` and `1.bias` are passed
    reference_step(&mut r, &mut reference, 3, true);
    assert_same(&m, &opt, &r, &reference, "the frozen step");
    let state = opt.state();
    let layer0_after: Vec<_> = state
        .params
        .iter()
        .filter(|e| e.name.starts_with("0."))
        .cloned()
        .collect();
    assert_eq!(layer0_after, layer0_before, "the frozen layer's state is untouched");
    let counts: Vec<(&str, u64)> = state.params.iter().map(|e| (e.name.as_str(), e.step)).collect();
    assert_eq!(counts, [("0.bias", 3), ("0.weight", 3), ("1.bias", 4), ("1.weight", 4)]);
    // What keying by position would have done: layer 1 at positions 0 and 1, stepped with
    // the moments of `0.weight` and `0.bias` (same shapes, so nothing would complain).
    // Those moments differ from layer 1's own, so the reference comparison above fails
    // for any optimizer that confuses them.
    let moments = |name: &str| state.params.iter().find(|e| e.name == name).unwrap().buffers.clone();
    assert_ne!(moments("0.weight"), moments("1.weight"));

    m.unfreeze("0").unwrap();
    step(&mut m, &mut opt, 4);
    reference_step(&mut r, &mut reference, 4, false);
    assert_same(&m, &opt, &r, &reference, "after unfreezing");

    // Save, load into a fresh optimizer built with other hyper-parameters, go on.
    let bytes = opt.state().to_bytes().unwrap();
    let mut resumed = Adam::keras_default().unwrap();
    resumed
        .load_state(OptimizerState::from_bytes(&bytes).unwrap(), &m.parameters())
        .unwrap();
    for batch in 5..7 {
        step(&mut m, &mut resumed, batch);
        reference_step(&mut r, &mut reference, batch, false);
    }
    assert_same(&m, &resumed, &r, &reference, "after save and load");
}

#[test]
fn a_name_passed_twice_is_an_error_and_nothing_moves() {
    let (mut a, mut b) = (vec![1.0f64; 2], vec![1.0f64; 2]);
    let g = [0.5, 0.5];
    let mut opt = Adam::pytorch(0.1).unwrap();
    let m = msg(opt.step_slices(&mut [("w", &mut a[..], Some(&g[..])), ("w", &mut b[..], Some(&g[..]))]));
    assert_mentions(&m, &["Adam", "`w`", "twice"]);
    assert_eq!((a, b, opt.step_count()), (vec![1.0; 2], vec![1.0; 2], 0));
    // Also when one of them has no gradient.
    let (mut t1, mut t2) = (Tensor::<f64>::ones([2]).unwrap(), Tensor::<f64>::ones([3]).unwrap());
    let m = msg(opt.step_with_grads(
        &mut [("x".to_string(), &mut t1), ("x".to_string(), &mut t2)],
        &[Some(Tensor::ones([2]).unwrap()), None],
    ));
    assert_mentions(&m, &["`x`", "twice"]);
    assert_eq!(t1.to_vec(), vec![1.0; 2]);
}
