//! Metrics.

use tapegrad_core::{IndexTensor, Tensor};
use tapegrad_nn::metrics::{accuracy, binary_accuracy, RunningMean};

#[test]
fn accuracy_uses_the_argmax_of_the_last_axis() {
    let logits =
        Tensor::<f64>::from_vec(vec![0.1, 0.7, 0.2, 0.5, 0.3, 0.2, 0.3, 0.3, 0.4, 1.0, 1.0, 0.0], [4, 3]).unwrap();
    assert_eq!(accuracy(&logits, &[1, 0, 2, 0]).unwrap(), 1.0); // the tie goes to class 0
    assert_eq!(accuracy(&logits, &[1, 1, 2, 1]).unwrap(), 0.5);
    let idx = IndexTensor::from_vec(vec![1, 0, 0, 0], [4]).unwrap();
    assert_eq!(accuracy(&logits, &idx).unwrap(), 0.75);
    // Probabilities give the same answer as the logits they come from.
    let probs = logits.softmax(-1).unwrap();
    assert_eq!(accuracy(&probs, &[1, 1, 2, 1]).unwrap(), 0.5);
    assert!(accuracy(&logits, &[1, 0, 2]).is_err());
    assert!(accuracy(&logits, &[1, 0, 2, 3])
        .unwrap_err()
        .to_string()
        .contains("label 3"));
    assert!(accuracy(&Tensor::<f64>::zeros([0, 3]).unwrap(), &[] as &[usize]).is_err());
}

#[test]
fn binary_accuracy_thresholds() {
    let p = Tensor::<f32>::from_vec(vec![0.9, 0.2, 0.6, 0.4], [4]).unwrap();
    let y = Tensor::from_vec(vec![1.0, 0.0, 0.0, 1.0], [4]).unwrap();
    assert_eq!(binary_accuracy(&p, &y, 0.5).unwrap(), 0.5);
    assert_eq!(binary_accuracy(&p, &y, 0.1).unwrap(), 0.5);
    assert!(binary_accuracy(&p, &Tensor::zeros([4, 1]).unwrap(), 0.5).is_err());
}

#[test]
fn running_mean_weights_batches() {
    let mut m = RunningMean::new();
    assert_eq!(m.mean(), None);
    m.update(2.0);
    m.update(4.0);
    assert_eq!(m.mean(), Some(3.0));
    m.update_weighted(0.0, 2.0);
    assert_eq!(m.mean(), Some(1.5));
    assert_eq!(m.count(), 4.0);
    m.reset();
    assert_eq!((m.mean(), m.count()), (None, 0.0));
}
