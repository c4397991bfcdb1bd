//! What the examples share: their models, their command-line loop and the peak memory
//! their `RESULT` lines report. Each example includes it with `mod common;` and uses the
//! part it needs (hence `dead_code` is allowed here).
#![allow(dead_code)]

use std::fmt::Display;
use std::str::FromStr;
use tapegrad::nn::{Conv2d, Embedding, LayerNorm, MaxPool2d, Param, Reshape, TransformerBlock};
use tapegrad::prelude::*;

/// The seed's worked example: Flatten(28×28) → Dense(`hidden`, relu) → Dropout(0.2) →
/// Dense(10), weights drawn from `rng`, dropout masks seeded with `dropout_seed`.
pub fn seed_mlp(hidden: usize, rng: &mut StdRng, dropout_seed: u64) -> Result<Sequential<f32>> {
    Ok(Sequential::new()
        .add(Flatten)
        .add(Dense::new(28 * 28, hidden, rng)?.with_activation(Activation::Relu))
        .add(Dropout::new(0.2, dropout_seed)?)
        .add(Dense::new(hidden, 10, rng)?))
}

/// Keras's "simple MNIST convnet": Reshape(1×28×28) → Conv2D(32, 3×3, relu) → MaxPool(2) →
/// Conv2D(64, 3×3, relu) → MaxPool(2) → Flatten → Dropout(0.5) → Dense(10); weights from a
/// generator seeded with `seed`, dropout masks with `seed + 1`.
pub fn convnet(seed: u64) -> Result<Sequential<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    Ok(Sequential::new()
        .add(Reshape::new(&[1, 28, 28]))
        .add(Conv2d::new(1, 32, [3, 3], &mut rng)?.with_activation(Activation::Relu))
        .add(MaxPool2d::new([2, 2]))
        .add(Conv2d::new(32, 64, [3, 3], &mut rng)?.with_activation(Activation::Relu))
        .add(MaxPool2d::new([2, 2]))
        .add(Flatten)
        .add(Dropout::new(0.5, seed.wrapping_add(1))?)
        .add(Dense::new(64 * 5 * 5, 10, &mut rng)?))
}

/// The decoder-only transformer of `transformer_adder.rs` (minGPT's adder): token + learned positional embeddings, then causal
/// pre-norm blocks, a final LayerNorm and a linear head to the 10 digit logits.
pub struct Adder {
    tok_emb: Embedding<f32>,
    pos_emb: Embedding<f32>,
    body: Sequential<f32>,
}

impl Adder {
    pub fn new(max_len: usize, embed: usize, heads: usize, rng: &mut StdRng) -> Result<Self> {
        let mut body = Sequential::new();
        for _ in 0..2 {
            body = body.add(TransformerBlock::new(embed, heads, true, rng)?);
        }
        Ok(Adder {
            tok_emb: Embedding::new(10, embed, rng)?,
            pos_emb: Embedding::new(max_len, embed, rng)?,
            body: body.add(LayerNorm::new(&[embed])?).add(Dense::new(embed, 10, rng)?),
        })
    }
}

impl Module<f32> for Adder {
    /// Token ids `[N, T]` (whole numbers 0–9, `T ≤ 3n`) → logits `[N, T, 10]`.
    fn forward(&mut self, ids: &Tensor<f32>) -> Result<Tensor<f32>> {
        let max_len = self.pos_emb.weight().dims()[0];
        if ids.ndim() != 2 || ids.dims()[1] > max_len {
            return Err(Error::bad_shape(
                "Adder",
                format!("needs token ids [N, T] with T ≤ {max_len}, got {}", ids.shape()),
            ));
        }
        let t = ids.dims()[1];
        let pos = self.pos_emb.lookup(&IndexTensor::from_vec((0..t).collect(), [t])?)?;
        self.body.forward(&self.tok_emb.forward(ids)?.add(&pos)?)
    }

    fn params(&self) -> Vec<(String, &Param<f32>)> {
        let parts: [(&str, &dyn Module<f32>); 3] = [
            ("tok_emb", &self.tok_emb),
            ("pos_emb", &self.pos_emb),
            ("body", &self.body),
        ];
        parts
            .into_iter()
            .flat_map(|(prefix, m)| m.params().into_iter().map(move |(n, p)| (format!("{prefix}.{n}"), p)))
            .collect()
    }

    fn params_mut(&mut self) -> Vec<(String, &mut Param<f32>)> {
        let parts: [(&str, &mut dyn Module<f32>); 3] = [
            ("tok_emb", &mut self.tok_emb),
            ("pos_emb", &mut self.pos_emb),
            ("body", &mut self.body),
        ];
        let mut out = Vec::new();
        for (prefix, m) in parts {
            out.extend(m.params_mut().into_iter().map(|(n, p)| (format!("{prefix}.{n}"), p)));
        }
        out
    }
}

/// Walks the command line: calls `set(flag, value)` for each `--flag value` pair, and
/// `set(flag, "")` for each flag listed in `switches` (flags that take no value).
/// `--help`/`-h`, a flag without its value, and any error of `set` return an error that
/// ends with `usage`.
pub fn parse_flags(
    usage: &str,
    switches: &[&str],
    mut set: impl FnMut(&str, &str) -> Result<(), String>,
) -> Result<(), String> {
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(usage.into());
        }
        let value = if switches.contains(&flag.as_str()) {
            String::new()
        } else {
            it.next().ok_or_else(|| format!("{flag} needs a value\n{usage}"))?
        };
        set(&flag, &value).map_err(|e| format!("{e}\n{usage}"))?;
    }
    Ok(())
}

/// `value` read as a `T`, or an error naming `flag` and the value.
pub fn parse<T: FromStr>(flag: &str, value: &str) -> Result<T, String>
where
    T::Err: Display,
{
    value.parse().map_err(|e| format!("{flag} {value}: {e}"))
}

/// Peak resident set size in MB, from /proc/self/status (Linux); 0 elsewhere.
pub fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()))
        .map_or(0, |kb| kb / 1024)
}
