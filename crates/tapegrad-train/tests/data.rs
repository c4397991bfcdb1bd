//! The IDX reader and MNIST loader on the shipped data and on broken files.

use std::io::Write;
use std::path::{Path, PathBuf};
use tapegrad_train::data::idx::{encode_idx, parse_idx};
use tapegrad_train::{read_idx, Mnist};

fn mnist_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist")
}

#[test]
fn shipped_mnist_matches_its_published_checks() {
    let m = Mnist::load(mnist_dir()).unwrap();
    assert_eq!((m.train.len(), m.test.len()), (60_000, 10_000));
    assert_eq!(m.train.sample_dims(), &[28, 28]);
    let counts = |labels: &[u8]| {
        (0..10)
            .map(|c| labels.iter().filter(|&&l| l == c).count())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        counts(m.train.labels()),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        counts(m.test.labels()),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    let (x, y) = m.train.batch::<f64>(&(0..60_000).collect::<Vec<_>>()).unwrap();
    let mean = x.data().iter().sum::<f64>() / x.numel() as f64;
    assert!((mean - 0.13066).abs() < 5e-5, "mean pixel {mean}");
    assert!(x.data().iter().all(|&p| (0.0..=1.0).contains(&p)));
    assert_eq!(y.len(), 60_000);
}

#[test]
fn batches_are_seeded_shuffled_and_cover_the_epoch() {
    let m = Mnist::load(mnist_dir()).unwrap().test.take(100);
    let a = m.batch_indices(32, true, 7, 0, false).unwrap();
    assert_eq!(a, m.batch_indices(32, true, 7, 0, false).unwrap());
    assert_ne!(a, m.batch_indices(32, true, 7, 1, false).unwrap());
    assert_eq!(a.iter().map(|b| b.len()).collect::<Vec<_>>(), [32, 32, 32, 4]);
    let mut all: Vec<usize> = a.concat();
    all.sort_unstable();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
    assert_eq!(m.batch_indices(32, false, 0, 0, true).unwrap().len(), 3);
    assert!(m.batch_indices(0, false, 0, 0, true).is_err());
}

#[test]
fn broken_files_give_errors_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("tapegrad-idx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = encode_idx(&[2, 2, 2], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(parse_idx(&good).unwrap().dims, vec![2, 2, 2]);
    for cut in 0..good.len() {
        assert!(parse_idx(&good[..cut]).is_err(), "truncated at {cut}");
    }
    let mut extra = good.clone();
    extra.push(0);
    assert!(parse_idx(&extra).unwrap_err().contains("trailing"));
    let mut huge = good.clone();
    huge[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    huge[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(parse_idx(&huge).is_err());
    let mut f32_type = good.clone();
    f32_type[2] = 0x0d;
    assert!(parse_idx(&f32_type).unwrap_err().contains("0x0d"));

    let path = dir.join("trunc.idx");
    std::fs::File::create(&path).unwrap().write_all(&good[..10]).unwrap();
    let e = read_idx(&path).unwrap_err().to_string();
    assert!(e.contains("trunc.idx") && e.contains("truncated"), "{e}");
    let e = read_idx(dir.join("missing.idx")).unwrap_err().to_string();
    assert!(e.contains("missing.idx"), "{e}");
    let gz = dir.join("bad.gz");
    std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
    assert!(read_idx(&gz).unwrap_err().to_string().contains("bad.gz"));

    // Labels and images swapped: the loader says which file looks wrong.
    let swapped = dir.join("swapped");
    std::fs::create_dir_all(&swapped).unwrap();
    std::fs::write(swapped.join("train-images-idx3-ubyte"), encode_idx(&[2], &[1, 2])).unwrap();
    std::fs::write(swapped.join("train-labels-idx1-ubyte"), encode_idx(&[2, 1, 1], &[1, 2])).unwrap();
    let e = Mnist::load(&swapped).unwrap_err().to_string();
    assert!(e.contains("train-images-idx3-ubyte") && e.contains("label file"), "{e}");
    std::fs::write(swapped.join("train-images-idx3-ubyte"), encode_idx(&[2, 1, 1], &[1, 2])).unwrap();
    std::fs::write(swapped.join("train-labels-idx1-ubyte"), encode_idx(&[2], &[3, 12])).unwrap();
    let e = Mnist::load(&swapped).unwrap_err().to_string();
    assert!(e.contains("label 12"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
