//! Each update rule, step by step, against its equations evaluated by hand in plain
//! scalar `f64` code (the first three steps, where bias correction and ε matter most).

use tapegrad_core::{Element, Tensor};
use tapegrad_optim::{
    Adam, AdamConfig, AdamW, AdamWConfig, Momentum, MomentumConfig, MomentumStyle, Optimizer, RmsProp, RmsPropConfig,
    Sgd, SgdConfig,
};

const W0: [f64; 2] = [1.0, -2.0];
/// Gradients for steps 1, 2, 3 (independent of W, so the equations can be run by hand).
const G: [[f64; 2]; 3] = [[0.5, -1.5], [0.25, 2.0], [-0.75, 0.125]];

/// Relative error at most 1e-15 (a few ulps).
fn assert_close(got: f64, want: f64, what: &str) {
    let tol = 1e-15 * want.abs().max(f64::MIN_POSITIVE);
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got:e}, want {want:e} (diff {:e})",
        got - want
    );
}

/// W after each of the three steps.
fn run(opt: &mut dyn Optimizer<f64>) -> Vec<[f64; 2]> {
    let mut w = W0.to_vec();
    G.iter()
        .map(|g| {
            opt.step_slices(&mut [("w", &mut w[..], Some(&g[..]))]).unwrap();
            [w[0], w[1]]
        })
        .collect()
}

fn check(name: &str, got: &[[f64; 2]], want: &[[f64; 2]]) {
    for (t, (a, b)) in got.iter().zip(want).enumerate() {
        for j in 0..2 {
            assert_close(a[j], b[j], &format!("{name}, step {}, element {j}", t + 1));
        }
    }
}

#[test]
fn sgd_with_weight_decay() {
    let (eta, lambda) = (0.1, 0.01);
    let mut w = W0;
    let want: Vec<[f64; 2]> = G
        .iter()
        .map(|g| {
            for j in 0..2 {
                w[j] -= eta * (g[j] + lambda * w[j]);
            }
            w
        })
        .collect();
    let mut opt = Sgd::from_config(SgdConfig {
        weight_decay: lambda,
        ..SgdConfig::pytorch(eta)
    })
    .unwrap();
    check("SGD", &run(&mut opt), &want);
    assert_eq!(opt.step_count(), 3);
}

/// On L = ½‖W‖² (∂L/∂W = W), SGD gives W_t = (1−η)ᵗ·W₀.
fn sgd_bowl<T: Element>(eta: f64, steps: i32, rtol: f64) {
    let w0 = [1.5, -0.75, 3.0];
    let mut w = Tensor::<T>::from_vec(w0.iter().map(|&v| T::from_f64_lossy(v)).collect(), [3])
        .unwrap()
        .requires_grad();
    let mut opt = Sgd::<T>::pytorch(eta).unwrap();
    for t in 1..=steps {
        let grads = w
            .mul(&w)
            .unwrap()
            .sum_all()
            .mul_scalar(T::from_f64_lossy(0.5))
            .backward()
            .unwrap();
        opt.step(&mut [("w".to_string(), &mut w)], &grads).unwrap();
        for (got, &x0) in w.data().iter().zip(&w0) {
            let want = (1.0 - eta).powi(t) * x0;
            let err = (got.as_f64() - want).abs();
            assert!(err <= rtol * want.abs(), "{} step {t}: {got} vs {want}", T::DTYPE);
        }
    }
}

#[test]
fn sgd_on_quadratic_bowl_is_geometric_f64() {
    sgd_bowl::<f64>(0.5, 40, 0.0); // exact: halving is exact in binary
    sgd_bowl::<f64>(0.1, 100, 1e-13);
}

#[test]
fn sgd_on_quadratic_bowl_is_geometric_f32() {
    sgd_bowl::<f32>(0.5, 40, 0.0);
    sgd_bowl::<f32>(0.1, 100, 1e-5);
}

#[test]
fn momentum_pytorch_heavy_ball_and_nesterov() {
    let (eta, mu, tau, lambda) = (0.1, 0.9, 0.1, 0.01);
    for nesterov in [false, true] {
        let tau = if nesterov { 0.0 } else { tau };
        let (mut w, mut b) = (W0, [0.0; 2]);
        let want: Vec<[f64; 2]> = G
            .iter()
            .enumerate()
            .map(|(t, g)| {
                for j in 0..2 {
                    let g = g[j] + lambda * w[j];
                    b[j] = if t == 0 { g } else { mu * b[j] + (1.0 - tau) * g };
                    let d = if nesterov { g + mu * b[j] } else { b[j] };
                    w[j] -= eta * d;
                }
                w
            })
            .collect();
        let cfg = MomentumConfig {
            momentum: mu,
            dampening: tau,
            weight_decay: lambda,
            nesterov,
            ..MomentumConfig::pytorch(eta)
        };
        check(
            &format!("Momentum::pytorch nesterov={nesterov}"),
            &run(&mut Momentum::from_config(cfg).unwrap()),
            &want,
        );
    }
}

#[test]
fn momentum_keras_heavy_ball_and_nesterov() {
    let (eta, mu) = (0.1, 0.9);
    for nesterov in [false, true] {
        let (mut w, mut v) = (W0, [0.0; 2]);
        let want: Vec<[f64; 2]> = G
            .iter()
            .map(|g| {
                for j in 0..2 {
                    v[j] = mu * v[j] - eta * g[j];
                    w[j] += if nesterov { mu * v[j] - eta * g[j] } else { v[j] };
                }
                w
            })
            .collect();
        let cfg = MomentumConfig {
            momentum: mu,
            nesterov,
            ..MomentumConfig::keras(eta)
        };
        check(
            &format!("Momentum::keras nesterov={nesterov}"),
            &run(&mut Momentum::from_config(cfg).unwrap()),
            &want,
        );
    }
}

/// Hand RMSProp: (rho, eps, inside, centered, mu, keras_momentum, lambda).
#[allow(clippy::too_many_arguments)]
fn rmsprop_by_hand(
    eta: f64,
    rho: f64,
    eps: f64,
    inside: bool,
    centered: bool,
    mu: f64,
    keras: bool,
    lambda: f64,
) -> Vec<[f64; 2]> {
    let (mut w, mut s, mut gbar, mut b) = (W0, [0.0; 2], [0.0; 2], [0.0; 2]);
    G.iter()
        .map(|g| {
            for j in 0..2 {
                let g = g[j] + lambda * w[j];
                s[j] = rho * s[j] + (1.0 - rho) * g * g;
                gbar[j] = rho * gbar[j] + (1.0 - rho) * g;
                let var = if centered { s[j] - gbar[j] * gbar[j] } else { s[j] };
                let q = if inside {
                    g / (var + eps).sqrt()
                } else {
                    g / (var.sqrt() + eps)
                };
                if mu == 0.0 {
                    w[j] -= eta * q;
                } else if keras {
                    b[j] = mu * b[j] + eta * q;
                    w[j] -= b[j];
                } else {
                    b[j] = mu * b[j] + q;
                    w[j] -= eta * b[j];
                }
            }
            w
        })
        .collect()
}

#[test]
fn rmsprop_pytorch_eps_outside() {
    let want = rmsprop_by_hand(0.01, 0.99, 1e-8, false, false, 0.0, false, 0.0);
    check("RmsProp::pytorch", &run(&mut RmsProp::pytorch(0.01).unwrap()), &want);
    // Centered, with momentum and weight decay.
    let want = rmsprop_by_hand(0.01, 0.99, 1e-8, false, true, 0.9, false, 0.01);
    let cfg = RmsPropConfig {
        centered: true,
        momentum: 0.9,
        weight_decay: 0.01,
        ..RmsPropConfig::pytorch(0.01)
    };
    check(
        "RmsProp::pytorch centered momentum",
        &run(&mut RmsProp::from_config(cfg).unwrap()),
        &want,
    );
}

#[test]
fn rmsprop_keras_eps_inside() {
    let want = rmsprop_by_hand(1e-3, 0.9, 1e-7, true, false, 0.0, true, 0.0);
    check("RmsProp::keras", &run(&mut RmsProp::keras(1e-3).unwrap()), &want);
    let want = rmsprop_by_hand(1e-3, 0.9, 1e-7, true, true, 0.5, true, 0.0);
    let cfg = RmsPropConfig {
        centered: true,
        momentum: 0.5,
        ..RmsPropConfig::keras(1e-3)
    };
    check(
        "RmsProp::keras centered momentum",
        &run(&mut RmsProp::from_config(cfg).unwrap()),
        &want,
    );
}

/// Hand Adam from the textbook equations: m̂, v̂, either ε placement, and L2 or
/// decoupled (AdamW) weight decay.
fn adam_by_hand(cfg: &AdamConfig, decoupled: bool, keras: bool) -> Vec<[f64; 2]> {
    let (eta, b1, b2, eps, lambda) = (cfg.lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay);
    let (mut w, mut m, mut v) = (W0, [0.0; 2], [0.0; 2]);
    G.iter()
        .enumerate()
        .map(|(i, g)| {
            let t = i as i32 + 1;
            for j in 0..2 {
                let mut g = g[j];
                if decoupled {
                    w[j] -= eta * lambda * w[j];
                } else {
                    g += lambda * w[j];
                }
                m[j] = b1 * m[j] + (1.0 - b1) * g;
                v[j] = b2 * v[j] + (1.0 - b2) * g * g;
                if keras {
                    let alpha = eta * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
                    w[j] -= alpha * m[j] / (v[j].sqrt() + eps);
                } else {
                    let m_hat = m[j] / (1.0 - b1.powi(t));
                    let v_hat = v[j] / (1.0 - b2.powi(t));
                    w[j] -= eta * m_hat / (v_hat.sqrt() + eps);
                }
            }
            w
        })
        .collect()
}

/// AdamW's configuration as the numbers of an `AdamConfig`, for `adam_by_hand`.
fn as_adam(c: &AdamWConfig) -> AdamConfig {
    AdamConfig {
        lr: c.lr,
        beta1: c.beta1,
        beta2: c.beta2,
        eps: c.eps,
        weight_decay: c.weight_decay,
        form: c.form,
    }
}

#[test]
fn adam_pytorch_form() {
    for cfg in [
        AdamConfig::pytorch(1e-3),
        AdamConfig {
            beta1: 0.8,
            beta2: 0.99,
            weight_decay: 0.05,
            ..AdamConfig::pytorch(0.1)
        },
    ] {
        let want = adam_by_hand(&cfg, false, false);
        check(&format!("{cfg:?}"), &run(&mut Adam::from_config(cfg).unwrap()), &want);
    }
    let cfg = AdamWConfig::pytorch(0.1);
    let want = adam_by_hand(&as_adam(&cfg), true, false);
    check(&format!("{cfg:?}"), &run(&mut AdamW::from_config(cfg).unwrap()), &want);
}

#[test]
fn adam_keras_form() {
    let cfg = AdamConfig::keras(1e-3);
    let want = adam_by_hand(&cfg, false, true);
    check(&format!("{cfg:?}"), &run(&mut Adam::from_config(cfg).unwrap()), &want);
    let cfg = AdamWConfig::keras(0.1);
    let want = adam_by_hand(&as_adam(&cfg), true, true);
    check(&format!("{cfg:?}"), &run(&mut AdamW::from_config(cfg).unwrap()), &want);
}

/// The PyTorch Adam step in `T` arithmetic against the same equations in `T`.
fn adam_generic<T: Element>() {
    let cfg = AdamConfig::pytorch(0.01);
    let mut opt = Adam::<T>::from_config(cfg).unwrap();
    let f = T::from_f64_lossy;
    let mut w: Vec<T> = W0.iter().map(|&x| f(x)).collect();
    let (mut hw, mut m, mut v) = (w.clone(), vec![T::zero(); 2], vec![T::zero(); 2]);
    for (i, g) in G.iter().enumerate() {
        let g: Vec<T> = g.iter().map(|&x| f(x)).collect();
        opt.step_slices(&mut [("w", &mut w[..], Some(&g[..]))]).unwrap();
        let t = i as i32 + 1;
        let step_size = f(0.01 / (1.0 - 0.9f64.powi(t)));
        let bc2_sqrt = f((1.0 - 0.999f64.powi(t)).sqrt());
        for j in 0..2 {
            m[j] = f(0.9) * m[j] + f(1.0 - 0.9) * g[j];
            v[j] = f(0.999) * v[j] + f(1.0 - 0.999) * (g[j] * g[j]);
            hw[j] -= step_size * (m[j] / (v[j].sqrt() / bc2_sqrt + f(1e-8)));
            assert_eq!(w[j], hw[j], "{} step {t} element {j}", T::DTYPE);
        }
    }
}

#[test]
fn adam_in_f32_and_f64_is_the_same_arithmetic() {
    adam_generic::<f32>();
    adam_generic::<f64>();
}

#[test]
fn momentum_style_default_is_explicit() {
    assert_eq!(MomentumConfig::pytorch(0.1).style, MomentumStyle::PyTorch);
    assert_eq!(MomentumConfig::keras(0.1).style, MomentumStyle::Keras);
}

#[test]
fn tiny_state_is_flushed_to_zero_so_no_product_of_it_is_subnormal() {
    // A gradient that stops: Adam's first moment then decays by β₁ = 0.9 a step and would
    // pass through the range where m·α (α = η·√bc2/bc1, about η late in training) is
    // subnormal, then through the subnormal range itself (f32 below 1.18e-38), on its way
    // to zero.
    let lr = 1e-3;
    let mut w = Tensor::<f32>::from_vec(vec![1.0], [1]).unwrap();
    let mut adam = Adam::<f32>::keras(lr).unwrap();
    // The floor at step t: 2·1.18e-38/α (about 3e-35 here).
    let floor = |alpha: f32| 2.0 * f32::MIN_POSITIVE / alpha;
    let (mut last, mut flushed) = (0f32, false);
    for step in 0..1200 {
        let g = if step == 0 { 1e-3f32 } else { 0.0 };
        let grad = Tensor::from_vec(vec![g], [1]).unwrap();
        adam.step_with_grads(&mut [("w".to_string(), &mut w)], &[Some(grad)])
            .unwrap();
        let m = adam.state().params[0].buffers[0][0];
        let t = f64::from(step + 1);
        let alpha = (lr * (1.0 - 0.999f64.powf(t)).sqrt() / (1.0 - 0.9f64.powf(t))) as f32;
        for (what, x) in [("m", m), ("β₁·m", 0.9 * m), ("m·α", m * alpha)] {
            assert!(
                x == 0.0 || x.abs() >= f32::MIN_POSITIVE,
                "step {step}: {what} = {x:e} is subnormal"
            );
        }
        if m != 0.0 {
            assert!(
                m.abs() >= floor(alpha) * 0.999,
                "step {step}: m = {m:e} kept below the floor"
            );
            last = m;
        } else if step > 0 && !flushed {
            // Flushed at the first step whose decayed value falls below the floor, not
            // before: the previous value was kept, and its decay is under this step's floor.
            flushed = true;
            let m_prev = last;
            assert!(
                0.9 * m_prev.abs() < floor(alpha) * 1.001,
                "step {step}: m = {m_prev:e} flushed early (floor {:e})",
                floor(alpha)
            );
            assert!(m_prev.abs() < 1e-34, "m decayed to the floor first: {m_prev:e}");
        }
    }
    assert!(flushed, "m reaches zero");
    assert_eq!(adam.state().params[0].buffers[0][0], 0.0);
}

/// A parameter large enough to be updated in pieces on rayon's pool gets the bits of the
/// one-thread update, for every rule (with clipping, which folds a scale into the update).
#[test]
fn split_updates_match_the_serial_update() {
    let n = (1 << 19) + 12_345; // above the split threshold, with a short last piece
    let run = |threads: usize| -> Vec<(&str, Vec<f32>)> {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            crate::every_rule()
                .into_iter()
                .map(|(name, mut opt)| {
                    let mut p: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
                    for step in 0..3 {
                        let g: Vec<f32> = (0..n).map(|i| ((i + step) as f32 * 0.11).cos()).collect();
                        opt.step_slices(&mut [("p", &mut p[..], Some(&g[..]))]).unwrap();
                    }
                    (name, p)
                })
                .collect()
        })
    };
    let (serial, split) = (run(1), run(2));
    for ((name, s), (_, p)) in serial.iter().zip(&split) {
        assert!(s.iter().zip(p).all(|(a, b)| a.to_bits() == b.to_bits()), "{name}");
    }
}
