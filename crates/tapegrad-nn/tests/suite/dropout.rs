//! Dropout: statistics, scaling, modes, reproducibility, gradients.

use tapegrad_core::{gradcheck, Tensor};
use tapegrad_nn::{Dropout, Module};

#[test]
fn kept_fraction_is_binomial_and_scale_is_inverse_keep() {
    let n = 100_000usize;
    for p in [0.1, 0.3, 0.5, 0.9] {
        let mut d = Dropout::<f64>::new(p, 42).unwrap();
        let x = Tensor::ones([n]).unwrap();
        let y = d.forward(&x).unwrap();
        let scale = 1.0 / (1.0 - p);
        let kept = y.data().iter().filter(|&&v| v != 0.0).count();
        assert!(y.data().iter().all(|&v| v == 0.0 || v == scale), "p={p}");
        // Kept count ~ Binomial(n, 1 − p): within 5σ.
        let (mean, sigma) = (n as f64 * (1.0 - p), (n as f64 * p * (1.0 - p)).sqrt());
        assert!(
            (kept as f64 - mean).abs() < 5.0 * sigma,
            "p={p}: kept {kept}, expected {mean} ± {sigma}"
        );
        // The keep mask agrees with the output.
        let mask = d.last_mask().unwrap();
        assert!(mask
            .data()
            .iter()
            .zip(y.data())
            .all(|(&m, &v)| (m == 1.0) == (v != 0.0)));
        // E[y] = x.
        let avg = y.data().iter().sum::<f64>() / n as f64;
        assert!(
            (avg - 1.0).abs() < 5.0 * (p / (1.0 - p) / n as f64).sqrt(),
            "p={p}: mean {avg}"
        );
    }
}

#[test]
fn eval_mode_is_the_identity() {
    let mut d = Dropout::<f32>::new(0.5, 1).unwrap();
    d.eval();
    assert!(!d.is_training());
    let x = Tensor::<f32>::from_vec(vec![1.0, -2.0, 3.0], [3])
        .unwrap()
        .requires_grad();
    let y = d.forward(&x).unwrap();
    assert_eq!(y.to_vec(), x.to_vec());
    assert_eq!(
        y.backward_with(&Tensor::ones([3]).unwrap(), false)
            .unwrap()
            .wrt(&x)
            .unwrap()
            .to_vec(),
        vec![1.0; 3]
    );
    d.train(true);
    assert!(d.is_training());
    // p = 0 is the identity even in training.
    let mut zero = Dropout::<f32>::new(0.0, 1).unwrap();
    assert_eq!(zero.forward(&x).unwrap().to_vec(), x.to_vec());
}

#[test]
fn same_seed_same_masks_and_masks_change_between_calls() {
    let x = Tensor::<f64>::ones([64, 16]).unwrap();
    let mut a = Dropout::new(0.4, 9).unwrap();
    let mut b = Dropout::new(0.4, 9).unwrap();
    let mut c = Dropout::new(0.4, 10).unwrap();
    let (a1, b1, c1) = (a.forward(&x).unwrap(), b.forward(&x).unwrap(), c.forward(&x).unwrap());
    assert_eq!(a1.to_vec(), b1.to_vec());
    assert_ne!(a1.to_vec(), c1.to_vec());
    let a2 = a.forward(&x).unwrap();
    assert_ne!(a1.to_vec(), a2.to_vec(), "a new mask per forward");
    assert_eq!(a2.to_vec(), b.forward(&x).unwrap().to_vec());
}

#[test]
fn masks_are_the_draws_of_random_bool() {
    // The layer draws its words a block at a time; the keep decisions are those of
    // `rng.random_bool(1 − p)` on the same seeded generator, element by element (also
    // across a block boundary and for a length that is not a multiple of the block; for a
    // mask large enough to be drawn in pieces on the pool, twice, so the generator's state
    // after it is checked too; and for a p so small that 1 − p rounds to 1, which keeps all).
    use rand::{rngs::StdRng, Rng, SeedableRng};
    let cases = [
        (0.4, 9u64, 3000usize),
        (0.5, 1, 1024),
        (0.2, 77, 5),
        (0.3, 5, 300_001),
        (1e-20, 3, 10),
    ];
    for (p, seed, n) in cases {
        let mut d = Dropout::<f32>::new(p, seed).unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..2 {
            d.forward(&Tensor::ones([n]).unwrap()).unwrap();
            let want: Vec<f32> = (0..n)
                .map(|_| if rng.random_bool(1.0 - p) { 1.0 } else { 0.0 })
                .collect();
            assert_eq!(d.last_mask().unwrap().to_vec(), want, "p {p} seed {seed} n {n}");
        }
    }
}

#[test]
fn invalid_probabilities_are_rejected() {
    for p in [1.0, 1.5, -0.1, f64::NAN] {
        let err = Dropout::<f32>::new(p, 0).unwrap_err().to_string();
        assert!(err.contains("[0, 1)"), "{err}");
    }
}

#[test]
fn fixed_mask_gradcheck_and_validation() {
    let x = Tensor::<f64>::from_vec(vec![0.3, -0.8, 1.1, 0.45, 0.2, -1.3], [2, 3]).unwrap();
    let mask = Tensor::from_vec(vec![1.0, 0.0, 1.0, 1.0, 1.0, 0.0], [2, 3]).unwrap();
    let mut d = Dropout::new(0.25, 0).unwrap();
    d.set_fixed_mask(Some(mask.clone())).unwrap();
    let y = d.forward(&x).unwrap().to_vec();
    let want: Vec<f64> = x.data().iter().zip(mask.data()).map(|(a, m)| a * m / 0.75).collect();
    assert_eq!(y, want);
    assert_eq!(d.last_mask().unwrap().to_vec(), mask.to_vec());
    let d = std::cell::RefCell::new(d);
    gradcheck(|xs| d.borrow_mut().forward(&xs[0]), &[x]).unwrap();
    let mut d = d.into_inner();
    assert!(
        d.forward(&Tensor::ones([3, 2]).unwrap()).is_err(),
        "mask of another shape"
    );
    assert!(d.set_fixed_mask(Some(Tensor::full([2, 3], 0.5).unwrap())).is_err());
    d.set_fixed_mask(None).unwrap();
    assert!(d.forward(&Tensor::ones([3, 2]).unwrap()).is_ok());
}
