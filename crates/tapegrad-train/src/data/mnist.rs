//! MNIST (Yann LeCun, Corinna Cortes, Christopher J.C. Burges; CC BY-SA 3.0): 60,000
//! training and 10,000 test images of 28×28 grey pixels with labels 0–9.

use super::features::Features;
use super::idx::{read_idx, IdxArray};
use super::targets::TargetData;
use super::Dataset;
use std::path::{Path, PathBuf};
use tapegrad_core::{Error, Result};

/// The four MNIST files, loaded and checked. Pixels stay `u8` (47 MB for all of them);
/// batches are scaled to `[0, 1]` as they are drawn.
#[derive(Clone, Debug)]
pub struct Mnist {
    /// 60,000 training images and labels.
    pub train: Dataset,
    /// 10,000 test images and labels.
    pub test: Dataset,
}

/// Finds `name` or `name.gz` in `dir`.
fn locate(dir: &Path, name: &str) -> Result<PathBuf> {
    let gz = dir.join(format!("{name}.gz"));
    let raw = dir.join(name);
    if gz.is_file() {
        Ok(gz)
    } else if raw.is_file() {
        Ok(raw)
    } else {
        Err(Error::Io(format!(
            "MNIST file {name}(.gz) not found in {}",
            dir.display()
        )))
    }
}

/// Reads one split, refusing a header that declares more than `samples` images of
/// 28×28 (or labels): a corrupt or malicious file (a gzip bomb) fails before any large
/// allocation.
fn split(dir: &Path, images: &str, labels: &str, samples: usize) -> Result<Dataset> {
    let (ip, lp) = (locate(dir, images)?, locate(dir, labels)?);
    let img: IdxArray = read_idx(&ip, samples * 28 * 28)?;
    let lab: IdxArray = read_idx(&lp, samples)?;
    if img.dims.len() != 3 {
        return Err(Error::Format(format!(
            "{}: expected images of shape [N, rows, cols], found dims {:?} (is this a label file?)",
            ip.display(),
            img.dims
        )));
    }
    if lab.dims.len() != 1 {
        return Err(Error::Format(format!(
            "{}: expected labels of shape [N], found dims {:?} (is this an image file?)",
            lp.display(),
            lab.dims
        )));
    }
    if img.dims[0] != lab.dims[0] {
        return Err(Error::Format(format!(
            "{} has {} images but {} has {} labels",
            ip.display(),
            img.dims[0],
            lp.display(),
            lab.dims[0]
        )));
    }
    let features = Features::from_bytes(img.data, img.dims[1..].to_vec())
        .map_err(|e| Error::Format(format!("{}: {e}", ip.display())))?;
    let targets = TargetData::Classes {
        labels: lab.data.into_iter().map(usize::from).collect(),
        classes: 10,
    };
    Dataset::new(features, targets).map_err(|e| Error::Format(format!("{}: {e}", lp.display())))
}

impl Mnist {
    /// Loads `train-{images,labels}-idx{3,1}-ubyte[.gz]` and `t10k-…` from `dir`.
    ///
    /// Headers may declare at most MNIST's sizes (60,000 and 10,000 samples of 28×28), so
    /// a corrupt or hostile file is refused before anything large is allocated.
    ///
    /// ```no_run
    /// use tapegrad_train::Mnist;
    /// let m = Mnist::load("data/mnist")?;
    /// assert_eq!((m.train.len(), m.test.len()), (60_000, 10_000));
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        Ok(Mnist {
            train: split(dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60_000)?,
            test: split(dir, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10_000)?,
        })
    }
}
