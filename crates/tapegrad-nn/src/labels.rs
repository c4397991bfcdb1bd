//! [`Labels`]: integer class labels as a slice or an [`IndexTensor`].

use tapegrad_core::{Error, IndexTensor, Result, Shape, Tensor};

/// Integer class labels, one per sample: a `[usize]` slice, `Vec<usize>`, array, or an
/// [`IndexTensor`] (whose shape is then checked too).
pub trait Labels {
    /// The labels in row-major order.
    fn as_labels(&self) -> &[usize];

    /// The labels' shape, if they carry one.
    fn label_shape(&self) -> Option<&Shape> {
        None
    }
}

impl Labels for [usize] {
    fn as_labels(&self) -> &[usize] {
        self
    }
}

impl Labels for Vec<usize> {
    fn as_labels(&self) -> &[usize] {
        self
    }
}

impl<const N: usize> Labels for [usize; N] {
    fn as_labels(&self) -> &[usize] {
        self
    }
}

impl Labels for IndexTensor {
    fn as_labels(&self) -> &[usize] {
        self.data()
    }

    fn label_shape(&self) -> Option<&Shape> {
        Some(self.shape())
    }
}

/// Checks one label per row of `scores: [..., C]`, each in `0..C`, and returns them as a
/// gather index of shape `[..., 1]`.
pub(crate) fn label_index<T: tapegrad_core::Element, L: Labels + ?Sized>(
    op: &'static str,
    scores: &Tensor<T>,
    labels: &L,
) -> Result<IndexTensor> {
    if scores.ndim() == 0 {
        return Err(Error::bad_shape(
            op,
            "needs scores of shape [..., classes], got a 0-d tensor",
        ));
    }
    let dims = scores.dims();
    let classes = dims[dims.len() - 1];
    let lead = &dims[..dims.len() - 1];
    let rows: usize = lead.iter().product();
    let ys = labels.as_labels();
    if let Some(shape) = labels.label_shape() {
        if shape.dims() != lead {
            return Err(Error::bad_shape(
                op,
                format!(
                    "labels of shape {shape} for scores of shape {} (expected labels of shape {})",
                    scores.shape(),
                    Shape::from(lead)
                ),
            ));
        }
    }
    if ys.len() != rows {
        return Err(Error::bad_shape(
            op,
            format!(
                "{} labels for scores of shape {} (expected one per row: {rows})",
                ys.len(),
                scores.shape()
            ),
        ));
    }
    if let Some((i, &y)) = ys.iter().enumerate().find(|(_, &y)| y >= classes) {
        return Err(Error::bad_value(
            op,
            format!("label {y} (sample {i}) is out of range for {classes} classes (labels must be in 0..{classes})"),
        ));
    }
    let mut shape = lead.to_vec();
    shape.push(1);
    IndexTensor::from_vec(ys.to_vec(), shape)
}
