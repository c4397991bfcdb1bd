//! Datasets of tensors: [`Features`] of any sample shape (bytes, `f32` or `f64`) with
//! [`TargetData`] (class indices or float samples), built from vectors, IDX files or CSV
//! files, and seeded mini-batches over them.

pub mod csv;
pub mod features;
pub mod idx;
pub mod mnist;
pub mod targets;

use features::Features;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use tapegrad_core::{Element, Error, Result, Tensor};
use targets::{TargetData, Targets};

/// One mini-batch: the inputs `x: [B, ...sample_dims]` and their targets.
#[derive(Clone, Debug)]
pub struct Batch<T: Element> {
    /// The inputs, `[B, ...sample_dims]`.
    pub x: Tensor<T>,
    /// The targets of the same `B` samples.
    pub y: Targets<T>,
}

/// From this many feature elements in an epoch, [`Dataset::for_each_batch`] prepares the
/// batches on a second thread. Below it (an epoch whose gathers take well under a
/// millisecond: a small validation set, a test's dataset) they are made inline: there is
/// little to hide, and small runs keep to one thread.
pub(crate) const PREFETCH_MIN: usize = 1 << 20;

/// The most feature elements (over all its batches) that the prefetch thread hands over at
/// once. Handing batches over one at a time cost a wake-up of the other thread at every
/// step, more than MNIST's gather of 32 images saves (the seed MLP's epoch: median 0.593 s
/// with the thread, 0.541 s inline, 5 alternated runs each); in chunks the wake-up comes
/// once per chunk. Larger chunks wait longer in the cache before their step reads them: the
/// seed MLP's last epoch (of 3), medians of 5 alternated runs on an AMD EPYC (Zen 5): inline
/// 0.199 s; chunks of up to 2¹⁶ elements 0.191, 2¹⁷ (five of its batches) **0.180**, 2¹⁸
/// 0.186, 2¹⁹ 0.189. A batch larger than this goes alone.
pub(crate) const PREFETCH_CHUNK: usize = 1 << 17;

/// Samples and their targets, like the `(x, y)` arrays given to Keras's `fit`.
///
/// ```
/// use tapegrad_train::{Dataset, Features, TargetData, Targets};
/// // Four samples of shape [2] with one float target each.
/// let x = Features::from_f32(vec![0., 1., 2., 3., 4., 5., 6., 7.], [2])?;
/// let y = TargetData::Values(Features::from_f32(vec![1., 5., 9., 13.], [1])?);
/// let data = Dataset::new(x, y)?;
/// let batch = data.batch::<f64>(&[3, 0])?;
/// assert_eq!(batch.x.to_vec(), [6., 7., 0., 1.]);
/// assert_eq!(batch.y.values()?.to_vec(), [13., 1.]);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    features: Features,
    targets: TargetData,
}

impl Dataset {
    /// A dataset of `features` with one target each.
    ///
    /// Errors if the sample counts differ, a class label is not below the class count,
    /// or the class count is zero.
    ///
    /// ```
    /// use tapegrad_train::{Dataset, Features, TargetData};
    /// let x = Features::from_bytes(vec![0, 255, 128, 64], [2])?;
    /// let ok = Dataset::new(x.clone(), TargetData::Classes { labels: vec![1, 0], classes: 2 })?;
    /// assert_eq!(ok.classes(), Some(2));
    /// let bad = Dataset::new(x, TargetData::Classes { labels: vec![1, 2], classes: 2 });
    /// assert!(bad.unwrap_err().to_string().contains("label 2 of sample 1"));
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn new(features: Features, targets: TargetData) -> Result<Self> {
        if features.len() != targets.len() {
            return Err(Error::bad_shape(
                "Dataset",
                format!("{} samples of features but {} targets", features.len(), targets.len()),
            ));
        }
        if let TargetData::Classes { labels, classes } = &targets {
            if *classes == 0 {
                return Err(Error::bad_value("Dataset", "class targets need at least one class"));
            }
            if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l >= *classes) {
                return Err(Error::bad_value(
                    "Dataset",
                    format!("label {l} of sample {i} is not below {classes} classes"),
                ));
            }
        }
        Ok(Dataset { features, targets })
    }

    /// Number of samples.
    ///
    /// ```
    /// use tapegrad_train::{Dataset, Features, TargetData};
    /// let d = Dataset::new(Features::from_f32(vec![0.0; 6], [2])?, TargetData::Classes { labels: vec![0; 3], classes: 1 })?;
    /// assert_eq!(d.len(), 3);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.features.len()
    }

    /// Whether there are no samples.
    ///
    /// ```
    /// use tapegrad_train::{Dataset, Features, TargetData};
    /// let d = Dataset::new(Features::from_f32(vec![], [2])?, TargetData::Classes { labels: vec![], classes: 1 })?;
    /// assert!(d.is_empty());
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shape of one input sample (e.g. `[28, 28]`).
    ///
    /// ```
    /// use tapegrad_train::{Dataset, Features, TargetData};
    /// let d = Dataset::new(Features::from_bytes(vec![0; 8], [2, 2])?, TargetData::Classes { labels: vec![0, 0], classes: 1 })?;
    /// assert_eq!(d.sample_dims(), &[2, 2]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn sample_dims(&self) -> &[usize] {
        self.features.sample_dims()
    }

    /// The input samples.
    ///
    /// ```
    /// use tapegrad_train::{Dataset, Features, TargetData};
    /// let d = Dataset::new(Features::from_f32(vec![0.0; 6], [3])?, TargetData::Classes { labels: vec![0, 0], classes: 1 })?;
    /// assert_eq!(d.features().sample_dims(), &[3]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// The targets.
    ///
    /// ```
    /// use tapegrad_train::{Dataset, Features, TargetData};
    /// let d = Dataset::new(Features::from_f32(vec![0.0; 2], [1])?, TargetData::Values(Features::from_f32(vec![1.0, 2.0], [1])?))?;
    /// assert!(matches!(d.targets(), TargetData::Values(_)));
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn targets(&self) -> &TargetData {
        &self.targets
    }

    /// Number of classes, when the targets are class indices.
    ///
    /// ```
    /// use tapegrad_train::{Dataset, Features, TargetData};
    /// let d = Dataset::new(Features::from_f32(vec![0.0; 2], [1])?, TargetData::Classes { labels: vec![0, 4], classes: 5 })?;
    /// assert_eq!(d.classes(), Some(5));
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn classes(&self) -> Option<usize> {
        match &self.targets {
            TargetData::Classes { classes, .. } => Some(*classes),
            TargetData::Values(_) => None,
        }
    }

    /// The class labels, when the targets are class indices.
    ///
    /// ```
    /// use tapegrad_train::{Dataset, Features, TargetData};
    /// let d = Dataset::new(Features::from_f32(vec![0.0; 2], [1])?, TargetData::Classes { labels: vec![1, 0], classes: 2 })?;
    /// assert_eq!(d.labels(), Some(&[1, 0][..]));
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn labels(&self) -> Option<&[usize]> {
        match &self.targets {
            TargetData::Classes { labels, .. } => Some(labels),
            TargetData::Values(_) => None,
        }
    }

    /// The first `n` samples (all of them if `n` is larger).
    ///
    /// ```
    /// use tapegrad_train::{Dataset, Features, TargetData};
    /// let d = Dataset::new(Features::from_f32(vec![0.0; 4], [1])?, TargetData::Classes { labels: vec![0; 4], classes: 1 })?;
    /// assert_eq!((d.take(3).len(), d.take(9).len()), (3, 4));
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn take(&self, n: usize) -> Dataset {
        self.split_at(n).0
    }

    /// The samples before `at` and those from `at` on (`at` clamped to the length).
    ///
    /// ```
    /// use tapegrad_train::{Dataset, Features, TargetData};
    /// let d = Dataset::new(Features::from_f32(vec![0., 1., 2.], [1])?, TargetData::Classes { labels: vec![0; 3], classes: 1 })?;
    /// let (a, b) = d.split_at(2);
    /// assert_eq!((a.len(), b.len()), (2, 1));
    /// assert_eq!(b.batch::<f32>(&[0])?.x.to_vec(), [2.0]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn split_at(&self, at: usize) -> (Dataset, Dataset) {
        let at = at.min(self.len());
        let n = self.len();
        (
            Dataset {
                features: self.features.slice(0..at),
                targets: self.targets.slice(0..at),
            },
            Dataset {
                features: self.features.slice(at..n),
                targets: self.targets.slice(at..n),
            },
        )
    }

    /// Keras's `validation_split`: the training part and the LAST `fraction` of the
    /// samples, taken in order before any shuffling. The training part has
    /// `⌊n·(1 − fraction)⌋` samples.
    ///
    /// Errors unless `0 < fraction < 1` and both parts are non-empty.
    ///
    /// ```
    /// use tapegrad_train::{Dataset, Features, TargetData};
    /// let d = Dataset::new(Features::from_f32((0..10).map(|i| i as f32).collect(), [1])?,
    ///                      TargetData::Classes { labels: vec![0; 10], classes: 1 })?;
    /// let (train, val) = d.validation_split(0.2)?;
    /// assert_eq!(val.batch::<f32>(&[0, 1])?.x.to_vec(), [8.0, 9.0]);
    /// assert_eq!(train.len(), 8);
    /// assert!(d.validation_split(1.0).is_err());
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn validation_split(&self, fraction: f64) -> Result<(Dataset, Dataset)> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(Error::bad_value(
                "validation_split",
                format!("the fraction must be in (0, 1), got {fraction}"),
            ));
        }
        let at = (self.len() as f64 * (1.0 - fraction)).floor() as usize;
        if at == 0 || at == self.len() {
            return Err(Error::bad_value(
                "validation_split",
                format!(
                    "a fraction of {fraction} of {} samples leaves {at} for training and {} for validation: both need at least one",
                    self.len(),
                    self.len() - at
                ),
            ));
        }
        Ok(self.split_at(at))
    }

    /// The samples at `indices` as a `[B, ...sample_dims]` tensor (bytes scaled to
    /// `[0, 1]`) with their targets.
    ///
    /// Errors if an index is out of range.
    ///
    /// ```
    /// use tapegrad_train::{Dataset, Features, TargetData};
    /// let d = Dataset::new(Features::from_bytes(vec![0, 255, 51, 0], [2])?, TargetData::Classes { labels: vec![1, 0], classes: 2 })?;
    /// let b = d.batch::<f32>(&[1])?;
    /// assert_eq!((b.x.to_vec(), b.y.classes()?), (vec![0.2, 0.0], &[0][..]));
    /// assert!(d.batch::<f32>(&[2]).is_err());
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn batch<T: Element>(&self, indices: &[usize]) -> Result<Batch<T>> {
        if let Some(&i) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(Error::IndexOutOfRange {
                op: "Dataset::batch",
                index: i,
                size: self.len(),
            });
        }
        let x = gather::<T>(&self.features, indices)?;
        let y = match &self.targets {
            TargetData::Classes { labels, .. } => Targets::Classes(indices.iter().map(|&i| labels[i]).collect()),
            TargetData::Values(f) => Targets::Values(gather::<T>(f, indices)?),
        };
        Ok(Batch { x, y })
    }

    /// Calls `step` on each batch of `batches` in order. When the epoch holds at least 2²⁰
    /// feature elements and the process may run on two CPUs or more, the batches are
    /// prepared on a second thread meanwhile (like a PyTorch `DataLoader` with one worker,
    /// or Keras's prefetching input pipeline): gathering random samples waits on memory, and
    /// overlapping that with the steps hides it. The thread hands batches over in chunks (1,
    /// 2, 4, … batches, up to 2¹⁷ feature elements a chunk), so that the first step need not
    /// wait for a large chunk and the handoff's wake-up comes once per chunk, not once per
    /// step; the handoff is a bounded channel that blocks, so no thread spins while it
    /// waits. Smaller epochs are made on the calling thread. The batches, their order and
    /// their values are the same either way. Stops at the first error.
    ///
    /// ```
    /// use tapegrad_train::{Dataset, Features, TargetData};
    /// let d = Dataset::new(Features::from_f32(vec![0.0; 5], [1])?, TargetData::Classes { labels: vec![0; 5], classes: 1 })?;
    /// let mut sizes = vec![];
    /// d.for_each_batch::<f32>(&d.batch_indices(2, false, 0, 0, false)?, |_, b| {
    ///     sizes.push(b.y.len());
    ///     Ok(())
    /// })?;
    /// assert_eq!(sizes, [2, 2, 1]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn for_each_batch<T: Element>(
        &self,
        batches: &[Vec<usize>],
        mut step: impl FnMut(usize, Batch<T>) -> Result<()>,
    ) -> Result<()> {
        let per = self.features.per_sample();
        let samples: usize = batches.iter().map(Vec::len).sum();
        let small = samples.saturating_mul(per) < PREFETCH_MIN;
        if small || std::thread::available_parallelism().is_ok_and(|n| n.get() < 2) {
            for (i, idx) in batches.iter().enumerate() {
                step(i, self.batch::<T>(idx)?)?;
            }
            return Ok(());
        }
        let largest = batches.iter().map(Vec::len).max().unwrap_or(0);
        let most = (PREFETCH_CHUNK / largest.saturating_mul(per).max(1)).max(1);
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Result<Batch<T>>>>(1);
            scope.spawn(move || {
                let (mut rest, mut size) = (batches, 1);
                while !rest.is_empty() {
                    let (now, later) = rest.split_at(size.min(rest.len()));
                    let mut chunk = Vec::with_capacity(now.len());
                    let mut failed = false;
                    for idx in now {
                        let batch = self.batch::<T>(idx);
                        failed = batch.is_err();
                        chunk.push(batch);
                        if failed {
                            break;
                        }
                    }
                    // The consumer stops at an error, and a closed channel means it stopped
                    // early: either way there is nothing more to make.
                    if tx.send(chunk).is_err() || failed {
                        break;
                    }
                    (rest, size) = (later, (2 * size).min(most));
                }
            });
            let mut i = 0;
            for chunk in rx {
                for batch in chunk {
                    step(i, batch?)?;
                    i += 1;
                }
            }
            Ok(())
        })
    }

    /// The order of one epoch's samples, cut into batches: shuffled with a generator seeded
    /// from `(seed, epoch)` when `shuffle`, so every epoch differs and every run repeats;
    /// the last short batch dropped when `drop_last` (PyTorch's `DataLoader(drop_last=True)`).
    ///
    /// ```
    /// use tapegrad_train::{Dataset, Features, TargetData};
    /// let d = Dataset::new(Features::from_f32(vec![0.0; 5], [1])?, TargetData::Classes { labels: vec![0; 5], classes: 1 })?;
    /// assert_eq!(d.batch_indices(2, false, 0, 0, true)?, vec![vec![0, 1], vec![2, 3]]);
    /// assert_eq!(d.batch_indices(2, true, 7, 1, false)?, d.batch_indices(2, true, 7, 1, false)?);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
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

/// The samples of `f` at `indices` (already range-checked) as a `[B, ...sample_dims]`
/// tensor, written once into a buffer the tensor then takes without a copy.
fn gather<T: Element>(f: &Features, indices: &[usize]) -> Result<Tensor<T>> {
    let per = f.per_sample();
    let total = indices.len().checked_mul(per).ok_or_else(|| {
        Error::bad_shape(
            "Dataset::batch",
            format!("{} samples of {per} values overflow usize", indices.len()),
        )
    })?;
    let mut x = Vec::with_capacity(total);
    f.gather_extend(indices, &mut x);
    let mut dims = vec![indices.len()];
    dims.extend_from_slice(f.sample_dims());
    Tensor::from_vec(x, dims)
}
