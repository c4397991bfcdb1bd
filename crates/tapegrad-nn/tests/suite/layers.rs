//! Layers, Sequential, parameters, freezing and initialisers.

use rand::rngs::StdRng;
use rand::SeedableRng;
use tapegrad_core::{gradcheck, no_grad, Result, Tensor};
use tapegrad_nn::{
    loss, Activation, Dense, Dropout, Flatten, Init, LeakyReLU, Module, ReLU, Reduction, Sequential, Sigmoid, Softmax,
    Tanh,
};

fn t(data: &[f64], shape: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(data.to_vec(), shape).unwrap()
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(1234)
}

const ACTIVATIONS: [Activation; 7] = [
    Activation::Linear,
    Activation::Relu,
    Activation::Sigmoid,
    Activation::Tanh,
    Activation::Softplus,
    Activation::LeakyRelu(0.2),
    Activation::Softmax,
];

#[test]
fn dense_forward_is_x_w_plus_b_then_activation() {
    let w = t(&[1.0, -1.0, 0.5, 2.0, 0.0, 1.0], &[3, 2]);
    let b = t(&[0.1, -0.2], &[2]);
    let mut d = Dense::from_weights(w, Some(b))
        .unwrap()
        .with_activation(Activation::Relu);
    let x = t(&[1.0, 2.0, 3.0, -1.0, 0.0, 0.0], &[2, 3]);
    // Row 0: [1 + 1 + 0 + 0.1, −1 + 4 + 3 − 0.2] = [2.1, 5.8]; row 1: [−1 + 0.1, 1 − 0.2] → relu.
    let y = d.forward(&x).unwrap().to_vec();
    let want = [2.1, 5.8, 0.0, 0.8];
    for (a, b) in y.iter().zip(want) {
        assert!((a - b).abs() < 1e-12, "{y:?}");
    }
    assert_eq!(d.in_features(), 3);
    assert_eq!(d.out_features(), 2);
    assert!(d.describe().contains("relu"));
}

#[test]
fn dense_gradcheck_every_activation() {
    let x = t(&[0.3, -0.8, 1.1, 0.45, 0.2, -1.3], &[2, 3]);
    let w = t(&[0.5, -0.35, 0.25, 0.7, -0.6, 0.15], &[3, 2]);
    let b = t(&[0.05, -0.1], &[2]);
    for act in ACTIVATIONS {
        gradcheck(
            |xs| {
                let mut d = Dense::from_weights(xs[1].clone(), Some(xs[2].clone()))?.with_activation(act);
                d.forward(&xs[0])
            },
            &[x.clone(), w.clone(), b.clone()],
        )
        .unwrap_or_else(|e| panic!("{act:?}: {e}"));
    }
    // Without bias, and with a batched [B, N, in] input.
    let x3 = t(
        &[0.3, -0.8, 1.1, 0.45, 0.2, -1.3, 0.7, 0.1, -0.4, 0.9, 0.05, -0.6],
        &[2, 2, 3],
    );
    gradcheck(
        |xs| {
            Dense::from_weights(xs[1].clone(), None)?
                .with_activation(Activation::Tanh)
                .forward(&xs[0])
        },
        &[x3, w],
    )
    .unwrap();
}

#[test]
fn dense_forward_keeps_the_input_untracked_and_params_tracked() {
    let mut d = Dense::<f64>::new(3, 2, &mut rng()).unwrap();
    let x = Tensor::ones([4, 3]).unwrap();
    let y = d.forward(&x).unwrap();
    assert!(!x.is_tracked());
    let grads = y.sum_all().backward().unwrap();
    assert!(grads.get(&x).is_none());
    assert_eq!(grads.wrt(d.weight()).unwrap().to_vec(), vec![4.0; 6]); // ∂Σ(xW)/∂W = xᵀ·1
    assert_eq!(grads.wrt(d.bias().unwrap()).unwrap().to_vec(), vec![4.0; 2]);
    assert_eq!(grads.len(), 2, "only the two parameters get gradients");
}

#[test]
fn dense_rejects_bad_shapes() {
    let mut d = Dense::<f64>::new(3, 2, &mut rng()).unwrap();
    let err = d.forward(&Tensor::ones([4, 5]).unwrap()).unwrap_err().to_string();
    assert!(err.contains("[4, 5]") && err.contains("[3, 2]"), "{err}");
    assert!(Dense::<f64>::new(0, 2, &mut rng()).is_err());
    assert!(Dense::from_weights(Tensor::<f64>::ones([3]).unwrap(), None).is_err());
    assert!(Dense::from_weights(Tensor::<f64>::ones([3, 2]).unwrap(), Some(Tensor::ones([3]).unwrap())).is_err());
}

#[test]
fn dense_initialisers_follow_keras_and_pytorch() {
    let (fan_in, fan_out) = (200, 100);
    let d = Dense::<f64>::new(fan_in, fan_out, &mut rng()).unwrap();
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    let w = d.weight().data();
    assert!(w.iter().all(|v| v.abs() <= limit));
    // U(±a) has variance a²/3; 20 000 samples pin it to a few percent.
    let var = w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64;
    assert!((var / (limit * limit / 3.0) - 1.0).abs() < 0.05, "{var}");
    assert!(d.bias().unwrap().data().iter().all(|&b| b == 0.0));

    let l = Dense::<f64>::linear(fan_in, fan_out, &mut rng()).unwrap();
    let bound = 1.0 / (fan_in as f64).sqrt();
    assert!(l.weight().data().iter().all(|v| v.abs() <= bound));
    assert!(l.bias().unwrap().data().iter().all(|v| v.abs() <= bound));
    assert!(l.bias().unwrap().data().iter().any(|&v| v != 0.0));

    let cases: [(Init, f64); 5] = [
        (Init::HeUniform, 2.0 / fan_in as f64),
        (Init::HeNormal, 2.0 / fan_in as f64),
        (Init::LecunUniform, 1.0 / fan_in as f64),
        (Init::LecunNormal, 1.0 / fan_in as f64),
        (Init::GlorotNormal, 2.0 / (fan_in + fan_out) as f64),
    ];
    for (init, want_var) in cases {
        let w: Tensor<f64> = init.sample([fan_in, fan_out], fan_in, fan_out, &mut rng()).unwrap();
        let mean = w.data().iter().sum::<f64>() / w.numel() as f64;
        let var = w.data().iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / w.numel() as f64;
        assert!(
            (var / want_var - 1.0).abs() < 0.05,
            "{init:?}: variance {var} vs {want_var}"
        );
        if matches!(init, Init::HeNormal | Init::LecunNormal | Init::GlorotNormal) {
            let cut = 2.0 * want_var.sqrt() / 0.879_625_661_034_239_8;
            assert!(
                w.data().iter().all(|v| v.abs() <= cut + 1e-12),
                "{init:?} is not truncated"
            );
        }
    }
    // Same seed, same weights.
    let a = Dense::<f32>::new(5, 4, &mut rng()).unwrap();
    let b = Dense::<f32>::new(5, 4, &mut rng()).unwrap();
    assert_eq!(a.weight().to_vec(), b.weight().to_vec());
    let c: Tensor<f32> = Init::Constant(0.25).sample([2], 1, 1, &mut rng()).unwrap();
    assert_eq!(c.to_vec(), vec![0.25, 0.25]);
    assert!(Init::HeUniform.sample::<f32, _>([0, 3], 0, 3, &mut rng()).is_err());
}

#[test]
fn activation_layers_gradcheck() {
    // Away from the kinks of relu/leaky relu at 0.
    let x = t(&[0.3, -0.8, 1.1, 0.45, -0.2, -1.3], &[2, 3]);
    let mut layers: Vec<Box<dyn Module<f64>>> = vec![
        Box::new(ReLU),
        Box::new(Sigmoid),
        Box::new(Tanh),
        Box::new(LeakyReLU::new(0.1)),
        Box::new(Softmax::new(-1)),
        Box::new(Softmax::new(0)),
        Box::new(Flatten),
    ];
    for act in ACTIVATIONS {
        layers.push(Box::new(act));
    }
    for layer in &mut layers {
        let name = layer.describe();
        let layer = std::cell::RefCell::new(layer);
        gradcheck(|xs| layer.borrow_mut().forward(&xs[0]), std::slice::from_ref(&x))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn activation_values() {
    let x = t(&[-2.0, 0.0, 3.0], &[1, 3]);
    assert_eq!(ReLU.forward(&x).unwrap().to_vec(), vec![0.0, 0.0, 3.0]);
    assert_eq!(LeakyReLU::new(0.5).forward(&x).unwrap().to_vec(), vec![-1.0, 0.0, 3.0]);
    let s = Sigmoid.forward(&x).unwrap().to_vec();
    assert!((s[0] - 1.0 / (1.0 + 2f64.exp())).abs() < 1e-15 && s[1] == 0.5);
    let sm = Softmax::default().forward(&x).unwrap().to_vec();
    let z: f64 = [-2f64, 0.0, 3.0].iter().map(|v| v.exp()).sum();
    assert!((sm[2] - 3f64.exp() / z).abs() < 1e-15);
    let big = Tensor::<f32>::from_vec(vec![1e4, -1e4, 0.0], [1, 3]).unwrap();
    assert_eq!(Softmax::default().forward(&big).unwrap().to_vec(), vec![1.0, 0.0, 0.0]);
    assert_eq!(Tanh.forward(&t(&[0.0], &[1])).unwrap().to_vec(), vec![0.0]);
}

#[test]
fn flatten_keeps_the_batch_dim() {
    let x = Tensor::<f32>::zeros([4, 2, 3, 5]).unwrap();
    assert_eq!(Flatten.forward(&x).unwrap().dims(), &[4, 30]);
    assert_eq!(
        Flatten.forward(&Tensor::<f32>::zeros([4, 7]).unwrap()).unwrap().dims(),
        &[4, 7]
    );
    assert_eq!(
        Flatten.forward(&Tensor::<f32>::zeros([4]).unwrap()).unwrap().dims(),
        &[4, 1]
    );
    assert!(Flatten.forward(&Tensor::<f32>::scalar(1.0)).is_err());
    let x = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], &[2, 2, 2]);
    gradcheck(|xs| Flatten.forward(&xs[0])?.mul(&xs[0].flatten(1)?), &[x]).unwrap();
}

fn mlp(rng: &mut StdRng) -> Sequential<f64> {
    Sequential::new()
        .add(Dense::new(3, 4, rng).unwrap().with_activation(Activation::Relu))
        .add(Dropout::new(0.5, 7).unwrap())
        .add(Flatten)
        .add(Dense::new(4, 2, rng).unwrap())
}

#[test]
fn sequential_names_parameters_by_layer_index() {
    let model = mlp(&mut rng());
    let names: Vec<String> = model.parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["0.weight", "0.bias", "3.weight", "3.bias"]);
    assert_eq!(model.num_parameters(), 3 * 4 + 4 + 4 * 2 + 2);
    let nested = Sequential::new().add(ReLU).add(mlp(&mut rng()));
    let names: Vec<String> = nested.parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["1.0.weight", "1.0.bias", "1.3.weight", "1.3.bias"]);
    let shapes: Vec<Vec<usize>> = model.parameters().iter().map(|(_, p)| p.dims().to_vec()).collect();
    assert_eq!(shapes, [vec![3, 4], vec![4], vec![4, 2], vec![2]]);
    assert!(model.parameters().iter().all(|(_, p)| p.is_leaf()));
    assert!(model.summary().contains("Dense(3 → 4, relu)"));
    assert_eq!(model.len(), 4);
    assert!(format!("{model:?}").contains("Dropout(p=0.5)"));
}

#[test]
fn sequential_gradcheck_through_a_whole_network() {
    let x = t(&[0.3, -0.8, 1.1, 0.45, 0.2, -1.3], &[2, 3]);
    let w1 = t(
        &[0.5, -0.35, 0.25, 0.7, -0.6, 0.15, 0.9, -0.2, 0.33, 0.41, -0.27, 0.8],
        &[3, 4],
    );
    let b1 = t(&[0.05, -0.1, 0.2, 0.0], &[4]);
    let w2 = t(&[0.3, -0.5, 0.8, 0.1, -0.4, 0.6, 0.2, -0.7], &[4, 2]);
    let mask = t(&[1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0], &[2, 4]);
    gradcheck(
        |xs| {
            let mut drop = Dropout::new(0.25, 0)?;
            drop.set_fixed_mask(Some(mask.clone()))?;
            let mut m = Sequential::new()
                .add(Dense::from_weights(xs[1].clone(), Some(xs[2].clone()))?.with_activation(Activation::Tanh))
                .add(drop)
                .add(Dense::from_weights(xs[3].clone(), None)?);
            loss::sparse_categorical_cross_entropy_with_logits(&m.forward(&xs[0])?, &[1, 0], Reduction::Mean)
        },
        &[x, w1, b1, w2],
    )
    .unwrap();
}

#[test]
fn gradients_reach_every_parameter_and_an_update_keeps_identity() {
    let mut r = rng();
    let mut model = mlp(&mut r);
    let x = Tensor::<f64>::rand_normal([5, 3], 0.0, 1.0, &mut r).unwrap();
    let step = |model: &mut Sequential<f64>| -> Result<f64> {
        let l =
            loss::sparse_categorical_cross_entropy_with_logits(&model.forward(&x)?, &[0, 1, 1, 0, 1], Reduction::Mean)?;
        let grads = l.backward()?;
        for (_, p) in model.trainable_parameters_mut() {
            let g = grads.get(p).expect("every trainable parameter has a gradient").clone();
            for (w, g) in p.data_mut().iter_mut().zip(g.data()) {
                *w -= 0.1 * g;
            }
        }
        l.item()
    };
    let first = step(&mut model).unwrap();
    let ids: Vec<_> = model.parameters().iter().map(|(_, p)| p.node_id()).collect();
    model.eval(); // deterministic: no dropout
    let a = step(&mut model).unwrap();
    let mut last = a;
    for _ in 0..30 {
        last = step(&mut model).unwrap();
    }
    assert!(last < a, "{first} {a} {last}");
    let ids2: Vec<_> = model.parameters().iter().map(|(_, p)| p.node_id()).collect();
    assert_eq!(ids, ids2, "in-place updates keep autograd identity");
}

#[test]
fn freezing_excludes_parameters_from_gradients() {
    let mut model = mlp(&mut rng());
    model.eval();
    model.freeze("0").unwrap();
    assert_eq!(model.trainable_parameters_mut().len(), 2);
    assert_eq!(model.parameters_mut().len(), 4);
    assert!(!model.parameters()[0].1.is_tracked());
    let l = model.forward(&Tensor::ones([2, 3]).unwrap()).unwrap().sum_all();
    let grads = l.backward().unwrap();
    assert_eq!(grads.len(), 2);
    assert!(grads.get(model.parameters()[0].1).is_none());
    assert!(grads.get(model.parameters()[2].1).is_some());

    model.unfreeze("0.weight").unwrap();
    assert_eq!(model.trainable_parameters_mut().len(), 3);
    assert!(model.parameters()[0].1.is_leaf());
    model.freeze("3.bias").unwrap();
    assert_eq!(model.trainable_parameters_mut().len(), 2);
    let err = model.freeze("7").unwrap_err().to_string();
    assert!(err.contains("'7'") && err.contains("0.weight"), "{err}");
    // A whole network frozen: nothing is tracked, so the loss cannot be backpropagated.
    model.freeze("0").unwrap();
    model.freeze("3").unwrap();
    assert!(!model.forward(&Tensor::ones([2, 3]).unwrap()).unwrap().is_tracked());
}

#[test]
fn train_and_eval_modes_reach_dropout() {
    let mut model = mlp(&mut rng());
    assert!(model.is_training());
    assert!(model.layer(1).unwrap().is_training());
    model.eval();
    assert!(!model.is_training() && !model.layer(1).unwrap().is_training());
    let x = Tensor::ones([2, 3]).unwrap();
    let y1 = model.forward(&x).unwrap();
    let y2 = model.forward(&x).unwrap();
    assert_eq!(y1.to_vec(), y2.to_vec(), "eval is deterministic");
    model.train(true);
    assert!(model.layer_mut(1).unwrap().is_training());
    // A layer added to an eval-mode model starts in eval mode.
    let mut m = Sequential::<f64>::new();
    m.eval();
    m.push(Dropout::new(0.5, 1).unwrap());
    assert!(!m.layer(0).unwrap().is_training());
}

#[test]
fn inference_under_no_grad_records_nothing() {
    let mut model = mlp(&mut rng());
    model.eval();
    let y = no_grad(|| model.forward(&Tensor::ones([8, 3]).unwrap())).unwrap();
    assert!(!y.is_tracked());
    // Outside no_grad the same forward records (the parameters are tracked leaves).
    assert!(model.forward(&Tensor::ones([8, 3]).unwrap()).unwrap().is_tracked());
}

#[test]
fn state_dict_round_trip_and_strict_loading() {
    let a = mlp(&mut StdRng::seed_from_u64(1));
    let mut b = mlp(&mut StdRng::seed_from_u64(2));
    assert_ne!(a.parameters()[0].1.to_vec(), b.parameters()[0].1.to_vec());
    b.load_state_dict(&a.state_dict()).unwrap();
    for ((na, pa), (nb, pb)) in a.parameters().iter().zip(b.parameters()) {
        assert_eq!((na, pa.to_vec()), (&nb, pb.to_vec()));
        assert!(pb.is_leaf());
    }
    let mut state = a.state_dict();
    state.pop();
    let err = b.load_state_dict(&state).unwrap_err().to_string();
    assert!(err.contains("'3.bias'") && err.contains("missing"), "{err}");
    let mut state = a.state_dict();
    state.push(("9.weight".into(), Tensor::ones([1]).unwrap()));
    let err = b.load_state_dict(&state).unwrap_err().to_string();
    assert!(err.contains("'9.weight'"), "{err}");
}
