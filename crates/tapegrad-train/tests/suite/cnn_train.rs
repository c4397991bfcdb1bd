//! The CNN of `examples/mnist_cnn.rs` (Keras's simple MNIST convnet) learns: its loss
//! falls within a few steps, and three epochs on 2,000 training images reach at least 90%
//! on 1,000 test images.

use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::Path;
use tapegrad_core::Result;
use tapegrad_nn::{Activation, Conv2d, Dense, Dropout, Flatten, MaxPool2d, Module, Reshape, Sequential};
use tapegrad_optim::{Adam, Optimizer};
use tapegrad_train::{evaluate, fit, sparse_categorical_cross_entropy_from_logits, FitConfig, Mnist, Verbosity};

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
    let (x, y) = data.train.batch::<f32>(&(0..64).collect::<Vec<_>>())?;
    let mut model = convnet(0)?;
    let mut adam = Adam::keras_default()?;
    let mut losses = Vec::new();
    for _ in 0..8 {
        let loss = sparse_categorical_cross_entropy_from_logits(&model.forward(&x)?, &y)?;
        losses.push(loss.item()?);
        let grads = loss.backward()?;
        let mut params: Vec<_> = model.parameters_mut().into_iter().map(|(_, p)| p).collect();
        adam.step(&mut params, &grads)?;
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
    let history = fit(&mut model, &mut adam, &train, None, &config)?;
    assert!(history.epochs[2].loss < history.epochs[0].loss);
    let (_, acc) = evaluate(
        &mut model,
        &test,
        250,
        sparse_categorical_cross_entropy_from_logits::<f32>,
    )?;
    eprintln!("CNN, 3 epochs on 2,000 images: test accuracy {acc:.4}");
    assert!(acc >= 0.90, "test accuracy {acc}");
    Ok(())
}
