//! The convolution, normalization and attention layers: gradients (gradcheck through the
//! layers in f64), PyTorch's parameter names and layouts, buffers in checkpoints.

use rand::{rngs::StdRng, SeedableRng};
use tapegrad_core::{GradCheck, IndexTensor, OpKind, Result, Tensor};
use tapegrad_nn::checkpoint;
use tapegrad_nn::{
    Activation, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv1d, Conv2d, Dense, Embedding, Flatten, Gelu, GlobalAvgPool2d,
    LayerNorm, MaxPool2d, Module, MultiHeadAttention, Sequential, TransformerBlock,
};

fn rand_t(rng: &mut StdRng, dims: &[usize]) -> Tensor<f64> {
    Tensor::rand_uniform(dims.to_vec(), -1.0, 1.0, rng).unwrap()
}

/// Gradcheck of `model`'s output (summed with fixed weights) w.r.t. its input and every
/// parameter, the parameters passed in as the checked leaves.
fn check_module<M: Module<f64>>(make: impl Fn() -> M, x: &Tensor<f64>) {
    let base = make();
    let mut inputs = vec![x.clone()];
    inputs.extend(base.parameters().into_iter().map(|(_, t)| t.detach()));
    let report = GradCheck::new()
        .check(
            |xs| {
                let mut m = make();
                let state: Vec<(String, Tensor<f64>)> = m
                    .parameters()
                    .into_iter()
                    .map(|(n, _)| n)
                    .zip(xs[1..].iter().cloned())
                    .collect();
                for ((_, p), v) in m.params_mut().into_iter().zip(&state) {
                    *p.tensor_mut() = v.1.clone();
                }
                m.forward(&xs[0])
            },
            &inputs,
        )
        .unwrap();
    assert!(report.max_abs_error < 1e-6, "{report:?}");
}

#[test]
fn sequential_fuses_a_relu_convolution_with_the_max_pooling_after_it() -> Result<()> {
    let make = || -> Result<Sequential<f64>> {
        let mut rng = StdRng::seed_from_u64(5);
        Ok(Sequential::new()
            .add(Conv2d::new(2, 4, [3, 3], &mut rng)?.with_activation(Activation::Relu))
            .add(MaxPool2d::new([2, 2]))
            .add(
                Conv2d::new(4, 3, [2, 2], &mut rng)?
                    .with_padding(1)
                    .with_activation(Activation::Relu),
            )
            .add(MaxPool2d {
                kernel: [3, 3],
                stride: Some([2, 2]),
                padding: [1, 1],
            })
            .add(Flatten))
    };
    let x = rand_t(&mut StdRng::seed_from_u64(6), &[3, 2, 9, 8]).requires_grad();
    let (mut fused, mut plain) = (make()?, make()?);
    let y = fused.forward(&x)?;
    let fused_ops = y.recorded_ops();
    assert!(fused_ops.contains(&OpKind::Conv2dReluMaxPool2d), "{fused_ops:?}");
    assert!(!fused_ops.contains(&OpKind::MaxPool2d), "{fused_ops:?}");
    // The same layers, one at a time.
    let mut h = x.clone();
    for i in 0..plain.len() {
        h = plain.layer_mut(i).expect("a layer").forward(&h)?;
    }
    assert!(!h.recorded_ops().contains(&OpKind::Conv2dReluMaxPool2d));
    assert_eq!(y.to_vec(), h.to_vec());
    // Gradients, first and second order, bit for bit.
    let v = rand_t(&mut StdRng::seed_from_u64(7), y.dims());
    let (gf, gp) = (y.mul(&v)?.sum_all().backward()?, h.mul(&v)?.sum_all().backward()?);
    assert_eq!(gf.wrt(&x)?.to_vec(), gp.wrt(&x)?.to_vec());
    for ((name, a), (_, b)) in fused.parameters().into_iter().zip(plain.parameters()) {
        assert_eq!(gf.wrt(a)?.to_vec(), gp.wrt(b)?.to_vec(), "{name}");
    }
    let w0 = |m: &Sequential<f64>| m.parameters()[0].1.clone();
    let (wf, wp) = (w0(&fused), w0(&plain));
    let second = |y: &Tensor<f64>, w: &Tensor<f64>| -> Result<Vec<f64>> {
        let g = tapegrad_core::grad(&y.mul(&v)?.sum_all(), &[w], None, true)?.remove(0);
        Ok(tapegrad_core::grad(&g.square().sum_all(), &[&x], None, false)?
            .remove(0)
            .to_vec())
    };
    assert_eq!(second(&y, &wf)?, second(&h, &wp)?);
    Ok(())
}

#[test]
fn conv_and_pool_layers_pass_gradcheck() {
    let mut rng = StdRng::seed_from_u64(1);
    let x = rand_t(&mut rng, &[2, 2, 6, 5]);
    check_module(
        || {
            Sequential::new()
                .add(
                    Conv2d::new(2, 3, [3, 2], &mut StdRng::seed_from_u64(2))
                        .unwrap()
                        .with_padding(1)
                        .with_activation(Activation::Tanh),
                )
                .add(AvgPool2d::new([2, 2]))
                .add(Conv2d::with_groups(3, 3, [1, 1], 3, &mut StdRng::seed_from_u64(3)).unwrap())
                .add(GlobalAvgPool2d)
        },
        &x,
    );
    let x1 = rand_t(&mut rng, &[2, 2, 7]);
    check_module(
        || {
            Conv1d::new(2, 4, 3, &mut StdRng::seed_from_u64(4))
                .unwrap()
                .with_stride(2)
        },
        &x1,
    );
}

#[test]
fn conv2d_init_and_layout_follow_keras_and_pytorch() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(5);
    let conv = Conv2d::<f64>::new(32, 64, [3, 3], &mut rng)?;
    assert_eq!(conv.weight().dims(), &[64, 32, 3, 3]);
    // glorot_uniform with Keras's fans: 32·9 in, 64·9 out.
    let limit = (6.0f64 / (32.0 * 9.0 + 64.0 * 9.0)).sqrt();
    assert!(conv.weight().data().iter().all(|v| v.abs() <= limit));
    assert!(conv.weight().data().iter().any(|v| v.abs() > 0.9 * limit));
    assert_eq!(conv.bias().unwrap().to_vec(), vec![0.0; 64]);
    assert!(Conv2d::<f64>::with_groups(3, 4, [1, 1], 2, &mut rng).is_err());
    Ok(())
}

#[test]
fn max_pool_layer_matches_the_op() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(6);
    let x = rand_t(&mut rng, &[1, 2, 5, 5]);
    let mut pool = MaxPool2d {
        kernel: [3, 3],
        stride: Some([2, 2]),
        padding: [1, 1],
    };
    assert_eq!(
        pool.forward(&x)?.to_vec(),
        x.max_pool2d([3, 3], Some([2, 2]), [1, 1])?.to_vec()
    );
    Ok(())
}

#[test]
fn batch_norm_running_statistics_are_buffers_saved_in_checkpoints() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut model = Sequential::new()
        .add(Conv2d::new(1, 2, [1, 1], &mut rng)?)
        .add(BatchNorm2d::<f64>::new(2)?);
    let x = rand_t(&mut rng, &[4, 1, 3, 3]);
    model.forward(&x)?;
    // Buffers are in the state dict but are not parameters: no optimizer sees them.
    let names: Vec<String> = model.state_dict().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "0.weight",
            "0.bias",
            "1.weight",
            "1.bias",
            "1.running_mean",
            "1.running_var"
        ]
    );
    assert_eq!(model.trainable_parameters_mut().len(), 4);
    let mean = model.buffers()[0].1.to_vec();
    assert!(mean.iter().any(|v| *v != 0.0), "the running mean moved");
    let bytes = checkpoint::to_bytes(&model)?;
    let mut fresh = Sequential::new()
        .add(Conv2d::new(1, 2, [1, 1], &mut StdRng::seed_from_u64(99))?)
        .add(BatchNorm2d::<f64>::new(2)?);
    checkpoint::load_from_bytes(&mut fresh, &bytes)?;
    assert_eq!(fresh.buffers()[0].1.to_vec(), mean);
    model.eval();
    fresh.eval();
    assert_eq!(model.forward(&x)?.to_vec(), fresh.forward(&x)?.to_vec());
    // A checkpoint without the buffers is refused, naming the missing one.
    let params_only: Vec<(String, Tensor<f64>)> =
        model.parameters().into_iter().map(|(n, t)| (n, t.detach())).collect();
    let err = fresh.load_state_dict(&params_only).unwrap_err().to_string();
    assert!(err.contains("1.running_mean"), "{err}");
    Ok(())
}

#[test]
fn batch_norm_refuses_one_value_per_channel_in_training() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(8);
    let mut bn = BatchNorm1d::<f64>::new(3)?;
    let one = rand_t(&mut rng, &[1, 3]);
    let err = bn.forward(&one).unwrap_err().to_string();
    assert!(err.contains("more than 1 value per channel"), "{err}");
    bn.eval();
    assert_eq!(bn.forward(&one)?.dims(), &[1, 3]);
    assert!(
        bn.forward(&rand_t(&mut rng, &[2, 3, 4, 4])).is_err(),
        "4-D input to BatchNorm1d"
    );
    Ok(())
}

#[test]
fn norm_and_attention_layers_pass_gradcheck() {
    let mut rng = StdRng::seed_from_u64(9);
    let x = rand_t(&mut rng, &[2, 3, 4]);
    check_module(|| LayerNorm::new(&[4]).unwrap(), &x);
    check_module(|| BatchNorm1d::new(3).unwrap(), &x);
    check_module(
        || {
            MultiHeadAttention::new(4, 2, &mut StdRng::seed_from_u64(10))
                .unwrap()
                .with_causal(true)
        },
        &x,
    );
    check_module(
        || TransformerBlock::new(4, 2, true, &mut StdRng::seed_from_u64(11)).unwrap(),
        &x,
    );
    check_module(|| Gelu { tanh: true }, &x);
}

#[test]
fn multi_head_attention_matches_the_per_head_formula() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(12);
    let (n, t, e, heads) = (2, 3, 4, 2);
    let mha = MultiHeadAttention::<f64>::new(e, heads, &mut rng)?;
    let p: Vec<Tensor<f64>> = mha.parameters().into_iter().map(|(_, t)| t.detach()).collect();
    let (w_in, b_in, w_out, b_out) = (&p[0], &p[1], &p[2], &p[3]);
    assert_eq!(
        (w_in.dims(), b_in.dims(), w_out.dims()),
        (&[3 * e, e][..], &[3 * e][..], &[e, e][..])
    );
    let q = rand_t(&mut rng, &[n, t, e]);
    let kv = rand_t(&mut rng, &[n, t + 1, e]);
    let y = mha.attend(&q, &kv, &kv, None, false)?;
    // By hand: y[b, i] = Σ_h softmax_j(qₕ·kₕⱼ/√dh) vₕⱼ, concatenated, then W_o·(·) + b_o.
    let d = e / heads;
    let proj = |x: &Tensor<f64>, r: usize, b: usize, i: usize| -> Vec<f64> {
        (0..e)
            .map(|o| {
                b_in.data()[r * e + o]
                    + (0..e)
                        .map(|c| w_in.get(&[r * e + o, c]).unwrap() * x.get(&[b, i, c]).unwrap())
                        .sum::<f64>()
            })
            .collect()
    };
    for b in 0..n {
        for i in 0..t {
            let qi = proj(&q, 0, b, i);
            let mut concat = vec![0.0; e];
            for h in 0..heads {
                let scores: Vec<f64> = (0..t + 1)
                    .map(|j| {
                        let kj = proj(&kv, 1, b, j);
                        (0..d).map(|c| qi[h * d + c] * kj[h * d + c]).sum::<f64>() / (d as f64).sqrt()
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = scores.iter().map(|s| (s - m).exp()).sum();
                for (j, s) in scores.iter().enumerate() {
                    let vj = proj(&kv, 2, b, j);
                    for c in 0..d {
                        concat[h * d + c] += (s - m).exp() / z * vj[h * d + c];
                    }
                }
            }
            for o in 0..e {
                let want = b_out.data()[o] + (0..e).map(|c| w_out.get(&[o, c]).unwrap() * concat[c]).sum::<f64>();
                assert!((y.get(&[b, i, o])? - want).abs() < 1e-12);
            }
        }
    }
    Ok(())
}

#[test]
fn embedding_layer_looks_up_rows_and_refuses_bad_ids() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(13);
    let mut emb = Embedding::<f64>::new(5, 3, &mut rng)?;
    assert!(emb.weight().data().iter().all(|v| v.abs() <= 0.05));
    let ids = Tensor::from_vec(vec![4.0, 0.0, 4.0], [3])?;
    let y = emb.forward(&ids)?;
    assert_eq!(y.to_vec()[..3], emb.weight().to_vec()[12..15]);
    assert_eq!(
        y.to_vec(),
        emb.lookup(&IndexTensor::from_vec(vec![4, 0, 4], [3])?)?.to_vec()
    );
    assert!(emb.forward(&Tensor::from_vec(vec![5.0], [1])?).is_err());
    assert!(emb.forward(&Tensor::from_vec(vec![1.5], [1])?).is_err());
    assert!(emb.forward(&Tensor::from_vec(vec![-1.0], [1])?).is_err());
    Ok(())
}

/// A residual block written as a user's own module: `y = relu(x + conv(relu(conv(x))))`.
struct Residual {
    a: Conv2d<f64>,
    b: Conv2d<f64>,
}

impl Module<f64> for Residual {
    fn forward(&mut self, x: &Tensor<f64>) -> Result<Tensor<f64>> {
        let h = self.a.forward(x)?.relu();
        x.add(&self.b.forward(&h)?).map(|y| y.relu())
    }

    fn params(&self) -> Vec<(String, &tapegrad_nn::Param<f64>)> {
        let a = self.a.params().into_iter().map(|(n, p)| (format!("a.{n}"), p));
        a.chain(self.b.params().into_iter().map(|(n, p)| (format!("b.{n}"), p)))
            .collect()
    }

    fn params_mut(&mut self) -> Vec<(String, &mut tapegrad_nn::Param<f64>)> {
        let a = self.a.params_mut().into_iter().map(|(n, p)| (format!("a.{n}"), p));
        a.chain(self.b.params_mut().into_iter().map(|(n, p)| (format!("b.{n}"), p)))
            .collect()
    }
}

#[test]
fn a_residual_model_trains() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(14);
    let res = Residual {
        a: Conv2d::new(2, 2, [3, 3], &mut rng)?.with_padding(tapegrad_core::ops::conv::Padding::Same),
        b: Conv2d::new(2, 2, [3, 3], &mut rng)?.with_padding(1),
    };
    let mut model = Sequential::new()
        .add(res)
        .add(Flatten)
        .add(Dense::new(2 * 4 * 4, 2, &mut rng)?);
    assert_eq!(model.parameters().len(), 6);
    assert_eq!(model.trainable_parameters_mut().len(), 6);
    let x = rand_t(&mut rng, &[4, 2, 4, 4]);
    let y = model.forward(&x)?;
    assert_eq!(y.dims(), &[4, 2]);
    let grads = y.sum_all().backward()?;
    for (name, p) in model.parameters() {
        assert!(grads.get(p).is_some(), "{name} has a gradient");
    }
    Ok(())
}
