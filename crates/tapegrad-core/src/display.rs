//! `Display` for tensors, in the style of NumPy and PyTorch: nested brackets, aligned
//! columns, and `...` in place of the middle of dims longer than 6 once a tensor has more
//! than 1000 elements.

use crate::element::Element;
use crate::tensor::Tensor;
use std::fmt;

const SUMMARIZE_OVER: usize = 1000;
const EDGE: usize = 3;

impl<T: Element> fmt::Display for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let summarize = self.numel() > SUMMARIZE_OVER;
        let prec = f.precision().unwrap_or(4);
        // Only the elements shown are formatted (a summary of a huge tensor stays cheap):
        // once here for the column width, once when written.
        let strides = self.shape().strides();
        let mut shown = Vec::new();
        if self.ndim() == 0 {
            shown.push(0);
        } else {
            shown_indices(self.dims(), &strides, 0, 0, summarize, &mut shown);
        }
        let width = shown
            .iter()
            .map(|&i| format_value(self.data()[i], prec).len())
            .max()
            .unwrap_or(1);
        let cell = |i: usize| format_value(self.data()[i], prec);
        write!(f, "tensor(")?;
        if self.ndim() == 0 {
            write!(f, "{}", cell(0))?;
        } else {
            write_dim(f, self.dims(), strides.as_slice(), 0, 0, &cell, width, summarize, 7)?;
        }
        write!(f, ", shape={}, dtype={}", self.shape(), T::DTYPE)?;
        if self.is_tracked() {
            write!(f, ", tracked")?;
        }
        write!(f, ")")
    }
}

/// The indices along one dim that a (possibly summarised) print shows.
fn shown_along(n: usize, summarize: bool) -> Vec<Option<usize>> {
    if summarize && n > 2 * EDGE {
        (0..EDGE)
            .map(Some)
            .chain(std::iter::once(None))
            .chain((n - EDGE..n).map(Some))
            .collect()
    } else {
        (0..n).map(Some).collect()
    }
}

/// The flat offsets of every element a print shows.
fn shown_indices(
    dims: &[usize],
    strides: &[usize],
    depth: usize,
    offset: usize,
    summarize: bool,
    out: &mut Vec<usize>,
) {
    for i in shown_along(dims[depth], summarize).into_iter().flatten() {
        let o = offset + i * strides[depth];
        if depth + 1 == dims.len() {
            out.push(o);
        } else {
            shown_indices(dims, strides, depth + 1, o, summarize, out);
        }
    }
}

fn format_value<T: Element>(v: T, prec: usize) -> String {
    let x = v.as_f64();
    if x.is_finite() && x != 0.0 && (x.abs() >= 1e8 || x.abs() < 1e-4) {
        format!("{:.*e}", prec, x)
    } else {
        format!("{:.*}", prec, x)
    }
}

#[allow(clippy::too_many_arguments)]
fn write_dim(
    f: &mut fmt::Formatter<'_>,
    dims: &[usize],
    strides: &[usize],
    depth: usize,
    offset: usize,
    cell: &dyn Fn(usize) -> String,
    width: usize,
    summarize: bool,
    indent: usize,
) -> fmt::Result {
    write!(f, "[")?;
    let shown = shown_along(dims[depth], summarize);
    for (j, i) in shown.iter().enumerate() {
        if j > 0 {
            if depth + 1 == dims.len() {
                write!(f, ", ")?;
            } else {
                write!(
                    f,
                    ",{}{:indent$}",
                    "\n".repeat(dims.len() - depth - 1),
                    "",
                    indent = indent + depth + 1
                )?;
            }
        }
        match i {
            None => write!(f, "...")?,
            Some(i) if depth + 1 == dims.len() => write!(f, "{:>width$}", cell(offset + i * strides[depth]))?,
            Some(i) => write_dim(
                f,
                dims,
                strides,
                depth + 1,
                offset + i * strides[depth],
                cell,
                width,
                summarize,
                indent,
            )?,
        }
    }
    write!(f, "]")
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    #[test]
    fn prints_like_pytorch() {
        let t = Tensor::<f32>::from_vec(vec![1., 2., 3., 4.], [2, 2]).unwrap();
        assert_eq!(
            t.to_string(),
            "tensor([[1.0000, 2.0000],\n        [3.0000, 4.0000]], shape=[2, 2], dtype=f32)"
        );
        assert_eq!(
            Tensor::<f64>::scalar(0.5).to_string(),
            "tensor(0.5000, shape=[], dtype=f64)"
        );
    }

    #[test]
    fn truncates_large_tensors() {
        let t = Tensor::<f32>::zeros([40, 40]).unwrap();
        let s = t.to_string();
        assert!(s.contains("..."), "{s}");
        assert!(s.lines().count() < 10, "{s}");
    }
}
