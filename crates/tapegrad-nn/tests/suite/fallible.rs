//! Failures reachable from user input are `Err`s naming the op and the values, never
//! panics: regression tests for the fallibility audit.

use tapegrad_core::Tensor;
use tapegrad_nn::safetensors::{self, Layout};
use tapegrad_nn::{metrics, Dense, Init, Module, Param, SeedableRng, Sequential, Softmax, StdRng, TorchParam};

fn rng() -> StdRng {
    StdRng::seed_from_u64(0)
}

#[test]
fn a_dense_whose_weight_was_replaced_by_a_vector_errors_instead_of_panicking() {
    let mut layer = Dense::<f32>::new(3, 2, &mut rng()).unwrap();
    *layer.parameters_mut()[0].1 = Tensor::ones([6]).unwrap().requires_grad();
    assert_eq!((layer.in_features(), layer.out_features()), (6, 0));
    let _ = layer.describe();
    let err = layer.forward(&Tensor::ones([1, 3]).unwrap()).unwrap_err().to_string();
    assert!(err.contains("Dense") && err.contains("[6]"), "{err}");
    *layer.parameters_mut()[0].1 = Tensor::scalar(1.0).requires_grad();
    assert_eq!(layer.in_features(), 0);
    assert!(layer.forward(&Tensor::ones([1, 3]).unwrap()).is_err());
}

#[test]
fn layer_sizes_that_overflow_are_errors() {
    for (i, o) in [(usize::MAX, 2), (1 << 40, 1 << 40), (usize::MAX / 2, 1)] {
        let err = Dense::<f32>::new(i, o, &mut rng()).unwrap_err().to_string();
        assert!(
            err.contains("more elements than memory can address"),
            "{i} x {o}: {err}"
        );
    }
    let err = Init::GlorotUniform
        .sample::<f64, _>([2], usize::MAX, 1, &mut rng())
        .unwrap_err()
        .to_string();
    assert!(err.contains("fan_in + fan_out overflows"), "{err}");
    assert!(Init::Zeros.sample::<f64, _>([usize::MAX, 2], 1, 1, &mut rng()).is_err());
    assert!(Init::Uniform { low: 1.0, high: 0.0 }
        .sample::<f64, _>([2], 1, 1, &mut rng())
        .is_err());
    assert!(Init::Normal {
        mean: 0.0,
        std: f64::NAN
    }
    .sample::<f64, _>([2], 1, 1, &mut rng())
    .is_err());
}

#[test]
fn accuracy_of_an_empty_batch_is_an_error() {
    for dims in [[0usize, 0], [0, 3]] {
        let err = metrics::accuracy(&Tensor::<f32>::zeros(dims).unwrap(), &Vec::<usize>::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("empty batch"), "{dims:?}: {err}");
    }
    assert!(metrics::accuracy(&Tensor::<f32>::zeros([2, 0]).unwrap(), &[0, 0]).is_err());
}

#[test]
fn a_state_with_a_name_twice_is_rejected() {
    let mut layer = Dense::<f64>::new(2, 1, &mut rng()).unwrap();
    let w = Tensor::ones([2, 1]).unwrap();
    let state = vec![
        ("weight".to_string(), w.clone()),
        ("weight".to_string(), w),
        ("bias".to_string(), Tensor::ones([1]).unwrap()),
    ];
    let err = layer.load_state_dict(&state).unwrap_err().to_string();
    assert!(err.contains("duplicate: 'weight'"), "{err}");
    assert!(layer.load_state_dict_with(&state, false).is_err());
}

/// A hand-written module whose `torch_params` forgets a parameter.
struct Inconsistent {
    w: Param<f32>,
    b: Param<f32>,
}

impl Module<f32> for Inconsistent {
    fn forward(&mut self, x: &Tensor<f32>) -> tapegrad_core::Result<Tensor<f32>> {
        Ok(x.clone())
    }
    fn params(&self) -> Vec<(String, &Param<f32>)> {
        vec![("w".into(), &self.w), ("b".into(), &self.b)]
    }
    fn params_mut(&mut self) -> Vec<(String, &mut Param<f32>)> {
        vec![("w".into(), &mut self.w), ("b".into(), &mut self.b)]
    }
    fn torch_params(&self) -> Vec<TorchParam> {
        vec![TorchParam {
            name: "w".into(),
            transposed: true,
        }]
    }
}

#[test]
fn a_module_whose_torch_names_do_not_follow_its_params_errors() {
    let mut m = Inconsistent {
        w: Param::new(Tensor::ones([2, 3]).unwrap()),
        b: Param::new(Tensor::ones([3]).unwrap()),
    };
    let err = safetensors::to_bytes(&m, Layout::PyTorch).unwrap_err().to_string();
    assert!(err.contains("1 parameters") && err.contains("has 2"), "{err}");
    let bytes = safetensors::to_bytes(&m, Layout::Keras).unwrap();
    assert!(safetensors::load_from_bytes(&mut m, &bytes, Layout::PyTorch, false).is_err());
    // Inside a Sequential too.
    let mut seq = Sequential::new().add(m);
    assert!(safetensors::to_bytes(&seq, Layout::PyTorch).is_err());
    assert!(seq.forward(&Tensor::ones([1]).unwrap()).is_ok());
}

#[test]
fn bad_axes_and_shapes_in_layers_are_errors() {
    let x = Tensor::<f32>::ones([2, 3]).unwrap();
    assert!(Softmax::new(5).forward(&x).is_err());
    assert!(Softmax::new(-3).forward(&x).is_err());
    let mut d = Dense::<f32>::new(4, 2, &mut rng()).unwrap();
    let err = d.forward(&x).unwrap_err().to_string();
    assert!(err.contains("[2, 3]") && err.contains("[4, 2]"), "{err}");
    assert!(d.forward(&Tensor::scalar(1.0)).is_err());
}

#[test]
fn zero_size_tensors_transpose_and_load_without_overflow() {
    // [0, usize::MAX] holds no element, but its strides would overflow if computed.
    let w = Tensor::<f32>::zeros([0, usize::MAX]).unwrap();
    assert_eq!(w.numel(), 0);
    let layer = Dense::from_weights(w, None).unwrap();
    let bytes = safetensors::to_bytes(&layer, Layout::PyTorch).unwrap();
    let file = safetensors::decode::<f32>(&bytes).unwrap();
    assert_eq!(file.tensors[0].shape, [usize::MAX, 0]);
    let mut again = Dense::from_weights(Tensor::<f32>::zeros([0, usize::MAX]).unwrap(), None).unwrap();
    safetensors::load_from_bytes(&mut again, &bytes, Layout::PyTorch, true).unwrap();
}

/// A module with one 3-D parameter that PyTorch stores with its axes reversed.
struct Reversed(Param<f32>);

impl Module<f32> for Reversed {
    fn forward(&mut self, x: &Tensor<f32>) -> tapegrad_core::Result<Tensor<f32>> {
        Ok(x.clone())
    }
    fn params(&self) -> Vec<(String, &Param<f32>)> {
        vec![("k".into(), &self.0)]
    }
    fn params_mut(&mut self) -> Vec<(String, &mut Param<f32>)> {
        vec![("k".into(), &mut self.0)]
    }
    fn torch_params(&self) -> Vec<TorchParam> {
        vec![TorchParam {
            name: "k".into(),
            transposed: true,
        }]
    }
}

#[test]
fn reversed_axes_of_3d_parameters_round_trip_including_empty_ones() {
    let k = Tensor::<f32>::from_vec((0..24).map(|v| v as f32).collect(), [2, 3, 4]).unwrap();
    let m = Reversed(Param::new(k.clone()));
    let file = safetensors::decode::<f32>(&safetensors::to_bytes(&m, Layout::PyTorch).unwrap()).unwrap();
    let t = file.tensors[0].values.as_ref().unwrap();
    assert_eq!(t.dims(), &[4, 3, 2]);
    // numpy's k.T: t[c][b][a] == k[a][b][c].
    for (a, b, c) in [(0, 0, 0), (1, 2, 3), (0, 1, 2), (1, 0, 3)] {
        assert_eq!(t.data()[c * 6 + b * 2 + a], k.data()[a * 12 + b * 4 + c]);
    }
    let mut back = Reversed(Param::new(Tensor::zeros([2, 3, 4]).unwrap()));
    let bytes = safetensors::to_bytes(&m, Layout::PyTorch).unwrap();
    safetensors::load_from_bytes(&mut back, &bytes, Layout::PyTorch, true).unwrap();
    assert_eq!(back.0.tensor().to_vec(), k.to_vec());
    let empty = Reversed(Param::new(Tensor::zeros([0, 3, 4]).unwrap()));
    let file = safetensors::decode::<f32>(&safetensors::to_bytes(&empty, Layout::PyTorch).unwrap()).unwrap();
    assert_eq!(file.tensors[0].shape, [4, 3, 0]);
}
