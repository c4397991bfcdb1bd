//! Optimizers in training loops: convergence of every preset on a least-squares problem,
//! where the PyTorch and Keras presets differ and where they agree, and checkpointing
//! (train, save, load into a fresh optimizer, train on = train straight through).

use tapegrad_core::{Element, Gradients, Tensor};
use tapegrad_optim::{
    Adam, AdamW, AdamWConfig, GradClip, Momentum, MomentumConfig, Optimizer, OptimizerState, RmsProp, RmsPropConfig,
    Sgd, SgdConfig,
};

/// A fixed, well-conditioned 6×3 least-squares problem with solution X_STAR (b = A·x*).
const A: [f64; 18] = [
    1.0, 0.5, -0.2, 0.3, 1.2, 0.1, -0.4, 0.2, 0.9, 0.8, -0.3, 0.4, 0.1, 0.7, -0.6, 0.5, 0.5, 0.5,
];
const X_STAR: [f64; 3] = [1.0, -2.0, 0.5];

fn problem<T: Element>() -> (Tensor<T>, Tensor<T>) {
    let f = T::from_f64_lossy;
    let a = Tensor::from_vec(A.iter().map(|&v| f(v)).collect(), [6, 3]).unwrap();
    let b: Vec<T> = (0..6)
        .map(|i| f((0..3).map(|j| A[i * 3 + j] * X_STAR[j]).sum()))
        .collect();
    (a, Tensor::from_vec(b, [6, 1]).unwrap())
}

/// ∇ of L = ½‖A·x − b‖² (plus nothing for `frozen`, which the loss does not use).
fn grads<T: Element>(a: &Tensor<T>, b: &Tensor<T>, x: &Tensor<T>) -> Gradients<T> {
    let r = a.matmul(x).unwrap().sub(b).unwrap();
    r.mul(&r)
        .unwrap()
        .sum_all()
        .mul_scalar(T::from_f64_lossy(0.5))
        .backward()
        .unwrap()
}

fn train<T: Element>(opt: &mut dyn Optimizer<T>, x: &mut Tensor<T>, frozen: &mut Tensor<T>, steps: usize) {
    let (a, b) = problem::<T>();
    for _ in 0..steps {
        let g = grads(&a, &b, x);
        opt.step(
            &mut [("x".to_string(), &mut *x), ("frozen".to_string(), &mut *frozen)],
            &g,
        )
        .unwrap();
    }
}

fn start<T: Element>() -> (Tensor<T>, Tensor<T>) {
    let x = Tensor::<T>::zeros([3, 1]).unwrap().requires_grad();
    let frozen = Tensor::<T>::ones([2]).unwrap().requires_grad();
    (x, frozen)
}

fn presets() -> Vec<(&'static str, Box<dyn Optimizer<f64>>, usize)> {
    vec![
        ("Sgd", Box::new(Sgd::pytorch(0.3).unwrap()), 2000),
        ("Sgd keras_default", Box::new(Sgd::keras_default().unwrap()), 40000),
        ("Momentum::pytorch", Box::new(Momentum::pytorch(0.05).unwrap()), 2000),
        ("Momentum::keras", Box::new(Momentum::keras(0.05).unwrap()), 2000),
        (
            "Momentum nesterov",
            Box::new(
                Momentum::from_config(MomentumConfig {
                    nesterov: true,
                    ..MomentumConfig::pytorch(0.05)
                })
                .unwrap(),
            ),
            2000,
        ),
        ("RmsProp::pytorch", Box::new(RmsProp::pytorch(1e-3).unwrap()), 6000),
        ("RmsProp::keras", Box::new(RmsProp::keras(1e-3).unwrap()), 6000),
        (
            "RmsProp centered momentum",
            Box::new(
                RmsProp::from_config(RmsPropConfig {
                    centered: true,
                    momentum: 0.5,
                    ..RmsPropConfig::pytorch(1e-3)
                })
                .unwrap(),
            ),
            6000,
        ),
        ("Adam::pytorch", Box::new(Adam::pytorch(0.01).unwrap()), 6000),
        ("Adam::keras", Box::new(Adam::keras(0.01).unwrap()), 6000),
        (
            "AdamW::pytorch",
            Box::new(
                AdamW::from_config(AdamWConfig {
                    weight_decay: 1e-4,
                    ..AdamWConfig::pytorch(0.01)
                })
                .unwrap(),
            ),
            6000,
        ),
        (
            "AdamW::keras",
            Box::new(
                AdamW::from_config(AdamWConfig {
                    weight_decay: 1e-4,
                    ..AdamWConfig::keras(0.01)
                })
                .unwrap(),
            ),
            6000,
        ),
    ]
}

#[test]
fn every_preset_reaches_the_least_squares_minimum() {
    for (name, mut opt, steps) in presets() {
        let (mut x, mut frozen) = start::<f64>();
        train(opt.as_mut(), &mut x, &mut frozen, steps);
        let err = x
            .data()
            .iter()
            .zip(X_STAR)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            err < 5e-3,
            "{name}: x = {:?} after {steps} steps (error {err:e})",
            x.to_vec()
        );
        assert_eq!(
            frozen.to_vec(),
            vec![1.0, 1.0],
            "{name}: a parameter without gradient moved"
        );
        assert_eq!(opt.step_count(), steps as u64);
        // Only the parameter that had gradients has state.
        let state = opt.state();
        let counts: Vec<(&str, u64)> = state.params.iter().map(|e| (e.name.as_str(), e.step)).collect();
        assert_eq!(counts, [("x", steps as u64)], "{name}");
    }
}

#[test]
fn f32_training_converges() {
    let mut opt = Adam::<f32>::pytorch(0.01).unwrap();
    let (mut x, mut frozen) = start::<f32>();
    train(&mut opt, &mut x, &mut frozen, 6000);
    for (a, b) in x.data().iter().zip(X_STAR) {
        assert!((f64::from(*a) - b).abs() < 5e-3, "{:?}", x.to_vec());
    }
}

/// One step on one element with gradient `g` from W = 0; returns the step ΔW.
fn first_step(opt: &mut dyn Optimizer<f64>, g: f64) -> f64 {
    let mut w = [0.0];
    opt.step_slices(&mut [("w", &mut w[..], Some(&[g][..]))]).unwrap();
    w[0]
}

#[test]
fn adam_forms_differ_for_tiny_gradients() {
    let (eta, g) = (1e-3, 1e-9);
    let torch = first_step(&mut Adam::pytorch(eta).unwrap(), g);
    let keras = first_step(&mut Adam::keras(eta).unwrap(), g);
    // PyTorch: m̂ = g, v̂ = g², Δ = −η·g/(g + 1e-8) = −η/11.
    let want_torch = -eta * g / (g + 1e-8);
    // Keras: α = η·√(1−β₂)/(1−β₁), m = 0.1g, v = 0.001g², Δ = −α·m/(√v + 1e-7).
    let want_keras = -eta * 0.001f64.sqrt() / 0.1 * (0.1 * g) / ((0.001 * g * g).sqrt() + 1e-7);
    assert!((torch - want_torch).abs() < 1e-15 * eta, "{torch} vs {want_torch}");
    assert!((keras - want_keras).abs() < 1e-15 * eta, "{keras} vs {want_keras}");
    assert!((torch / eta + 1.0 / 11.0).abs() < 1e-12);
    assert!(torch / keras > 250.0, "torch {torch:e}, keras {keras:e}");
    // With an ordinary gradient both take a step of ≈ η.
    let torch = first_step(&mut Adam::pytorch(eta).unwrap(), 0.5);
    let keras = first_step(&mut Adam::keras(eta).unwrap(), 0.5);
    assert!(
        (torch + eta).abs() < 1e-7 * eta && (keras + eta).abs() < 1e-5 * eta,
        "{torch} {keras}"
    );
}

#[test]
fn rmsprop_presets_differ_on_the_first_step() {
    let (eta, g) = (1e-3, 1.0);
    let torch = first_step(&mut RmsProp::pytorch(eta).unwrap(), g);
    let keras = first_step(&mut RmsProp::keras(eta).unwrap(), g);
    assert!(
        (torch / eta + 10.0).abs() < 1e-6,
        "PyTorch first step {torch}: expected ≈ −10η"
    );
    assert!(
        (keras / eta + 10f64.sqrt()).abs() < 1e-5,
        "Keras first step {keras}: expected ≈ −3.16η"
    );
    // Same ρ and ε, different placement: g comparable to √ε shows it.
    let cfg = RmsPropConfig {
        eps: 1e-4,
        ..RmsPropConfig::pytorch(eta)
    };
    let outside = first_step(&mut RmsProp::from_config(cfg).unwrap(), 1e-4);
    let inside = first_step(
        &mut RmsProp::from_config(RmsPropConfig {
            eps_placement: tapegrad_optim::EpsPlacement::Inside,
            ..cfg
        })
        .unwrap(),
        1e-4,
    );
    assert!((outside + eta * 1e-4 / (1e-5 + 1e-4)).abs() < 1e-15);
    assert!((inside + eta * 1e-4 / (1e-10f64 + 1e-4).sqrt()).abs() < 1e-15);
}

/// Trajectories of `a` and `b` on ½w² with per-element gradient w, η changed at step 10.
fn trajectories(a: &mut dyn Optimizer<f64>, b: &mut dyn Optimizer<f64>, new_lr: Option<f64>) -> (Vec<f64>, Vec<f64>) {
    let (mut wa, mut wb) = (vec![1.0, -0.5], vec![1.0, -0.5]);
    let (mut ta, mut tb) = (vec![], vec![]);
    for t in 0..30 {
        if t == 10 {
            if let Some(lr) = new_lr {
                a.set_learning_rate(lr).unwrap();
                b.set_learning_rate(lr).unwrap();
            }
        }
        let (ga, gb) = (wa.clone(), wb.clone());
        a.step_slices(&mut [("w", &mut wa[..], Some(&ga[..]))]).unwrap();
        b.step_slices(&mut [("w", &mut wb[..], Some(&gb[..]))]).unwrap();
        ta.extend_from_slice(&wa);
        tb.extend_from_slice(&wb);
    }
    (ta, tb)
}

fn max_rel_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(1e-300))
        .fold(0.0, f64::max)
}

#[test]
fn momentum_styles_agree_for_constant_lr_and_differ_when_it_changes() {
    for nesterov in [false, true] {
        let mk = |cfg: MomentumConfig| Momentum::from_config(MomentumConfig { nesterov, ..cfg }).unwrap();
        let (a, b) = trajectories(
            &mut mk(MomentumConfig::pytorch(0.1)),
            &mut mk(MomentumConfig::keras(0.1)),
            None,
        );
        assert!(
            max_rel_diff(&a, &b) < 1e-12,
            "nesterov={nesterov}: {}",
            max_rel_diff(&a, &b)
        );
        let (a, b) = trajectories(
            &mut mk(MomentumConfig::pytorch(0.1)),
            &mut mk(MomentumConfig::keras(0.1)),
            Some(0.01),
        );
        assert!(
            max_rel_diff(&a, &b) > 1e-3,
            "nesterov={nesterov}: styles should differ after an η change"
        );
    }
    // RMSProp's two momentum forms, likewise.
    let mk = |style| {
        RmsProp::from_config(RmsPropConfig {
            momentum_style: style,
            momentum: 0.9,
            ..RmsPropConfig::pytorch(0.01)
        })
        .unwrap()
    };
    use tapegrad_optim::MomentumStyle::{Keras, PyTorch};
    let (a, b) = trajectories(&mut mk(PyTorch), &mut mk(Keras), None);
    assert!(max_rel_diff(&a, &b) < 1e-12);
    let (a, b) = trajectories(&mut mk(PyTorch), &mut mk(Keras), Some(0.001));
    assert!(max_rel_diff(&a, &b) > 1e-3);
}

/// 10 steps, save, load into a fresh optimizer (built with other hyper-parameters),
/// 10 more steps = 20 steps straight, bit for bit.
fn resume_is_exact<T>(make: &dyn Fn() -> Box<dyn Optimizer<T>>, fresh: &dyn Fn() -> Box<dyn Optimizer<T>>, name: &str)
where
    T: Element + serde::Serialize + for<'de> serde::Deserialize<'de>,
{
    let (mut x1, mut f1) = start::<T>();
    let mut straight = make();
    train(straight.as_mut(), &mut x1, &mut f1, 20);

    let (mut x2, mut f2) = start::<T>();
    let mut first = make();
    train(first.as_mut(), &mut x2, &mut f2, 10);
    let bytes = first.state().to_bytes().unwrap();
    drop(first);
    let state = OptimizerState::<T>::from_bytes(&bytes).unwrap();
    let mut second = fresh();
    second
        .load_state(state, &[("x".to_string(), &x2), ("frozen".to_string(), &f2)])
        .unwrap();
    assert_eq!(second.step_count(), 10, "{name}");
    train(second.as_mut(), &mut x2, &mut f2, 10);

    assert_eq!(x1.to_vec(), x2.to_vec(), "{name} ({}): resumed run differs", T::DTYPE);
    assert_eq!(straight.state(), second.state(), "{name} ({})", T::DTYPE);
}

fn resume_all<T>()
where
    T: Element + serde::Serialize + for<'de> serde::Deserialize<'de>,
{
    type Make<T> = Box<dyn Fn() -> Box<dyn Optimizer<T>>>;
    let cases: Vec<(&str, Make<T>, Make<T>)> = vec![
        (
            "Sgd",
            Box::new(|| {
                Box::new(
                    Sgd::from_config(SgdConfig {
                        weight_decay: 0.01,
                        ..SgdConfig::pytorch(0.05)
                    })
                    .unwrap(),
                )
            }),
            Box::new(|| Box::new(Sgd::keras_default().unwrap())),
        ),
        (
            "Momentum::pytorch",
            Box::new(|| {
                Box::new(
                    Momentum::from_config(MomentumConfig {
                        nesterov: true,
                        ..MomentumConfig::pytorch(0.02)
                    })
                    .unwrap(),
                )
            }),
            Box::new(|| Box::new(Momentum::keras(1.0).unwrap())),
        ),
        (
            "Momentum::keras",
            Box::new(|| {
                Box::new(
                    Momentum::from_config(MomentumConfig {
                        momentum: 0.8,
                        ..MomentumConfig::keras(0.02)
                    })
                    .unwrap(),
                )
            }),
            Box::new(|| Box::new(Momentum::pytorch(1.0).unwrap())),
        ),
        (
            "RmsProp centered momentum",
            Box::new(|| {
                Box::new(
                    RmsProp::from_config(RmsPropConfig {
                        centered: true,
                        momentum: 0.5,
                        ..RmsPropConfig::keras(0.01)
                    })
                    .unwrap(),
                )
            }),
            Box::new(|| Box::new(RmsProp::pytorch_default().unwrap())),
        ),
        (
            "Adam::pytorch clipped",
            Box::new(|| {
                Box::new(
                    Adam::pytorch(0.05)
                        .unwrap()
                        .with_grad_clip(GradClip::norm(0.5))
                        .unwrap(),
                )
            }),
            Box::new(|| Box::new(Adam::keras_default().unwrap())),
        ),
        (
            "Adam::keras",
            Box::new(|| Box::new(Adam::keras(0.05).unwrap())),
            Box::new(|| Box::new(Adam::pytorch_default().unwrap())),
        ),
        (
            "AdamW::pytorch",
            Box::new(|| Box::new(AdamW::pytorch(0.05).unwrap())),
            Box::new(|| Box::new(AdamW::keras_default().unwrap())),
        ),
        (
            "AdamW::keras",
            Box::new(|| Box::new(AdamW::keras(0.05).unwrap())),
            Box::new(|| Box::new(AdamW::pytorch_default().unwrap())),
        ),
    ];
    for (name, make, fresh) in &cases {
        resume_is_exact::<T>(make.as_ref(), fresh.as_ref(), name);
    }
}

#[test]
fn resume_from_bytes_is_bit_identical_f64() {
    resume_all::<f64>();
}

#[test]
fn resume_from_bytes_is_bit_identical_f32() {
    resume_all::<f32>();
}

#[test]
fn state_names_buffers_and_hyper_parameters() {
    let (mut x, mut frozen) = start::<f64>();
    let mut opt = Adam::pytorch(0.01).unwrap();
    train(&mut opt, &mut x, &mut frozen, 3);
    let s = opt.state();
    assert_eq!((s.kind.as_str(), s.step), ("Adam", 3));
    assert_eq!(s.buffer_names, ["exp_avg", "exp_avg_sq"]);
    // The parameter without gradient has no entry; `x` has its name, shape and count.
    assert_eq!(s.params.len(), 1);
    let e = &s.params[0];
    assert_eq!((e.name.as_str(), e.shape.as_slice(), e.step), ("x", &[3, 1][..], 3));
    assert_eq!(e.buffers.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3]);
    assert!(s.hyper.contains(&("lr".to_string(), 0.01)));
    assert!(s.hyper.contains(&("beta2".to_string(), 0.999)));
}

#[test]
fn step_with_grads_equals_step() {
    let (a, b) = problem::<f64>();
    let (mut x1, mut f1) = start::<f64>();
    let (mut x2, mut f2) = start::<f64>();
    let (mut o1, mut o2) = (Adam::pytorch(0.1).unwrap(), Adam::pytorch(0.1).unwrap());
    for _ in 0..5 {
        let g = grads(&a, &b, &x1);
        o1.step(&mut [("x".to_string(), &mut x1), ("f".to_string(), &mut f1)], &g)
            .unwrap();
        let g = grads(&a, &b, &x2);
        let mut params = [("x".to_string(), &mut x2), ("f".to_string(), &mut f2)];
        let list = tapegrad_optim::grads_for(&params, &g);
        assert!(list[1].is_none());
        o2.step_with_grads(&mut params, &list).unwrap();
    }
    assert_eq!(x1.to_vec(), x2.to_vec());
}
