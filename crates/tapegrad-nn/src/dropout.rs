//! [`Dropout`]: inverted dropout with its own seeded RNG.

use crate::module::Module;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use rayon::prelude::*;
use tapegrad_core::{Element, Error, Result, Tensor};

mod stream;

/// From this many elements a mask is drawn in pieces on rayon's pool (each piece from its
/// own position in the generator's stream: the same words as one sequential draw).
const PAR_MIN: usize = 1 << 17;

/// Elements per piece of a split draw.
const PIECE: usize = 1 << 15;

/// Inverted dropout (`torch.nn.Dropout`, `keras.layers.Dropout`).
///
/// In training mode each element is kept with probability `1 − p` and scaled by
/// `1/(1 − p)`, zeroed otherwise: `y = x ⊙ m / (1 − p)` with `mᵢ ~ Bernoulli(1 − p)`, so
/// `E[y] = x`. ∂y/∂x = m/(1 − p). In evaluation mode it is the identity. With `p = 0` it
/// is the identity in both modes and draws nothing.
///
/// The mask comes from the layer's own ChaCha12 generator, seeded at construction (the
/// generator behind rand's `StdRng`, whose draws these are: `StdRng::seed_from_u64(seed)`
/// and `random_bool(1 − p)` per element give the same mask), so a run reproduces exactly;
/// each training-mode forward draws a new mask. A large mask is drawn in pieces on rayon's
/// pool, each from its own position in the stream: the same mask on any number of threads.
/// [`Dropout::set_fixed_mask`] replaces the draws by a given mask (for gradchecks), and
/// [`Dropout::last_mask`] shows the keep mask of the last forward.
///
/// ```
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::{Dropout, Module};
/// let mut drop = Dropout::new(0.5, 1)?;
/// let x = Tensor::<f64>::ones([1000])?;
/// let y = drop.forward(&x)?;
/// assert!(y.data().iter().all(|&v| v == 0.0 || v == 2.0));
/// drop.eval();
/// assert_eq!(drop.forward(&x)?.to_vec(), x.to_vec());
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Dropout<T: Element> {
    p: f64,
    rng: ChaCha12Rng,
    training: bool,
    fixed_mask: Option<Tensor<T>>,
    last_mask: Option<Tensor<T>>,
}

impl<T: Element> Dropout<T> {
    /// Dropout with drop probability `p ∈ [0, 1)` and mask RNG seeded with `seed`.
    ///
    /// Errors if `p` is outside `[0, 1)` or NaN (`p = 1` would divide by zero; PyTorch
    /// allows it and outputs zeros, Keras rejects it).
    pub fn new(p: f64, seed: u64) -> Result<Self> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::bad_value(
                "Dropout",
                format!("the drop probability must be in [0, 1), got {p}"),
            ));
        }
        Ok(Dropout {
            p,
            rng: ChaCha12Rng::seed_from_u64(seed),
            training: true,
            fixed_mask: None,
            last_mask: None,
        })
    }

    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// The keep mask (1 kept, 0 dropped, before scaling) of the last training-mode
    /// forward, or `None` if there was none.
    pub fn last_mask(&self) -> Option<&Tensor<T>> {
        self.last_mask.as_ref()
    }

    /// Uses `mask` (0/1, the shape of the inputs to come) instead of random draws, until
    /// cleared with `None`. The output is still scaled by `1/(1 − p)`.
    ///
    /// Errors if the mask holds a value other than 0 or 1.
    pub fn set_fixed_mask(&mut self, mask: Option<Tensor<T>>) -> Result<()> {
        if let Some(m) = &mask {
            if let Some(v) = m.data().iter().find(|&&v| v != T::zero() && v != T::one()) {
                return Err(Error::bad_value(
                    "Dropout::set_fixed_mask",
                    format!("a keep mask holds only 0 and 1, found {v}"),
                ));
            }
        }
        self.fixed_mask = mask.map(|m| m.detach());
        Ok(())
    }
}

impl<T: Element> Module<T> for Dropout<T> {
    fn forward(&mut self, x: &Tensor<T>) -> Result<Tensor<T>> {
        if !self.training || self.p == 0.0 {
            return Ok(x.clone());
        }
        let mask = match &self.fixed_mask {
            Some(m) => {
                if m.shape() != x.shape() {
                    return Err(Error::mismatch(
                        "Dropout",
                        x.shape(),
                        m.shape(),
                        "a fixed mask of the input's shape",
                    ));
                }
                m.clone()
            }
            None => {
                let data = keep_mask(&mut self.rng, x.numel(), 1.0 - self.p);
                Tensor::from_vec(data, x.shape().clone())?
            }
        };
        // One multiply by an untracked constant: the rule is then ∂y/∂x = m/(1 − p).
        let scale = T::from_f64_lossy(1.0 / (1.0 - self.p));
        let y = x.mul(&mask.mul_scalar(scale))?;
        self.last_mask = Some(mask);
        Ok(y)
    }

    fn train(&mut self, on: bool) {
        self.training = on;
    }

    fn is_training(&self) -> bool {
        self.training
    }

    fn describe(&self) -> String {
        format!("Dropout(p={})", self.p)
    }
}

/// `n` keep decisions as 1 or 0: the draws of `rng.random_bool(keep)` (rand's Bernoulli:
/// keep when a random u64 is below keep·2⁶⁴), the words drawn a block at a time; from
/// [`PAR_MIN`] elements in pieces on rayon's pool, piece k's words from the stream position
/// two u32 words per element after the first (ChaCha is seekable), so the mask and the
/// generator's state after it are those of one sequential draw.
fn keep_mask<T: Element>(rng: &mut ChaCha12Rng, n: usize, keep: f64) -> Vec<T> {
    // A p so small that 1 − p rounds to 1 keeps everything and draws nothing.
    if keep == 1.0 {
        return vec![T::one(); n];
    }
    let below = (keep * 2f64.powi(64)) as u64;
    let fill = |rng: &mut ChaCha12Rng, piece: &mut [T]| {
        let mut words = [0u64; 1024];
        for chunk in piece.chunks_mut(words.len()) {
            let words = &mut words[..chunk.len()];
            stream::fill_u64(rng, words);
            for (d, &w) in chunk.iter_mut().zip(words.iter()) {
                *d = if w < below { T::one() } else { T::zero() };
            }
        }
    };
    let mut data = vec![T::zero(); n];
    if n < PAR_MIN || rayon::current_num_threads() < 2 {
        fill(rng, &mut data);
        return data;
    }
    let start = rng.get_word_pos();
    data.par_chunks_mut(PIECE).enumerate().for_each(|(k, piece)| {
        let mut r = rng.clone();
        r.set_word_pos(start + 2 * (k * PIECE) as u128);
        fill(&mut r, piece);
    });
    rng.set_word_pos(start + 2 * n as u128);
    data
}
