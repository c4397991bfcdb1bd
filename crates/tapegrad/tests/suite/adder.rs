//! The transformer of `examples/transformer_adder.rs` (minGPT's adder: token + positional
//! embeddings → 2 causal pre-norm blocks → LayerNorm → Dense to 10 digit logits, built by
//! `examples/common`), smaller, learns 2-digit addition: within 60 AdamW steps its loss on
//! the sum's digits falls well below the ln 10 of a uniform guess; and it is causal, so the
//! sum digits it is fed during training (teacher forcing) never leak into the predictions
//! of earlier positions.

use crate::common::Adder;
use tapegrad::prelude::*;

const N: usize = 2; // digits per operand

/// `batch` random pairs as inputs `[B, 3N]` (digits of a, of b, the first N sum digits,
/// least significant first) and the N + 1 sum digits each pair's last positions predict.
fn batch(rng: &mut StdRng, batch: usize) -> Result<(Tensor<f32>, Vec<usize>)> {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for _ in 0..batch {
        let (a, b) = (rng.random_range(0..100usize), rng.random_range(0..100usize));
        let sum = a + b;
        let seq = [a / 10, a % 10, b / 10, b % 10, sum % 10, sum / 10 % 10, sum / 100];
        x.extend(seq[..3 * N].iter().map(|&d| d as f32));
        y.extend_from_slice(&seq[2 * N..]);
    }
    Ok((Tensor::from_vec(x, [batch, 3 * N])?, y))
}

/// Cross-entropy over the N + 1 positions that predict the sum (2N − 1 .. 3N).
fn sum_loss(logits: &Tensor<f32>, labels: &[usize]) -> Result<Tensor<f32>> {
    let sum_logits = logits.narrow(1, 2 * N - 1, N + 1)?;
    loss::sparse_categorical_cross_entropy_with_logits(&sum_logits, labels, Reduction::Mean)
}

#[test]
fn adder_loss_falls_within_60_steps() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(0);
    let mut model = Adder::new(3 * N, 32, 4, &mut rng)?;
    let mut adam = AdamW::pytorch(3e-3)?;
    let mut losses = Vec::new();
    for _ in 0..60 {
        let (x, y) = batch(&mut rng, 64)?;
        let loss = sum_loss(&model.forward(&x)?, &y)?;
        losses.push(loss.item()?);
        let grads = loss.backward()?;
        drop(loss);
        adam.step(&mut model.trainable_parameters_mut(), &grads)?;
    }
    let (first, last) = (losses[0], losses[55..].iter().sum::<f32>() / 5.0);
    // A uniform guess costs ln 10 ≈ 2.30 per digit; the untrained model does no better,
    // and 60 steps take the loss well below both (seed 0: 2.79 → 1.54).
    assert!(first > 10f32.ln() - 0.1, "first loss {first}");
    assert!(last < 0.7 * first && last < 0.75 * 10f32.ln(), "losses {losses:?}");
    Ok(())
}

#[test]
fn adder_predictions_do_not_see_later_tokens() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(1);
    let mut model = Adder::new(3 * N, 32, 4, &mut rng)?;
    let (x, _) = batch(&mut rng, 8)?;
    let before = model.forward(&x)?.to_vec();
    // Change only the tokens at the last position (a sum digit fed back in training).
    let mut changed = x.to_vec();
    for row in changed.chunks_mut(3 * N) {
        row[3 * N - 1] = (row[3 * N - 1] + 1.0) % 10.0;
    }
    let after = model.forward(&Tensor::from_vec(changed, [8, 3 * N])?)?.to_vec();
    for (i, (b, a)) in before.chunks(10).zip(after.chunks(10)).enumerate() {
        if i % (3 * N) == 3 * N - 1 {
            assert_ne!(b, a, "row {i}: the last position must see its own token");
        } else {
            assert_eq!(b, a, "row {i}: an earlier position saw a later token");
        }
    }
    Ok(())
}
