//! Losses: values against independent scalar references and published examples,
//! gradchecks, stability at ±1e4, reductions and errors.

use tapegrad_core::{gradcheck, IndexTensor, Tensor};
use tapegrad_nn::loss::{self, Reduction, EPSILON};

fn t(data: &[f64], shape: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(data.to_vec(), shape).unwrap()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-300)
}

fn assert_close(got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!(close(*g, *w, rel), "got {got:?}, want {want:?}");
    }
}

const REDUCTIONS: [Reduction; 3] = [Reduction::Mean, Reduction::Sum, Reduction::None];

// Independent scalar references (plain formulas, no tensor ops).
fn ref_sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}
fn ref_bce(p: f64, y: f64) -> f64 {
    let p = p.clamp(EPSILON, 1.0 - EPSILON);
    -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
}
fn ref_log_sigmoid(z: f64) -> f64 {
    // ln σ(z), without the cancellation of ln(1 − σ(−z)) for large |z|.
    if z > 0.0 {
        -(-z).exp().ln_1p()
    } else {
        z - z.exp().ln_1p()
    }
}
fn ref_bce_logits(z: f64, y: f64) -> f64 {
    // 1 − σ(z) = σ(−z).
    -(y * ref_log_sigmoid(z) + (1.0 - y) * ref_log_sigmoid(-z))
}
fn ref_ce_logits(row: &[f64], target: &[f64]) -> f64 {
    let lse = row.iter().map(|z| z.exp()).sum::<f64>().ln();
    -row.iter().zip(target).map(|(z, y)| y * (z - lse)).sum::<f64>()
}
fn ref_cce_probs(row: &[f64], target: &[f64]) -> f64 {
    let s: f64 = row.iter().sum();
    -row.iter()
        .zip(target)
        .map(|(p, y)| y * (p / s).clamp(EPSILON, 1.0 - EPSILON).ln())
        .sum::<f64>()
}

fn reduce(per: &[f64], r: Reduction) -> Vec<f64> {
    match r {
        Reduction::Mean => vec![per.iter().sum::<f64>() / per.len() as f64],
        Reduction::Sum => vec![per.iter().sum()],
        Reduction::None => per.to_vec(),
    }
}

#[test]
fn mse_and_mae_values() {
    let p = t(&[1.0, 2.5, -1.0, 0.0], &[2, 2]);
    let y = t(&[0.0, 2.0, 1.0, 0.0], &[2, 2]);
    for r in REDUCTIONS {
        assert_close(
            &loss::mse(&p, &y, r).unwrap().to_vec(),
            &reduce(&[1.0, 0.25, 4.0, 0.0], r),
            1e-15,
        );
        assert_close(
            &loss::mae(&p, &y, r).unwrap().to_vec(),
            &reduce(&[1.0, 0.5, 2.0, 0.0], r),
            1e-15,
        );
    }
    assert_eq!(loss::mse(&p, &y, Reduction::None).unwrap().dims(), &[2, 2]);
    assert_eq!(loss::mse(&p, &y, Reduction::default()).unwrap().item().unwrap(), 1.3125);
}

#[test]
fn binary_cross_entropy_values() {
    let probs = [0.8, 0.3, 1e-9, 1.0, 0.5, 0.999];
    let ys = [1.0, 0.0, 1.0, 0.0, 1.0, 0.25];
    let per: Vec<f64> = probs.iter().zip(&ys).map(|(&p, &y)| ref_bce(p, y)).collect();
    // Hand values: −ln 0.8, −ln 0.7, and the clamped extremes −ln ε.
    assert!(close(per[0], 0.2231435513142097, 1e-15) && close(per[1], 0.35667494393873245, 1e-15));
    assert!(close(per[2], 16.11809565095832, 1e-12) && close(per[3], 16.11809565095832, 1e-6));
    for r in REDUCTIONS {
        let got = loss::binary_cross_entropy(&t(&probs, &[2, 3]), &t(&ys, &[2, 3]), r).unwrap();
        assert_close(&got.to_vec(), &reduce(&per, r), 1e-12);
    }
}

#[test]
fn binary_cross_entropy_with_logits_values() {
    let zs = [0.0, 2.0, -3.0, 0.5, 10.0, -10.0];
    let ys = [1.0, 0.0, 1.0, 0.3, 1.0, 0.0];
    let per: Vec<f64> = zs.iter().zip(&ys).map(|(&z, &y)| ref_bce_logits(z, y)).collect();
    assert!(close(per[0], std::f64::consts::LN_2, 1e-15));
    // The naive form agrees where it has no cancellation.
    let s = ref_sigmoid(0.5);
    assert!(close(per[3], -(0.3 * s.ln() + 0.7 * (1.0 - s).ln()), 1e-14));
    for r in REDUCTIONS {
        let got = loss::binary_cross_entropy_with_logits(&t(&zs, &[6]), &t(&ys, &[6]), r).unwrap();
        // max(z, 0) − z·y + ln(1 + e^−|z|) cancels ~1e-11 relative at z = 10, y = 1.
        assert_close(&got.to_vec(), &reduce(&per, r), 1e-9);
    }
}

#[test]
fn categorical_cross_entropy_values() {
    let logits = [1.0, 2.0, 3.0, -0.5, 0.25, 4.0];
    let target = [0.0, 0.0, 1.0, 0.2, 0.5, 0.3];
    let per = [
        ref_ce_logits(&logits[..3], &target[..3]),
        ref_ce_logits(&logits[3..], &target[3..]),
    ];
    assert!(close(per[0], 0.40760596444437994, 1e-14)); // ln(1 + e⁻¹ + e⁻²)
    for r in REDUCTIONS {
        let got = loss::categorical_cross_entropy_with_logits(&t(&logits, &[2, 3]), &t(&target, &[2, 3]), r).unwrap();
        assert_close(&got.to_vec(), &reduce(&per, r), 1e-13);
    }
    // From probabilities, unnormalised rows included (Keras normalises them).
    let probs = [0.2, 0.5, 0.3, 1.0, 2.0, 1.0];
    let per = [
        ref_cce_probs(&probs[..3], &target[..3]),
        ref_cce_probs(&probs[3..], &target[3..]),
    ];
    assert!(close(per[0], -(0.3f64.ln()), 1e-15));
    for r in REDUCTIONS {
        let got = loss::categorical_cross_entropy(&t(&probs, &[2, 3]), &t(&target, &[2, 3]), r).unwrap();
        assert_close(&got.to_vec(), &reduce(&per, r), 1e-13);
    }
}

#[test]
fn keras_documented_example() {
    // keras.losses.(Sparse)CategoricalCrossentropy docs: y_true = [1, 2] (one-hot
    // [[0,1,0],[0,0,1]]), y_pred = [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
    // → per-sample [0.0513, 2.3026], mean 1.1769392.
    let p = t(&[0.05, 0.95, 0.0, 0.1, 0.8, 0.1], &[2, 3]);
    let onehot = t(&[0.0, 1.0, 0.0, 0.0, 0.0, 1.0], &[2, 3]);
    let want = [-(0.95f64.ln()), -(0.1f64.ln())];
    let sparse = loss::sparse_categorical_cross_entropy(&p, &[1, 2], Reduction::None)
        .unwrap()
        .to_vec();
    let dense = loss::categorical_cross_entropy(&p, &onehot, Reduction::None)
        .unwrap()
        .to_vec();
    assert_close(&sparse, &want, 1e-12);
    assert_close(&dense, &want, 1e-12);
    assert!(close(sparse[0], 0.05129329438755058, 1e-12) && close(sparse[1], 2.3025850929940455, 1e-12));
    let mean = loss::sparse_categorical_cross_entropy(&p, &[1, 2], Reduction::Mean)
        .unwrap()
        .item()
        .unwrap();
    assert!(close(mean, 1.1769392, 1e-6), "{mean}");
    // f32 too, against the float32 numbers Keras prints.
    let p32: Tensor<f32> = p.cast();
    let m32 = loss::sparse_categorical_cross_entropy(&p32, &[1, 2], Reduction::Mean)
        .unwrap()
        .item()
        .unwrap();
    assert!((m32 as f64 - 1.1769392).abs() < 1e-6 * 1.18, "{m32}");
}

#[test]
fn sparse_cross_entropy_from_logits_values_and_fused_gradient() {
    let logits = [1.0, 2.0, 3.0, -0.5, 0.25, 4.0, 0.0, 0.0, 0.0, 7.0, -7.0, 1.5];
    let labels = [2usize, 0, 1, 1];
    let per: Vec<f64> = labels
        .iter()
        .enumerate()
        .map(|(i, &y)| {
            let mut onehot = [0.0; 3];
            onehot[y] = 1.0;
            ref_ce_logits(&logits[3 * i..3 * i + 3], &onehot)
        })
        .collect();
    assert!(close(per[2], 3f64.ln(), 1e-15));
    let z = t(&logits, &[4, 3]);
    for r in REDUCTIONS {
        let got = loss::sparse_categorical_cross_entropy_with_logits(&z, &labels, r).unwrap();
        assert_close(&got.to_vec(), &reduce(&per, r), 1e-13);
        assert_close(
            &loss::sparse_categorical_cross_entropy_with_logits(&z, &labels, r)
                .unwrap()
                .to_vec(),
            &reduce(&per, r),
            1e-13,
        );
    }
    // ∂L/∂z = (softmax(z) − onehot(y)) / N.
    let z = z.requires_grad();
    let g = loss::sparse_categorical_cross_entropy_with_logits(&z, &labels, Reduction::Mean)
        .unwrap()
        .backward()
        .unwrap()
        .wrt(&z)
        .unwrap();
    for (i, &y) in labels.iter().enumerate() {
        let row = &logits[3 * i..3 * i + 3];
        let s: f64 = row.iter().map(|v| v.exp()).sum();
        for (c, z) in row.iter().enumerate() {
            let want = (z.exp() / s - if c == y { 1.0 } else { 0.0 }) / 4.0;
            assert!((g.data()[3 * i + c] - want).abs() < 1e-15, "row {i} class {c}");
        }
    }
    // Labels as an IndexTensor, and higher-rank scores [B, T, C].
    let idx = IndexTensor::from_vec(labels.to_vec(), [2, 2]).unwrap();
    let z3 = t(&logits, &[2, 2, 3]);
    let got = loss::sparse_categorical_cross_entropy_with_logits(&z3, &idx, Reduction::None).unwrap();
    assert_eq!(got.dims(), &[2, 2]);
    assert_close(&got.to_vec(), &per, 1e-13);
}

type LossFn = fn(&[Tensor<f64>], Reduction) -> tapegrad_core::Result<Tensor<f64>>;

#[test]
fn every_loss_gradchecks() {
    let pred = t(&[0.3, -0.8, 1.1, 0.45, 0.2, -1.3], &[2, 3]);
    let target = t(&[0.1, -0.5, 1.6, 0.0, 0.9, -1.0], &[2, 3]);
    let probs = t(&[0.2, 0.7, 0.4, 0.55, 0.9, 0.15], &[2, 3]);
    let soft = t(&[0.1, 0.6, 0.3, 0.0, 0.0, 1.0], &[2, 3]);
    let bin = t(&[1.0, 0.0, 0.3, 1.0, 0.0, 0.75], &[2, 3]);
    // Inputs away from the kinks (|p − y| > 0) and inside the clamp range [ε, 1 − ε];
    // targets are differentiated too where the loss is smooth in them.
    let cases: [(&str, LossFn, Vec<Tensor<f64>>); 8] = [
        (
            "mse",
            |xs, r| loss::mse(&xs[0], &xs[1], r),
            vec![pred.clone(), target.clone()],
        ),
        (
            "mae",
            |xs, r| loss::mae(&xs[0], &xs[1], r),
            vec![pred.clone(), target.clone()],
        ),
        (
            "bce",
            |xs, r| loss::binary_cross_entropy(&xs[0], &xs[1], r),
            vec![probs.clone(), bin.clone()],
        ),
        (
            "bce logits",
            |xs, r| loss::binary_cross_entropy_with_logits(&xs[0], &xs[1], r),
            vec![pred.clone(), bin.clone()],
        ),
        (
            "cce",
            |xs, r| loss::categorical_cross_entropy(&xs[0], &xs[1], r),
            vec![probs.clone(), soft.clone()],
        ),
        (
            "cce logits",
            |xs, r| loss::categorical_cross_entropy_with_logits(&xs[0], &xs[1], r),
            vec![pred.clone(), soft.clone()],
        ),
        (
            "sparse",
            |xs, r| loss::sparse_categorical_cross_entropy(&xs[0], &[1, 0], r),
            vec![probs.clone()],
        ),
        (
            "sparse logits",
            |xs, r| loss::sparse_categorical_cross_entropy_with_logits(&xs[0], &[2, 0], r),
            vec![pred.clone()],
        ),
    ];
    for (name, f, inputs) in &cases {
        for r in REDUCTIONS {
            if let Err(e) = gradcheck(|xs| f(xs, r), inputs) {
                panic!("{name} {r:?}: {e}");
            }
        }
    }
}

#[test]
fn huge_logits_stay_finite() {
    fn check<T: tapegrad_core::Element>() {
        let c = |v: f64| T::from_f64_lossy(v);
        let z = Tensor::<T>::from_vec(vec![c(1e4), c(-1e4), c(0.0), c(-1e4), c(1e4), c(1e4)], [2, 3])
            .unwrap()
            .requires_grad();
        let onehot = Tensor::from_vec(vec![c(0.0), c(1.0), c(0.0), c(1.0), c(0.0), c(0.0)], [2, 3]).unwrap();
        let bin = Tensor::from_vec(vec![c(0.0), c(1.0), c(1.0), c(0.0), c(1.0), c(0.0)], [2, 3]).unwrap();
        let losses = [
            loss::sparse_categorical_cross_entropy_with_logits(&z, &[1, 0], Reduction::None).unwrap(),
            loss::categorical_cross_entropy_with_logits(&z, &onehot, Reduction::None).unwrap(),
            loss::binary_cross_entropy_with_logits(&z, &bin, Reduction::None).unwrap(),
            loss::sparse_categorical_cross_entropy(&z.softmax(-1).unwrap(), &[1, 0], Reduction::None).unwrap(),
            loss::binary_cross_entropy(&z.sigmoid(), &bin, Reduction::None).unwrap(),
        ];
        for l in &losses {
            assert!(l.data().iter().all(|v| v.is_finite()), "{} {l:?}", T::DTYPE);
            let g = l.sum_all().backward().unwrap().wrt(&z).unwrap();
            assert!(g.data().iter().all(|v| v.is_finite()), "{} {g:?}", T::DTYPE);
        }
        // Row 0, label 1: a class 2e4 below the best costs 2e4. Row 1, label 0: the best
        // two classes tie at 1e4, so the cost is 2e4 + ln 2.
        let ln2 = std::f64::consts::LN_2;
        let ce: Vec<f64> = losses[0].data().iter().map(|v| v.as_f64()).collect();
        assert_eq!(ce[0], 2e4);
        assert!(close(ce[1], 2e4 + ln2, 1e-6), "{}", ce[1]);
        // softplus(z) − z·y: e.g. z = 1e4, y = 0 costs 1e4; z = −1e4, y = 0 costs 0.
        let bce: Vec<f64> = losses[2].data().iter().map(|v| v.as_f64()).collect();
        assert_eq!(bce[..2], [1e4, 1e4]);
        assert!(close(bce[2], ln2, 1e-6));
        assert_eq!(bce[3..], [0.0, 0.0, 1e4]);
        // Clamped probabilities: a confidently wrong prediction costs −ln ε.
        let sp = losses[3].to_vec();
        assert!(
            (sp[0].as_f64() - 16.11809565095832).abs() < 1e-2 && sp[0].as_f64() > 15.9,
            "{}",
            sp[0]
        );
    }
    check::<f32>();
    check::<f64>();
}

#[test]
fn labels_are_validated() {
    let z = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let err = loss::sparse_categorical_cross_entropy_with_logits(&z, &[0, 5], Reduction::Mean)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("label 5") && err.contains("3 classes") && err.contains("sample 1"),
        "{err}"
    );
    let err = loss::sparse_categorical_cross_entropy(&z, &[3, 0], Reduction::Mean)
        .unwrap_err()
        .to_string();
    assert!(err.contains("label 3") && err.contains("3 classes"), "{err}");
    let err = loss::sparse_categorical_cross_entropy_with_logits(&z, &[0, 1, 2], Reduction::Mean)
        .unwrap_err()
        .to_string();
    assert!(err.contains("3 labels") && err.contains("[2, 3]"), "{err}");
    let idx = IndexTensor::from_vec(vec![0, 1], [1, 2]).unwrap();
    assert!(loss::sparse_categorical_cross_entropy_with_logits(&z, &idx, Reduction::Mean).is_err());
    let v: Vec<usize> = vec![0, 2];
    assert!(loss::sparse_categorical_cross_entropy_with_logits(&z, &v, Reduction::Mean).is_ok());
    assert!(loss::sparse_categorical_cross_entropy_with_logits(&z, &v[..], Reduction::Mean).is_ok());
}

#[test]
fn shapes_must_match_exactly() {
    let a = t(&[1.0, 2.0, 3.0], &[3]);
    let b = t(&[1.0, 2.0, 3.0], &[3, 1]);
    for err in [
        loss::mse(&a, &b, Reduction::Mean).unwrap_err(),
        loss::mae(&a, &b, Reduction::Mean).unwrap_err(),
        loss::binary_cross_entropy_with_logits(&a, &b, Reduction::Mean).unwrap_err(),
        loss::categorical_cross_entropy(&a, &b, Reduction::Mean).unwrap_err(),
    ] {
        let msg = err.to_string();
        assert!(msg.contains("[3]") && msg.contains("[3, 1]"), "{msg}");
    }
}
