//! The seed's model learns: one epoch on the first 10,000 training images reaches at least
//! 90% on the 10,000 test images, and a seeded run repeats exactly.

use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::Path;
use tapegrad_core::Result;
use tapegrad_core::Tensor;
use tapegrad_nn::{loss, Activation, Dense, Dropout, Flatten, Reduction, Sequential};
use tapegrad_optim::Adam;
use tapegrad_train::{evaluate, fit, FitConfig, Metric, Mnist, Targets, Verbosity};

fn ce(out: &Tensor<f32>, y: &Targets<f32>) -> Result<Tensor<f32>> {
    loss::sparse_categorical_cross_entropy_with_logits(out, y.classes()?, Reduction::Mean)
}

fn seed_model(seed: u64) -> Result<Sequential<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    Ok(Sequential::new()
        .add(Flatten)
        .add(Dense::new(784, 128, &mut rng)?.with_activation(Activation::Relu))
        .add(Dropout::new(0.2, seed + 1)?)
        .add(Dense::new(128, 10, &mut rng)?))
}

#[test]
fn one_epoch_on_10k_images_reaches_90_percent() -> Result<()> {
    let mnist = Mnist::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist"))?;
    let train = mnist.train.take(10_000);
    let run = |seed| -> Result<(f64, Vec<f32>)> {
        let mut model = seed_model(seed)?;
        let mut adam = Adam::keras_default()?;
        let config = FitConfig {
            epochs: 1,
            verbosity: Verbosity::Silent,
            metrics: vec![Metric::accuracy()],
            ..FitConfig::default()
        };
        let history = fit(&mut model, &mut adam, ce, &train, config)?;
        assert_eq!(history.epochs.len(), 1);
        assert!(history.series("accuracy")[0] > 0.8, "{:?}", history.epochs[0].logs);
        let acc = evaluate(&mut model, &mnist.test, ce, &[Metric::accuracy()], 500)?
            .get("accuracy")
            .unwrap();
        let w = tapegrad_nn::Module::parameters(&model)[0].1.to_vec();
        Ok((acc, w))
    };
    let (acc, w1) = run(0)?;
    assert!(acc >= 0.90, "test accuracy after one epoch on 10k images: {acc}");
    let (acc2, w2) = run(0)?;
    assert_eq!((acc, w1), (acc2, w2), "a seeded run must repeat bit for bit");
    Ok(())
}
