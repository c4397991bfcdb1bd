//! Fuzzes building datasets from decoded IDX data: `Mnist::load` on a directory whose four
//! files (raw or gzip'd) come from an `arbitrary`-derived description (well-formed IDX with
//! chosen dims and bytes, or any bytes), and `Features::from_bytes` + `Dataset::new` on the
//! decoded arrays with a chosen class count, then batching and splitting what was built.
//! Every call must return `Ok` or `Err`; a loaded MNIST must hold as many labels as
//! images, each label below 10, and batches of the requested size.
#![no_main]

use arbitrary::Arbitrary;
use flate2::write::GzEncoder;
use flate2::Compression;
use libfuzzer_sys::fuzz_target;
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;
use tapegrad_train::data::idx::decode_idx;
use tapegrad_train::data::idx::encode_idx;
use tapegrad_train::{Dataset, Features, Mnist, TargetData};

#[derive(Arbitrary, Debug)]
struct Input {
    images: FileDesc,
    labels: FileDesc,
    /// The test split reuses the training files, or is this one.
    test_images: Option<FileDesc>,
    classes: u8,
    batch: u8,
    shuffle_seed: Option<u64>,
    fraction: f64,
}

#[derive(Arbitrary, Debug)]
struct FileDesc {
    content: Content,
    gzip: bool,
}

#[derive(Arbitrary, Debug)]
enum Content {
    /// A well-formed IDX file of these dims (`u16` each, so the declared size can pass or
    /// exceed MNIST's caps) whose data is `fill` repeated, cut to what the dims need or not.
    Idx {
        dims: Vec<u16>,
        fill: Vec<u8>,
        exact: bool,
    },
    Raw(Vec<u8>),
}

impl FileDesc {
    fn bytes(&self) -> Vec<u8> {
        let plain = match &self.content {
            Content::Idx { dims, fill, exact } => {
                let dims: Vec<usize> = dims.iter().take(4).map(|&d| usize::from(d)).collect();
                let need = dims.iter().product::<usize>().min(1 << 16);
                let len = if *exact { need } else { fill.len() };
                let data: Vec<u8> = fill
                    .iter()
                    .copied()
                    .cycle()
                    .take(if fill.is_empty() { 0 } else { len })
                    .collect();
                encode_idx(&dims, &data)
            }
            Content::Raw(b) => b.clone(),
        };
        if self.gzip {
            let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
            gz.write_all(&plain).expect("compressing into memory");
            gz.finish().expect("compressing into memory")
        } else {
            plain
        }
    }
}

/// A directory of this process's own, reused for every input.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("tapegrad-fuzz-mnist-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("a temporary directory");
        d
    })
}

fn write(name: &str, desc: &FileDesc) {
    let d = dir();
    let (gz, raw) = (d.join(format!("{name}.gz")), d.join(name));
    let _ = std::fs::remove_file(&gz);
    let _ = std::fs::remove_file(&raw);
    std::fs::write(if desc.gzip { gz } else { raw }, desc.bytes()).expect("writing a temporary file");
}

fuzz_target!(|input: Input| {
    let test_images = input.test_images.as_ref().unwrap_or(&input.images);
    write("train-images-idx3-ubyte", &input.images);
    write("train-labels-idx1-ubyte", &input.labels);
    write("t10k-images-idx3-ubyte", test_images);
    write("t10k-labels-idx1-ubyte", &input.labels);
    if let Ok(m) = Mnist::load(dir()) {
        for d in [&m.train, &m.test] {
            assert_eq!(d.classes(), Some(10));
            let labels = d.labels().expect("MNIST has class labels");
            assert_eq!(labels.len(), d.len());
            assert!(labels.iter().all(|&l| l < 10), "a label past 9 was accepted");
            exercise(d, &input);
        }
    }

    // The same decoded arrays, as a caller building its own dataset would use them.
    let (Ok(img), Ok(lab)) = (
        decode_idx(&plain(&input.images)[..], 1 << 20),
        decode_idx(&plain(&input.labels)[..], 1 << 20),
    ) else {
        return;
    };
    let Some((_, sample)) = img.dims.split_first() else {
        return;
    };
    let Ok(features) = Features::from_bytes(img.data, sample.to_vec()) else {
        return;
    };
    let targets = TargetData::Classes {
        labels: lab.data.iter().map(|&b| usize::from(b)).collect(),
        classes: usize::from(input.classes),
    };
    if let Ok(d) = Dataset::new(features, targets) {
        exercise(&d, &input);
    }
});

fn plain(desc: &FileDesc) -> Vec<u8> {
    FileDesc {
        content: match &desc.content {
            Content::Idx { dims, fill, exact } => Content::Idx {
                dims: dims.clone(),
                fill: fill.clone(),
                exact: *exact,
            },
            Content::Raw(b) => Content::Raw(b.clone()),
        },
        gzip: false,
    }
    .bytes()
}

/// Batches of the requested size (the last may be short) and a validation split.
fn exercise(d: &Dataset, input: &Input) {
    let size = usize::from(input.batch);
    if let Ok(batches) = d.batch_indices(
        size,
        input.shuffle_seed.is_some(),
        input.shuffle_seed.unwrap_or(0),
        1,
        false,
    ) {
        assert_eq!(
            batches.iter().map(Vec::len).sum::<usize>(),
            d.len(),
            "batches lost samples"
        );
        for idx in batches.iter().take(2) {
            let b = d.batch::<f32>(idx).expect("valid indices make a batch");
            assert_eq!(b.x.dims()[0], idx.len());
            assert_eq!(&b.x.dims()[1..], d.sample_dims());
        }
    }
    if let Ok((train, val)) = d.validation_split(input.fraction) {
        assert_eq!(train.len() + val.len(), d.len(), "the split lost samples");
    }
}
