//! The CNN of `examples/mnist_cnn.rs` (Keras's simple MNIST convnet) learns: its loss
//! falls within a few steps, and three epochs on 2,000 training images reach at least 90%
//! on 1,000 test images.

use std::path::Path;
use tapegrad_core::{Result, Tensor};
use tapegrad_nn::loss::{sparse_categorical_cross_entropy_with_logits, Reduction};
use tapegrad_nn::{
    Activation, Conv2d, Dense, Dropout, Flatten, MaxPool2d, Module, Reshape, SeedableRng, Sequential, StdRng,
};
use tapegrad_optim::{Adam, Optimizer};
use tapegrad_train::{evaluate, fit, FitConfig, Metric, Mnist, Targets, Verbosity};

fn ce(out: &Tensor<f32>, y: &Targets<f32>) -> Result<Tensor<f32>> {
    sparse_categorical_cross_entropy_with_logits(out, y.classes()?, Reduction::Mean)
}

fn convnet(seed: u64) -> Result<Sequential<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    Ok(Sequential::new()
        .add(Reshape::new(&[1, 28, 28]))
        .add(Conv2d::new(1, 32, [3, 3], &mut rng)?.with_activation(Activation::Relu))
        .add(MaxPool2d::new([2, 2]))
        .add(Conv2d::new(32, 64, [3, 3], &mut rng)?.with_activation(Activation::Relu))
        .add(MaxPool2d::new([2, 2]))
        .add(Flatten)
        .add(Dropout::new(0.5, seed + 1)?)
        .add(Dense::new(64 * 5 * 5, 10, &mut rng)?))
}

fn mnist() -> Result<Mnist> {
    Mnist::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist"))
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
    let acc = evaluate(&mut model, &test, ce, &[Metric::accuracy()], 250)?
        .get("accuracy")
        .unwrap_or(f64::NAN);
    eprintln!("CNN, 3 epochs on 2,000 images: test accuracy {acc:.4}");
    assert!(acc >= 0.90, "test accuracy {acc}");
    Ok(())
}
