//! Bad input, gradient clipping, learning-rate schedules and state files.

use tapegrad_core::{Error, Tensor};
use tapegrad_optim::{
    clip_grad_norm, clip_grad_value, total_norm, Adam, AdamConfig, AdamW, AdamWConfig, ConstantLr, CosineAnnealing,
    ExponentialDecay, GradClip, LrSchedule, Momentum, MomentumConfig, MultiStepDecay, Optimizer, RmsProp,
    RmsPropConfig, Sgd, StepDecay,
};

pub(crate) fn msg<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    r.expect_err("expected an error").to_string()
}

pub(crate) fn assert_mentions(m: &str, parts: &[&str]) {
    for p in parts {
        assert!(m.contains(p), "error `{m}` should mention `{p}`");
    }
}

#[test]
fn gradient_shape_must_match_parameter_and_nothing_moves() {
    let mut w0 = Tensor::<f64>::ones([2]).unwrap();
    let mut w1 = Tensor::<f64>::ones([2, 3]).unwrap();
    let good = Tensor::<f64>::ones([2]).unwrap();
    let bad = Tensor::<f64>::ones([3, 2]).unwrap();
    let mut opt = Adam::pytorch(0.1).unwrap();
    let m = msg(opt.step_with_grads(
        &mut [("w0".to_string(), &mut w0), ("w1".to_string(), &mut w1)],
        &[Some(good), Some(bad)],
    ));
    assert_mentions(&m, &["Adam", "step", "parameter `w1`", "[2, 3]", "[3, 2]"]);
    assert_eq!(
        w0.to_vec(),
        vec![1.0, 1.0],
        "a failed step must not update any parameter"
    );
    assert_eq!(opt.step_count(), 0);
    // Slices: lengths.
    let (mut p, g) = (vec![0.0f64; 3], vec![0.0f64; 4]);
    let m = msg(Sgd::pytorch(0.1)
        .unwrap()
        .step_slices(&mut [("p", &mut p[..], Some(&g[..]))]));
    assert_mentions(&m, &["Sgd", "step", "parameter `p`", "3 elements", "4"]);
    // One gradient per parameter.
    let m = msg(opt.step_with_grads(&mut [("w0".to_string(), &mut w0)], &[]));
    assert_mentions(&m, &["1 parameters but 0 gradients"]);
}

#[test]
fn parameter_size_must_match_its_state() {
    let mut opt = RmsProp::pytorch(0.1).unwrap();
    let (mut p, g) = (vec![1.0f32; 3], vec![1.0f32; 3]);
    opt.step_slices(&mut [("p", &mut p[..], Some(&g[..]))]).unwrap();
    let (mut q, h) = (vec![1.0f32; 5], vec![1.0f32; 5]);
    // `p` skipped, `q` new: fine…
    opt.step_slices(&mut [("p", &mut p[..], None), ("q", &mut q[..], Some(&h[..]))])
        .unwrap();
    // …but giving `p` five elements is not, and nothing moves.
    let before = q.clone();
    let mut five = [1.0f32; 5];
    let m = msg(opt.step_slices(&mut [("q", &mut q[..], Some(&h[..])), ("p", &mut five[..], Some(&h[..]))]));
    assert_eq!(q, before, "a failed step must not update any parameter");
    assert_mentions(&m, &["RmsProp", "step", "parameter `p`", "5 elements", "[3]"]);
    assert_eq!(opt.step_count(), 2);
    // Tensors: the exact shape, even with as many elements.
    let mut w = Tensor::<f32>::ones([2, 3]).unwrap();
    let mut sgd = Sgd::pytorch(0.1).unwrap();
    sgd.step_with_grads(&mut [("w".to_string(), &mut w)], &[Some(Tensor::ones([2, 3]).unwrap())])
        .unwrap();
    let mut w = Tensor::<f32>::ones([3, 2]).unwrap();
    let m = msg(sgd.step_with_grads(&mut [("w".to_string(), &mut w)], &[Some(Tensor::ones([3, 2]).unwrap())]));
    assert_mentions(&m, &["Sgd", "parameter `w`", "[3, 2]", "[2, 3]"]);
    assert_eq!(sgd.step_count(), 1);
}

#[test]
fn hyper_parameters_are_validated() {
    assert_mentions(&msg(Adam::<f64>::pytorch(f64::NAN)), &["Adam", "learning rate", "NaN"]);
    assert_mentions(&msg(Sgd::<f64>::pytorch(-0.1)), &["Sgd", "learning rate", "-0.1"]);
    assert_mentions(&msg(Sgd::<f64>::keras(f64::INFINITY)), &["inf"]);
    let adam = AdamConfig::pytorch(1e-3);
    assert_mentions(
        &msg(Adam::<f64>::from_config(AdamConfig { eps: -1e-8, ..adam })),
        &["Adam", "eps", "-0.00000001"],
    );
    assert_mentions(
        &msg(Adam::<f32>::from_config(AdamConfig { beta2: 1.0, ..adam })),
        &["beta2", "[0, 1)", "got 1"],
    );
    assert_mentions(
        &msg(Adam::<f32>::from_config(AdamConfig { beta1: -0.1, ..adam })),
        &["beta1"],
    );
    assert_mentions(
        &msg(AdamW::<f32>::from_config(AdamWConfig {
            weight_decay: f64::NAN,
            ..AdamWConfig::keras(1e-3)
        })),
        &["AdamW", "weight_decay", "NaN"],
    );
    let rms = RmsPropConfig::keras(1e-3);
    assert_mentions(
        &msg(RmsProp::<f64>::from_config(RmsPropConfig { rho: 1.0, ..rms })),
        &["RmsProp", "rho"],
    );
    assert_mentions(
        &msg(RmsProp::<f64>::from_config(RmsPropConfig { eps: -1.0, ..rms })),
        &["RmsProp", "eps", "-1"],
    );
    let mom = MomentumConfig::pytorch(0.1);
    assert_mentions(
        &msg(Momentum::<f64>::from_config(MomentumConfig { momentum: 1.5, ..mom })),
        &["Momentum", "momentum", "1.5"],
    );
    assert_mentions(
        &msg(Momentum::<f64>::from_config(MomentumConfig {
            nesterov: true,
            dampening: 0.1,
            ..mom
        })),
        &["Nesterov", "dampening=0.1"],
    );
    assert_mentions(
        &msg(Momentum::<f64>::from_config(MomentumConfig {
            dampening: 0.1,
            ..MomentumConfig::keras(0.1)
        })),
        &["Keras", "dampening"],
    );
    let mut opt = Adam::<f64>::pytorch(0.1).unwrap();
    assert_mentions(&msg(opt.set_learning_rate(f64::NAN)), &["Adam", "learning rate", "NaN"]);
    assert_mentions(&msg(opt.set_learning_rate(-1.0)), &["-1"]);
    assert_eq!(opt.learning_rate(), 0.1);
    opt.set_learning_rate(0.5).unwrap();
    assert_eq!(opt.learning_rate(), 0.5);
    assert_mentions(&msg(opt.set_grad_clip(GradClip::norm(0.0))), &["Adam", "max_norm"]);
    assert_mentions(
        &msg(opt.set_grad_clip(GradClip::value(f64::NAN))),
        &["max_value", "NaN"],
    );
}

#[test]
fn clip_functions_match_pytorch() {
    let g = |v: Vec<f64>| Some(Tensor::from_vec(v.clone(), [v.len()]).unwrap());
    let mut grads = vec![g(vec![3.0, 0.0]), None, g(vec![4.0])];
    assert_eq!(total_norm(&grads), 5.0);
    let norm = clip_grad_norm(&mut grads, 1.0).unwrap();
    assert_eq!(norm, 5.0);
    let c = 1.0 / (5.0 + 1e-6);
    assert_eq!(grads[0].as_ref().unwrap().to_vec(), vec![3.0 * c, 0.0]);
    assert_eq!(grads[2].as_ref().unwrap().to_vec(), vec![4.0 * c]);
    // Below the threshold nothing changes.
    let mut small = vec![g(vec![0.3, 0.4])];
    assert_eq!(clip_grad_norm(&mut small, 1.0).unwrap(), 0.5);
    assert_eq!(small[0].as_ref().unwrap().to_vec(), vec![0.3, 0.4]);
    // By value; NaN stays visible.
    let mut v = vec![g(vec![-2.0, 0.5, 7.0, f64::NAN])];
    clip_grad_value(&mut v, 1.0).unwrap();
    let v = v[0].as_ref().unwrap().to_vec();
    assert_eq!(&v[..3], &[-1.0, 0.5, 1.0]);
    assert!(v[3].is_nan());
    assert_mentions(
        &msg(clip_grad_norm(&mut small, -1.0)),
        &["clip_grad_norm", "max_norm", "-1"],
    );
    assert_mentions(&msg(clip_grad_value(&mut small, 0.0)), &["clip_grad_value"]);
}

#[test]
fn fused_clipping_equals_clipping_copies() {
    for clip in [
        GradClip::norm(0.7),
        GradClip::value(0.25),
        GradClip {
            max_norm: Some(0.3),
            max_value: Some(0.2),
        },
    ] {
        let mut fused = Adam::<f32>::pytorch(0.1).unwrap().with_grad_clip(clip).unwrap();
        let mut plain = Adam::<f32>::pytorch(0.1).unwrap();
        let mut w1 = vec![Tensor::<f32>::ones([3]).unwrap(), Tensor::<f32>::ones([2]).unwrap()];
        let mut w2 = w1.clone();
        for step in 0..4 {
            let s = step as f32;
            let grads = vec![
                Some(Tensor::from_vec(vec![0.5 + s, -0.3, 0.1 * s], [3]).unwrap()),
                Some(Tensor::from_vec(vec![-0.2, 0.9 - s], [2]).unwrap()),
            ];
            let mut copies = grads.clone();
            if let Some(v) = clip.max_value {
                clip_grad_value(&mut copies, v).unwrap();
            }
            let norm = clip.max_norm.map(|n| clip_grad_norm(&mut copies, n).unwrap());
            let [a, b] = &mut w1[..] else { unreachable!() };
            fused
                .step_with_grads(&mut [("a".to_string(), a), ("b".to_string(), b)], &grads)
                .unwrap();
            let [a, b] = &mut w2[..] else { unreachable!() };
            plain
                .step_with_grads(&mut [("a".to_string(), a), ("b".to_string(), b)], &copies)
                .unwrap();
            assert_eq!(fused.last_grad_norm(), norm);
        }
        assert_eq!(w1[0].to_vec(), w2[0].to_vec(), "{clip:?}");
        assert_eq!(w1[1].to_vec(), w2[1].to_vec(), "{clip:?}");
        assert_eq!(fused.grad_clip(), clip);
    }
}

#[test]
fn schedules_follow_their_closed_forms() {
    let s = StepDecay::new(0.1, 0.5, 10).unwrap();
    for t in 0..50u64 {
        assert_eq!(s.lr(t), 0.1 * 0.5f64.powi((t / 10) as i32), "t={t}");
    }
    assert_eq!((s.lr(9), s.lr(10), s.lr(25)), (0.1, 0.05, 0.025));
    let e = ExponentialDecay::new(2.0, 0.9).unwrap();
    for t in 0..50u64 {
        assert_eq!(e.lr(t), 2.0 * 0.9f64.powi(t as i32));
    }
    let c = CosineAnnealing::new(1.0, 0.1, 100).unwrap();
    for t in 0..=100u64 {
        let want = 0.1 + 0.5 * (1.0 - 0.1) * (1.0 + (std::f64::consts::PI * t as f64 / 100.0).cos());
        assert!((c.lr(t) - want).abs() < 1e-15, "t={t}");
    }
    assert_eq!(c.lr(0), 1.0);
    assert!((c.lr(50) - 0.55).abs() < 1e-15);
    assert!((c.lr(100) - 0.1).abs() < 1e-15);
    assert_eq!((c.lr(101), c.lr(10_000)), (0.1, 0.1));
    assert_eq!(ConstantLr(0.3).lr(1234), 0.3);
    // PyTorch's MultiStepLR: η₀·γ^bisect_right(milestones, t), milestones in any order,
    // a repeated milestone counting twice.
    let m = MultiStepDecay::new(0.5, vec![80, 30, 30], 0.1).unwrap();
    assert_eq!(m.milestones, [30, 30, 80]);
    for t in 0..120u64 {
        let passed = m.milestones.iter().filter(|&&k| k <= t).count() as i32;
        assert_eq!(m.lr(t), 0.5 * 0.1f64.powi(passed), "t={t}");
    }
    assert_eq!(
        (m.lr(29), m.lr(30), m.lr(79)),
        (0.5, 0.5 * 0.1f64.powi(2), 0.5 * 0.1f64.powi(2))
    );
    assert_eq!(m.lr(80), 0.5 * 0.1f64.powi(3));
    assert_mentions(
        &msg(MultiStepDecay::new(0.1, vec![1], -0.5)),
        &["MultiStepDecay", "gamma", "-0.5"],
    );
    // Setting the optimizer's learning rate (an f64, whatever T), through a trait object too.
    let mut opt = Momentum::<f32>::keras(0.1).unwrap();
    s.apply(&mut opt, 20).unwrap();
    assert_eq!(opt.learning_rate(), 0.025);
    let dynamic: &mut dyn Optimizer<f32> = &mut opt;
    c.apply(dynamic, 100).unwrap();
    assert_eq!(dynamic.learning_rate(), 0.1);
    m.apply(dynamic, 30).unwrap();
    assert_eq!(dynamic.learning_rate(), 0.5 * 0.1f64.powi(2));
    // Validation.
    assert_mentions(&msg(StepDecay::new(0.1, 0.5, 0)), &["StepDecay", "step_size"]);
    assert_mentions(
        &msg(ExponentialDecay::new(0.1, f64::NAN)),
        &["ExponentialDecay", "gamma", "NaN"],
    );
    assert_mentions(&msg(CosineAnnealing::new(-1.0, 0.0, 10)), &["CosineAnnealing", "-1"]);
    assert_mentions(
        &msg(ConstantLr(f64::NAN).apply(&mut opt, 0)),
        &["Momentum", "learning rate", "NaN"],
    );
}
