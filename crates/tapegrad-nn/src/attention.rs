//! [`Embedding`], [`MultiHeadAttention`] (PyTorch's parameter layout), a pre-norm
//! [`TransformerBlock`], and the [`Gelu`] layer.

use crate::dense::Dense;
use crate::init::Init;
use crate::module::{Module, Param};
use crate::norm::LayerNorm;
use rand::Rng;
use tapegrad_core::{Element, Error, IndexTensor, Result, Tensor};

/// GELU as a layer, as `torch.nn.GELU(approximate=…)`: exact `x·Φ(x)` by default, or the
/// tanh form ([`Tensor::gelu`], [`Tensor::gelu_tanh`]).
///
/// ```
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::{Gelu, Module};
/// let y = Gelu::default().forward(&Tensor::<f64>::from_vec(vec![0.0], [1])?)?;
/// assert_eq!(y.to_vec(), vec![0.0]);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gelu {
    /// Use the tanh approximation (PyTorch's `approximate='tanh'`).
    pub tanh: bool,
}

impl<T: Element> Module<T> for Gelu {
    fn forward(&mut self, x: &Tensor<T>) -> Result<Tensor<T>> {
        if self.tanh {
            x.gelu_tanh()
        } else {
            x.gelu()
        }
    }

    fn describe(&self) -> String {
        format!("Gelu(tanh={})", self.tanh)
    }
}

/// A lookup table `weight [V, E]`: each index becomes its row, as `torch.nn.Embedding`
/// (see [`Tensor::embedding`]; repeated indices accumulate their gradients). Initialised
/// as Keras's `Embedding`, U(−0.05, 0.05) (PyTorch draws N(0, 1)).
///
/// As a [`Module`] its input is a float tensor of whole numbers in `0..V` (token ids as a
/// data loader's batch holds them); [`Embedding::lookup`] takes an [`IndexTensor`].
///
/// ```
/// use rand::{rngs::StdRng, SeedableRng};
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::{Embedding, Module};
/// let mut emb = Embedding::<f32>::new(10, 4, &mut StdRng::seed_from_u64(0))?;
/// let ids = Tensor::from_vec(vec![1.0, 9.0, 1.0], [1, 3])?;
/// assert_eq!(emb.forward(&ids)?.dims(), &[1, 3, 4]);
/// assert!(emb.forward(&Tensor::from_vec(vec![10.0], [1])?).is_err());
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Embedding<T: Element> {
    weight: Param<T>,
}

impl<T: Element> Embedding<T> {
    /// `num_embeddings` rows of `dim` values, U(−0.05, 0.05). Errors if a size is 0.
    pub fn new<R: Rng + ?Sized>(num_embeddings: usize, dim: usize, rng: &mut R) -> Result<Self> {
        if num_embeddings == 0 || dim == 0 {
            return Err(Error::bad_value(
                "Embedding",
                format!("needs positive sizes, got {num_embeddings} × {dim}"),
            ));
        }
        let w = Init::Uniform { low: -0.05, high: 0.05 }.sample([num_embeddings, dim], num_embeddings, dim, rng)?;
        Ok(Embedding { weight: Param::new(w) })
    }

    /// The rows at `indices`: `[S…, E]`.
    pub fn lookup(&self, indices: &IndexTensor) -> Result<Tensor<T>> {
        Tensor::embedding(indices, self.weight.tensor())
    }

    /// The table `[V, E]`.
    pub fn weight(&self) -> &Tensor<T> {
        self.weight.tensor()
    }
}

impl<T: Element> Module<T> for Embedding<T> {
    fn forward(&mut self, x: &Tensor<T>) -> Result<Tensor<T>> {
        let mut idx = Vec::with_capacity(x.numel());
        for &f in x.data() {
            let i = f.as_f64();
            if !(i >= 0.0 && i.fract() == 0.0) {
                return Err(Error::bad_value(
                    "Embedding",
                    format!("index {i} is not a whole number ≥ 0"),
                ));
            }
            idx.push(i as usize); // saturating; an index ≥ V is refused by the lookup
        }
        self.lookup(&IndexTensor::from_vec(idx, x.shape().clone())?)
    }

    fn params(&self) -> Vec<(String, &Param<T>)> {
        vec![("weight".into(), &self.weight)]
    }

    fn params_mut(&mut self) -> Vec<(String, &mut Param<T>)> {
        vec![("weight".into(), &mut self.weight)]
    }
}

/// Multi-head attention, as `torch.nn.MultiheadAttention(E, heads, batch_first=True)`:
///
/// `MHA(q, k, v) = concat_h(softmax(q·W_qₕᵀ (k·W_kₕᵀ)ᵀ/√(E/heads) + mask) · v·W_vₕᵀ) · W_oᵀ + b_o`
///
/// (each projection with its bias) over `[N, T, E]`. The parameters have PyTorch's names and
/// layout, so its weights load: `in_proj_weight [3E, E]` (W_q; W_k; W_v stacked by rows),
/// `in_proj_bias [3E]`, `out_proj.weight [E, E]` (`[out, in]`), `out_proj.bias [E]`. Init is
/// Keras's: glorot_uniform for each `E × E` projection, zero biases.
///
/// As a [`Module`], `forward(x)` is self-attention (`q = k = v = x`), causal if
/// [`MultiHeadAttention::with_causal`]; [`MultiHeadAttention::attend`] takes separate
/// inputs and a mask.
///
/// ```
/// use rand::{rngs::StdRng, SeedableRng};
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::{Module, MultiHeadAttention};
/// let mut mha = MultiHeadAttention::<f64>::new(8, 2, &mut StdRng::seed_from_u64(0))?.with_causal(true);
/// let y = mha.forward(&Tensor::ones([3, 5, 8])?)?;
/// assert_eq!(y.dims(), &[3, 5, 8]);
/// let names: Vec<String> = mha.parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct MultiHeadAttention<T: Element> {
    in_proj_weight: Param<T>,
    in_proj_bias: Param<T>,
    out_weight: Param<T>,
    out_bias: Param<T>,
    heads: usize,
    causal: bool,
}

impl<T: Element> MultiHeadAttention<T> {
    /// Attention over `embed_dim` features split into `heads` heads. Errors if `embed_dim`
    /// is 0 or not divisible by `heads` (as PyTorch).
    pub fn new<R: Rng + ?Sized>(embed_dim: usize, heads: usize, rng: &mut R) -> Result<Self> {
        if embed_dim == 0 || heads == 0 || !embed_dim.is_multiple_of(heads) {
            return Err(Error::bad_value(
                "MultiHeadAttention",
                format!("embed_dim ({embed_dim}) must be positive and divisible by heads ({heads})"),
            ));
        }
        let e = embed_dim;
        let proj = |rng: &mut R| Init::GlorotUniform.sample::<T, R>([e, e], e, e, rng);
        let (q, k, v) = (proj(rng)?, proj(rng)?, proj(rng)?);
        Ok(MultiHeadAttention {
            in_proj_weight: Param::new(Tensor::concat(&[&q, &k, &v], 0)?),
            in_proj_bias: Param::new(Tensor::zeros([3 * e])?),
            out_weight: Param::new(proj(rng)?),
            out_bias: Param::new(Tensor::zeros([e])?),
            heads,
            causal: false,
        })
    }

    /// Whether `forward` masks future positions (query `i` sees keys `j ≤ i`).
    pub fn with_causal(mut self, causal: bool) -> Self {
        self.causal = causal;
        self
    }

    fn embed_dim(&self) -> usize {
        self.out_bias.tensor().numel()
    }

    /// `[N, T, E]` projected by rows `i·E..(i+1)·E` of the in-projection, split into heads:
    /// `[N, heads, T, E/heads]`.
    fn project(&self, x: &Tensor<T>, i: usize) -> Result<Tensor<T>> {
        let e = self.embed_dim();
        if x.ndim() != 3 || x.dims()[2] != e {
            return Err(Error::bad_shape(
                "MultiHeadAttention",
                format!("needs inputs [N, T, {e}], got {}", x.shape()),
            ));
        }
        let w = self.in_proj_weight.tensor().narrow(0, i * e, e)?;
        let b = self.in_proj_bias.tensor().narrow(0, i * e, e)?;
        let (n, t) = (x.dims()[0], x.dims()[1]);
        x.matmul_t(&w, false, true)?
            .add(&b)?
            .reshape([n, t, self.heads, e / self.heads])?
            .permute([0, 2, 1, 3])
    }

    /// Attention of queries `q [N, Tq, E]` over keys `k` and values `v` `[N, Tk, E]`, with
    /// an optional additive float `mask` broadcast to `[N, heads, Tq, Tk]` (−∞ forbids)
    /// and the causal flag. Returns `[N, Tq, E]`.
    pub fn attend(
        &self,
        q: &Tensor<T>,
        k: &Tensor<T>,
        v: &Tensor<T>,
        mask: Option<&Tensor<T>>,
        causal: bool,
    ) -> Result<Tensor<T>> {
        let (qh, kh, vh) = (self.project(q, 0)?, self.project(k, 1)?, self.project(v, 2)?);
        let o = Tensor::scaled_dot_product_attention(&qh, &kh, &vh, mask, causal)?;
        let (n, t) = (q.dims()[0], q.dims()[1]);
        o.permute([0, 2, 1, 3])?
            .reshape([n, t, self.embed_dim()])?
            .matmul_t(self.out_weight.tensor(), false, true)?
            .add(self.out_bias.tensor())
    }
}

impl<T: Element> Module<T> for MultiHeadAttention<T> {
    fn forward(&mut self, x: &Tensor<T>) -> Result<Tensor<T>> {
        self.attend(x, x, x, None, self.causal)
    }

    fn params(&self) -> Vec<(String, &Param<T>)> {
        vec![
            ("in_proj_weight".into(), &self.in_proj_weight),
            ("in_proj_bias".into(), &self.in_proj_bias),
            ("out_proj.weight".into(), &self.out_weight),
            ("out_proj.bias".into(), &self.out_bias),
        ]
    }

    fn params_mut(&mut self) -> Vec<(String, &mut Param<T>)> {
        vec![
            ("in_proj_weight".into(), &mut self.in_proj_weight),
            ("in_proj_bias".into(), &mut self.in_proj_bias),
            ("out_proj.weight".into(), &mut self.out_weight),
            ("out_proj.bias".into(), &mut self.out_bias),
        ]
    }

    fn describe(&self) -> String {
        format!(
            "MultiHeadAttention({}, heads={}, causal={})",
            self.embed_dim(),
            self.heads,
            self.causal
        )
    }
}

/// A pre-norm transformer block (GPT-2's arrangement) over `[N, T, E]`:
///
/// `h = x + MHA(LN₁(x))`, `y = h + W₂·GELU(W₁·LN₂(h))`
///
/// with a `4E`-wide feed-forward layer (Keras-initialised [`Dense`] layers) and optional
/// causal attention. Parameter names follow PyTorch's `TransformerEncoderLayer`:
/// `norm1.*`, `self_attn.*`, `norm2.*`, `linear1.*`, `linear2.*` (the linear weights in
/// [`Dense`]'s `[in, out]` layout).
///
/// ```
/// use rand::{rngs::StdRng, SeedableRng};
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::{Module, TransformerBlock};
/// let mut block = TransformerBlock::<f32>::new(16, 4, true, &mut StdRng::seed_from_u64(0))?;
/// assert_eq!(block.forward(&Tensor::zeros([2, 7, 16])?)?.dims(), &[2, 7, 16]);
/// assert_eq!(block.num_parameters(), 2 * 16 * 2 + 4 * 16 * 16 + 4 * 16 + 2 * 16 * 64 + 64 + 16);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct TransformerBlock<T: Element> {
    norm1: LayerNorm<T>,
    attn: MultiHeadAttention<T>,
    norm2: LayerNorm<T>,
    linear1: Dense<T>,
    linear2: Dense<T>,
}

impl<T: Element> TransformerBlock<T> {
    /// A block over `embed_dim` features with `heads` heads, causal or not.
    pub fn new<R: Rng + ?Sized>(embed_dim: usize, heads: usize, causal: bool, rng: &mut R) -> Result<Self> {
        Ok(TransformerBlock {
            norm1: LayerNorm::new(&[embed_dim])?,
            attn: MultiHeadAttention::new(embed_dim, heads, rng)?.with_causal(causal),
            norm2: LayerNorm::new(&[embed_dim])?,
            linear1: Dense::new(embed_dim, 4 * embed_dim, rng)?,
            linear2: Dense::new(4 * embed_dim, embed_dim, rng)?,
        })
    }

    fn parts(&self) -> [(&str, &dyn Module<T>); 5] {
        [
            ("norm1", &self.norm1),
            ("self_attn", &self.attn),
            ("norm2", &self.norm2),
            ("linear1", &self.linear1),
            ("linear2", &self.linear2),
        ]
    }
}

impl<T: Element> Module<T> for TransformerBlock<T> {
    fn forward(&mut self, x: &Tensor<T>) -> Result<Tensor<T>> {
        let h = x.add(&self.attn.forward(&self.norm1.forward(x)?)?)?;
        let f = self.linear1.forward(&self.norm2.forward(&h)?)?.gelu()?;
        h.add(&self.linear2.forward(&f)?)
    }

    fn params(&self) -> Vec<(String, &Param<T>)> {
        self.parts()
            .into_iter()
            .flat_map(|(prefix, m)| m.params().into_iter().map(move |(n, p)| (format!("{prefix}.{n}"), p)))
            .collect()
    }

    fn params_mut(&mut self) -> Vec<(String, &mut Param<T>)> {
        let mut out = Vec::new();
        let parts: [(&str, &mut dyn Module<T>); 5] = [
            ("norm1", &mut self.norm1),
            ("self_attn", &mut self.attn),
            ("norm2", &mut self.norm2),
            ("linear1", &mut self.linear1),
            ("linear2", &mut self.linear2),
        ];
        for (prefix, m) in parts {
            out.extend(m.params_mut().into_iter().map(|(n, p)| (format!("{prefix}.{n}"), p)));
        }
        out
    }

    fn describe(&self) -> String {
        format!("TransformerBlock({})", self.attn.describe())
    }
}
