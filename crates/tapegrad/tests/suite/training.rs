//! The examples' models learn, built by the examples' own code (`examples/common`): the
//! seed's MLP reaches 90% after one epoch on 10,000 training images and a seeded run repeats
//! bit for bit; the CNN of `examples/mnist_cnn.rs` (Keras's simple MNIST convnet) lowers its
//! loss within a few steps and reaches 90% after three epochs on 2,000 images.

use crate::common::{convnet, seed_mlp};
use std::path::Path;
use tapegrad::prelude::*;

fn ce(out: &Tensor<f32>, y: &Targets<f32>) -> Result<Tensor<f32>> {
    loss::sparse_categorical_cross_entropy_with_logits(out, y.classes()?, Reduction::Mean)
}

fn mnist() -> Result<Mnist> {
    Mnist::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist"))
}

fn accuracy(model: &mut Sequential<f32>, test: &Dataset, batch: usize) -> Result<f64> {
    Ok(evaluate(model, test, ce, &[Metric::accuracy()], batch)?
        .get("accuracy")
        .unwrap_or(f64::NAN))
}

#[test]
fn seed_mlp_one_epoch_on_10k_images_reaches_90_percent() -> Result<()> {
    let data = mnist()?;
    let train = data.train.take(10_000);
    let run = |seed: u64| -> Result<(f64, Vec<f32>)> {
        let mut model = seed_mlp(128, &mut StdRng::seed_from_u64(seed), seed + 1)?;
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
        let acc = accuracy(&mut model, &data.test, 500)?;
        let w = model.parameters()[0].1.to_vec();
        Ok((acc, w))
    };
    let (acc, w1) = run(0)?;
    assert!(acc >= 0.90, "test accuracy after one epoch on 10k images: {acc}");
    let (acc2, w2) = run(0)?;
    assert_eq!((acc, w1), (acc2, w2), "a seeded run must repeat bit for bit");
    Ok(())
}

#[test]
fn cnn_loss_falls_within_a_few_steps() -> Result<()> {
    let data = mnist()?;
    let batch = data.train.batch::<f32>(&(0..64).collect::<Vec<_>>())?;
    let mut model = convnet(0)?;
    let mut adam = Adam::keras_default()?;
    let mut losses = Vec::new();
    for _ in 0..8 {
        let loss = ce(&model.forward(&batch.x)?, &batch.y)?;
        losses.push(loss.item()?);
        let grads = loss.backward()?;
        adam.step(&mut model.trainable_parameters_mut(), &grads)?;
    }
    assert!(losses[7] < 0.92 * losses[0], "losses {losses:?}");
    Ok(())
}

#[test]
fn cnn_on_2000_images_reaches_90_percent() -> Result<()> {
    let data = mnist()?;
    let train = data.train.take(2_000);
    let test = data.test.take(1_000);
    let mut model = convnet(0)?;
    let mut adam = Adam::keras_default()?;
    let config = FitConfig {
        epochs: 3,
        batch_size: 32,
        verbosity: Verbosity::Silent,
        ..FitConfig::default()
    };
    let history = fit(&mut model, &mut adam, ce, &train, config)?;
    let losses = history.series("loss");
    assert!(losses[2] < losses[0], "losses {losses:?}");
    let acc = accuracy(&mut model, &test, 250)?;
    eprintln!("CNN, 3 epochs on 2,000 images: test accuracy {acc:.4}");
    assert!(acc >= 0.90, "test accuracy {acc}");
    Ok(())
}
