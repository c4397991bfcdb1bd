//! Safetensors interop with PyTorch, against files written by Python's `safetensors`
//! package in torch's state_dict layout (fixtures/make_safetensors_fixtures.py).

use tapegrad_core::{Element, Tensor};
use tapegrad_nn::safetensors::{self, Layout};
use tapegrad_nn::{Activation, Dense, Dropout, Flatten, Module, SeedableRng, Sequential, StdRng};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// tapegrad's side of `nn.Sequential(Flatten, Linear(6, 5), ReLU, Dropout(0.2), Linear(5, 3))`.
fn mlp<T: Element>(seed: u64) -> Sequential<T> {
    let mut rng = StdRng::seed_from_u64(seed);
    Sequential::new()
        .add(Flatten)
        .add(Dense::linear(6, 5, &mut rng).unwrap().with_activation(Activation::Relu))
        .add(Dropout::new(0.2, seed).unwrap())
        .add(Dense::linear(5, 3, &mut rng).unwrap())
}

fn io() -> (Tensor<f64>, Tensor<f64>) {
    let file = safetensors::decode::<f64>(&std::fs::read(fixture("torch_mlp_io.safetensors")).unwrap()).unwrap();
    let mut state = file.into_state_dict().into_iter();
    let (nx, x) = state.next().unwrap();
    let (ny, y) = state.next().unwrap();
    assert_eq!((nx.as_str(), ny.as_str()), ("x", "y"));
    (x, y)
}

fn forward<T: Element>(model: &mut Sequential<T>, x: &Tensor<f64>) -> Vec<f64> {
    model.eval();
    let x = Tensor::from_vec(x.data().iter().map(|&v| T::from_f64_lossy(v)).collect(), x.dims()).unwrap();
    model.forward(&x).unwrap().data().iter().map(|v| v.as_f64()).collect()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max)
}

#[test]
fn the_layer_count_shift_gives_pytorch_names() {
    let m = mlp::<f32>(0);
    let torch: Vec<String> = m.torch_params().into_iter().map(|p| p.name).collect();
    assert_eq!(torch, ["1.weight", "1.bias", "4.weight", "4.bias"]);
    let own: Vec<String> = m.parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(own, ["1.weight", "1.bias", "3.weight", "3.bias"]);
    // Nested: the inner Sequential is one module; its own Dense(relu) counts two inside.
    let mut rng = StdRng::seed_from_u64(0);
    let inner = Sequential::<f32>::new()
        .add(Dense::new(2, 2, &mut rng).unwrap().with_activation(Activation::Tanh))
        .add(Dense::new(2, 2, &mut rng).unwrap());
    let outer = Sequential::new()
        .add(Dense::new(2, 2, &mut rng).unwrap().with_activation(Activation::Relu))
        .add(inner)
        .add(Dense::new(2, 1, &mut rng).unwrap().without_bias());
    let names: Vec<String> = outer.torch_params().into_iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        [
            "0.weight",
            "0.bias",
            "2.0.weight",
            "2.0.bias",
            "2.2.weight",
            "2.2.bias",
            "3.weight"
        ]
    );
}

#[test]
fn a_pytorch_file_with_f16_bf16_f64_and_int64_loads_and_matches_numpy() {
    let (x, want) = io();
    for strict in [true, false] {
        let mut m = mlp::<f64>(1);
        let report = safetensors::load(&mut m, fixture("torch_mlp.safetensors"), Layout::PyTorch, strict).unwrap();
        assert!(report.is_complete(), "{report:?}");
        assert_eq!(report.skipped, ["num_batches_tracked"]);
        let mut converted = report.converted.clone();
        converted.sort();
        assert_eq!(
            converted,
            [
                ("1.bias".to_string(), "BF16".to_string()),
                ("1.weight".to_string(), "F16".to_string()),
                ("4.bias".to_string(), "F32".to_string()),
            ]
        );
        let d = max_abs_diff(&forward(&mut m, &x), want.data());
        assert!(d <= 1e-12, "f64 forward differs from numpy by {d:e}");
        eprintln!("f64 forward vs numpy (strict = {strict}): max abs diff {d:e}");
    }
    let mut m = mlp::<f32>(1);
    safetensors::load(&mut m, fixture("torch_mlp.safetensors"), Layout::PyTorch, true).unwrap();
    let d = max_abs_diff(&forward(&mut m, &x), want.data());
    assert!(d <= 1e-6, "f32 forward differs from numpy by {d:e}");
    eprintln!("f32 forward vs numpy: max abs diff {d:e}");
    // The weight landed transposed: PyTorch's 1.weight [5, 6] is tapegrad's [6, 5].
    assert_eq!(m.parameters()[0].1.dims(), &[6, 5]);
}

#[test]
fn a_keras_layout_file_loads_in_keras_layout_only() {
    let (x, want) = io();
    let mut m = mlp::<f64>(2);
    let report = safetensors::load(&mut m, fixture("keras_mlp.safetensors"), Layout::Keras, true).unwrap();
    assert!(report.is_complete() && report.skipped.is_empty(), "{report:?}");
    // F32 weights in an f64 model: the f32 roundings of float64 values, so 1e-6.
    let d = max_abs_diff(&forward(&mut m, &x), want.data());
    assert!(d <= 1e-6, "{d:e}");
    let before = m.state_dict();
    let err = safetensors::load(&mut m, fixture("keras_mlp.safetensors"), Layout::PyTorch, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"keras\"") && err.contains("Layout::PyTorch"), "{err}");
    let after = m.state_dict();
    assert!(before.iter().zip(&after).all(|(a, b)| a.1.to_vec() == b.1.to_vec()));
}

#[test]
fn strict_loading_lists_every_problem_in_one_error_and_modifies_nothing() {
    let mut m = mlp::<f32>(3);
    let before: Vec<Vec<f32>> = m.parameters().iter().map(|(_, t)| t.to_vec()).collect();
    let err = safetensors::load(&mut m, fixture("torch_mlp_bad.safetensors"), Layout::PyTorch, true)
        .unwrap_err()
        .to_string();
    for part in [
        "4 problems",
        "missing: '4.bias'",
        "unexpected: '5.weight' ([3, 3])",
        "shape: '1.weight' is [5, 7] in the source, the model needs [5, 6]",
        "dtype: '1.bias' is I64",
    ] {
        assert!(err.contains(part), "{part:?} not in:\n{err}");
    }
    let after: Vec<Vec<f32>> = m.parameters().iter().map(|(_, t)| t.to_vec()).collect();
    assert_eq!(before, after);
    // Non-strict: missing and unexpected become a report, but shape and dtype still fail.
    let err = safetensors::load(&mut m, fixture("torch_mlp_bad.safetensors"), Layout::PyTorch, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("2 problems") && !err.contains("missing"), "{err}");
}

#[test]
fn non_strict_loading_reports_missing_and_unexpected_names() {
    // A bigger PyTorch model's file into a model whose last layer differs in name.
    let mut rng = StdRng::seed_from_u64(4);
    let mut m = Sequential::<f64>::new()
        .add(Flatten)
        .add(Dense::linear(6, 5, &mut rng).unwrap())
        .add(Dense::linear(5, 2, &mut rng).unwrap());
    let last = m.parameters()[2].1.to_vec();
    let report = safetensors::load(&mut m, fixture("torch_mlp.safetensors"), Layout::PyTorch, false).unwrap();
    assert_eq!(report.missing, ["2.weight", "2.bias"]);
    assert_eq!(report.unexpected, ["4.bias", "4.weight"]);
    assert_eq!(report.skipped, ["num_batches_tracked"]);
    assert!(!report.is_complete());
    assert_eq!(
        m.parameters()[2].1.to_vec(),
        last,
        "a missing parameter keeps its value"
    );
    let err = safetensors::load(&mut m, fixture("torch_mlp.safetensors"), Layout::PyTorch, true)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing: '2.weight'") && err.contains("unexpected: '4.weight'"),
        "{err}"
    );
}

#[test]
fn pytorch_export_transposes_renames_and_writes_metadata() {
    let m = mlp::<f32>(5);
    let bytes = safetensors::to_bytes(&m, Layout::PyTorch).unwrap();
    let file = safetensors::decode::<f32>(&bytes).unwrap();
    let meta: Vec<(&str, &str)> = file.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        meta,
        [
            ("dtype", "f32"),
            ("format", "pt"),
            ("framework", "tapegrad"),
            ("layout", "pytorch")
        ]
    );
    let shapes: Vec<(&str, &[usize])> = file.tensors.iter().map(|t| (t.name.as_str(), &t.shape[..])).collect();
    assert_eq!(
        shapes,
        [
            ("1.bias", &[5][..]),
            ("1.weight", &[5, 6]),
            ("4.bias", &[3]),
            ("4.weight", &[3, 5])
        ]
    );
    // 1.weight[o][i] == tapegrad's weight[i][o].
    let w = m.parameters()[0].1.to_vec();
    let t = file.tensors[1].values.as_ref().unwrap().to_vec();
    for o in 0..5 {
        for i in 0..6 {
            assert_eq!(t[o * 6 + i], w[i * 5 + o]);
        }
    }
    // Round trip, and the Keras export is tapegrad's own names and layout.
    let mut back = mlp::<f32>(6);
    safetensors::load_from_bytes(&mut back, &bytes, Layout::PyTorch, true).unwrap();
    assert_eq!(
        back.state_dict().iter().map(|p| p.1.to_vec()).collect::<Vec<_>>(),
        m.state_dict().iter().map(|p| p.1.to_vec()).collect::<Vec<_>>()
    );
    let keras = safetensors::decode::<f32>(&safetensors::to_bytes(&m, Layout::Keras).unwrap()).unwrap();
    assert_eq!(keras.metadata["layout"], "keras");
    assert!(!keras.metadata.contains_key("format"));
    let names: Vec<&str> = keras.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["1.bias", "1.weight", "3.bias", "3.weight"]);
    assert_eq!(keras.tensors[1].shape, [6, 5]);
    // The PyTorch file refuses the Keras layout, and vice versa.
    let err = safetensors::load_from_bytes(&mut back, &bytes, Layout::Keras, true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"pytorch\""), "{err}");
}

#[test]
fn a_file_without_layout_metadata_loads_in_either_layout() {
    // A square layer is where a silent transposition would go unnoticed by the shapes.
    let mut rng = StdRng::seed_from_u64(7);
    let a = Dense::<f64>::new(3, 3, &mut rng).unwrap();
    let torch_w = a.torch_params();
    assert!(torch_w[0].transposed);
    let w = a.weight().to_vec();
    let wt: Vec<f64> = (0..9).map(|k| w[(k % 3) * 3 + k / 3]).collect();
    let state = vec![
        ("weight".to_string(), Tensor::from_vec(wt, [3, 3]).unwrap()),
        ("bias".to_string(), a.bias().unwrap().clone()),
    ];
    let bytes = safetensors::encode(&state, &Default::default()).unwrap();
    let mut b = Dense::<f64>::new(3, 3, &mut rng).unwrap();
    safetensors::load_from_bytes(&mut b, &bytes, Layout::PyTorch, true).unwrap();
    assert_eq!(b.weight().to_vec(), w, "PyTorch's [out, in] transposed into [in, out]");
    safetensors::load_from_bytes(&mut b, &bytes, Layout::Keras, true).unwrap();
    assert_ne!(b.weight().to_vec(), w, "the Keras layout takes the values as they are");
    // An unknown layout name is refused in both.
    let meta = [("layout".to_string(), "jax".to_string())].into_iter().collect();
    let bytes = safetensors::encode(&state, &meta).unwrap();
    for layout in [Layout::PyTorch, Layout::Keras] {
        let err = safetensors::load_from_bytes(&mut b, &bytes, layout, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"jax\""), "{err}");
    }
}
