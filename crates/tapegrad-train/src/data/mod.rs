//! Datasets of byte images with integer labels, and seeded mini-batches over them.

pub mod idx;
pub mod mnist;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::sync::Arc;
use tapegrad_core::{Element, Error, Result, Tensor};

/// Images stored as bytes (`u8`, scaled to `[0, 1]` only when a batch is drawn) with one
/// class label each.
#[derive(Clone, Debug)]
pub struct Dataset {
    images: Vec<u8>,
    labels: Vec<u8>,
    sample_dims: Vec<usize>,
    classes: usize,
}

impl Dataset {
    /// A dataset of `labels.len()` samples of shape `sample_dims`. Errors if the sizes
    /// disagree or a label is not below `classes`.
    pub fn new(images: Vec<u8>, labels: Vec<u8>, sample_dims: Vec<usize>, classes: usize) -> Result<Self> {
        let per: usize = sample_dims.iter().product();
        if per == 0 || images.len() != per * labels.len() {
            return Err(Error::bad_shape(
                "Dataset",
                format!(
                    "{} bytes of images are not {} samples of {sample_dims:?}",
                    images.len(),
                    labels.len()
                ),
            ));
        }
        if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l as usize >= classes) {
            return Err(Error::bad_value(
                "Dataset",
                format!("label {l} of sample {i} is not below {classes} classes"),
            ));
        }
        Ok(Dataset {
            images,
            labels,
            sample_dims,
            classes,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Shape of one sample (e.g. `[28, 28]`).
    pub fn sample_dims(&self) -> &[usize] {
        &self.sample_dims
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The labels.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The first `n` samples (all of them if `n` is larger).
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        let per: usize = self.sample_dims.iter().product();
        Dataset {
            images: self.images[..n * per].to_vec(),
            labels: self.labels[..n].to_vec(),
            sample_dims: self.sample_dims.clone(),
            classes: self.classes,
        }
    }

    /// The samples at `indices` as a `[B, ...sample_dims]` tensor scaled to `[0, 1]`, and
    /// their labels.
    pub fn batch<T: Element>(&self, indices: &[usize]) -> Result<(Tensor<T>, Vec<usize>)> {
        let per: usize = self.sample_dims.iter().product();
        // One conversion per byte value, not per pixel.
        let mut lut = [T::zero(); 256];
        for (p, v) in lut.iter_mut().enumerate() {
            *v = T::from_f64_lossy(p as f64 / 255.0);
        }
        // Filled in place, so the tensor takes the buffer without a copy.
        let mut x: Arc<[T]> = std::iter::repeat_n(T::zero(), indices.len() * per).collect();
        let buf = Arc::get_mut(&mut x).expect("a fresh buffer is unshared");
        let mut y = Vec::with_capacity(indices.len());
        for (&i, dst) in indices.iter().zip(buf.chunks_exact_mut(per)) {
            if i >= self.len() {
                return Err(Error::IndexOutOfRange {
                    op: "Dataset::batch",
                    index: i,
                    size: self.len(),
                });
            }
            for (d, &p) in dst.iter_mut().zip(&self.images[i * per..(i + 1) * per]) {
                *d = lut[p as usize];
            }
            y.push(self.labels[i] as usize);
        }
        let mut dims = vec![indices.len()];
        dims.extend_from_slice(&self.sample_dims);
        Ok((Tensor::from_shared(x, dims)?, y))
    }

    /// Calls `step` on each batch of `batches` in order, preparing the next batch on a
    /// second thread meanwhile (like a PyTorch `DataLoader` with one worker): gathering
    /// random samples from the byte images waits on memory, and overlapping that with the
    /// step hides it. The handoff is a bounded channel that blocks, so an idle or busy
    /// second core costs nothing but the overlap. Stops at the first error.
    pub fn for_each_batch<T: Element>(
        &self,
        batches: &[Vec<usize>],
        mut step: impl FnMut(usize, Tensor<T>, Vec<usize>) -> Result<()>,
    ) -> Result<()> {
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel(2);
            scope.spawn(move || {
                for idx in batches {
                    // A closed channel means the consumer stopped early: stop too.
                    if tx.send(self.batch::<T>(idx)).is_err() {
                        break;
                    }
                }
            });
            for (i, batch) in rx.iter().enumerate() {
                let (x, y) = batch?;
                step(i, x, y)?;
            }
            Ok(())
        })
    }

    /// The order of one epoch's samples, cut into batches: shuffled with a generator seeded
    /// from `(seed, epoch)` when `shuffle`, so every epoch differs and every run repeats;
    /// the last short batch dropped when `drop_last`.
    pub fn batch_indices(
        &self,
        batch_size: usize,
        shuffle: bool,
        seed: u64,
        epoch: u64,
        drop_last: bool,
    ) -> Result<Vec<Vec<usize>>> {
        if batch_size == 0 {
            return Err(Error::bad_value("batch_indices", "batch size must be at least 1"));
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        if shuffle {
            let mut rng = StdRng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            order.shuffle(&mut rng);
        }
        let mut batches: Vec<Vec<usize>> = order.chunks(batch_size).map(|c| c.to_vec()).collect();
        if drop_last && batches.last().is_some_and(|b| b.len() < batch_size) {
            batches.pop();
        }
        Ok(batches)
    }
}
