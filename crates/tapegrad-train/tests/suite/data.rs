//! The IDX reader and MNIST loader on the shipped data and on broken or hostile files,
//! and datasets of tensors built from vectors.

use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use tapegrad_train::data::idx::{decode_idx, encode_idx, MAX_ELEMENTS};
use tapegrad_train::{read_idx, Dataset, Features, Mnist, TargetData};

fn parse_idx(bytes: &[u8]) -> Result<tapegrad_train::IdxArray, String> {
    decode_idx(bytes, MAX_ELEMENTS)
}

fn mnist_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist")
}

#[test]
fn shipped_mnist_matches_its_published_checks() {
    let m = Mnist::load(mnist_dir()).unwrap();
    assert_eq!((m.train.len(), m.test.len()), (60_000, 10_000));
    assert_eq!(m.train.sample_dims(), &[28, 28]);
    let counts = |labels: Option<&[usize]>| {
        let labels = labels.unwrap();
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
    let b = m.train.batch::<f64>(&(0..60_000).collect::<Vec<_>>()).unwrap();
    let mean = b.x.data().iter().sum::<f64>() / b.x.numel() as f64;
    assert!((mean - 0.13066).abs() < 5e-5, "mean pixel {mean}");
    assert!(b.x.data().iter().all(|&p| (0.0..=1.0).contains(&p)));
    assert_eq!(b.y.classes().unwrap().len(), 60_000);
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
    let e = read_idx(&path, MAX_ELEMENTS).unwrap_err().to_string();
    assert!(e.contains("trunc.idx") && e.contains("truncated"), "{e}");
    let e = read_idx(dir.join("missing.idx"), MAX_ELEMENTS).unwrap_err().to_string();
    assert!(e.contains("missing.idx"), "{e}");
    let gz = dir.join("bad.gz");
    std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
    assert!(read_idx(&gz, MAX_ELEMENTS).unwrap_err().to_string().contains("bad.gz"));
    let good_gz = dir.join("good.gz");
    std::fs::write(&good_gz, gzip(&good)).unwrap();
    assert_eq!(read_idx(&good_gz, 8).unwrap().data, [1, 2, 3, 4, 5, 6, 7, 8]);

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

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A reader that counts the bytes handed out.
struct Counting<R> {
    inner: R,
    read: usize,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n;
        Ok(n)
    }
}

/// Issue 11 item 6: a small `.gz` whose header declares 512 Mi labels. The caller's cap
/// refuses it before any allocation; MNIST's loader caps at the sizes it expects.
#[test]
fn a_gzip_bomb_is_refused_by_the_declared_size_cap() {
    let dir = std::env::temp_dir().join(format!("tapegrad-bomb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut bomb = encode_idx(&[1 << 29], &[]);
    bomb.resize(bomb.len() + (64 << 20), 0); // 64 MB of zeros: ~64 KB compressed
    let gz = gzip(&bomb);
    assert!(gz.len() < 200_000, "{} bytes", gz.len());
    let path = dir.join("train-labels-idx1-ubyte.gz");
    std::fs::write(&path, &gz).unwrap();
    let e = read_idx(&path, 60_000).unwrap_err().to_string();
    assert!(
        e.contains("train-labels-idx1-ubyte.gz") && e.contains("536870912 elements") && e.contains("at most 60000"),
        "{e}"
    );
    // The MNIST loader passes its expected sizes: the bomb fails, naming the file.
    std::fs::write(dir.join("train-images-idx3-ubyte"), encode_idx(&[1, 28, 28], &[0; 784])).unwrap();
    let e = Mnist::load(&dir).unwrap_err().to_string();
    assert!(
        e.contains("train-labels-idx1-ubyte.gz") && e.contains("at most 60000"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Decoding stops at the first byte past what the header declares, however long the
/// (decompressed) stream goes on, and fills exactly the declared buffer.
#[test]
fn decoding_stops_right_after_the_declared_size() {
    let mut long = encode_idx(&[10], &[7; 10]);
    long.resize(long.len() + (32 << 20), 0);
    let gz = gzip(&long);
    let mut r = Counting {
        inner: flate2::read::GzDecoder::new(&gz[..]),
        read: 0,
    };
    let e = decode_idx(&mut r, MAX_ELEMENTS).unwrap_err();
    assert!(e.contains("trailing"), "{e}");
    // Header (8 bytes) + 10 declared + at most one read's worth past them, not 32 MB.
    assert!(r.read < 1 << 16, "read {} bytes", r.read);
    let exact = encode_idx(&[3, 2], &[1, 2, 3, 4, 5, 6]);
    let a = decode_idx(&exact[..], 6).unwrap();
    assert_eq!((a.dims, a.data.len(), a.data.capacity()), (vec![3, 2], 6, 6));
    assert!(decode_idx(&exact[..], 5).unwrap_err().contains("at most 5"));
}

/// Issue 11 item 5: dims whose product overflows are an error when the dataset is built,
/// not a panic when a batch is drawn.
#[test]
fn overflowing_sample_dims_fail_at_construction() {
    for dims in [vec![usize::MAX, 2], vec![1 << 40, 1 << 40], vec![3, 0]] {
        let e = Features::from_bytes(vec![1, 2, 3], dims.clone())
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("{dims:?}")), "{e}");
    }
    // Dims that wrap to 2 in release arithmetic must not pass as samples of 2.
    let wraps = vec![(usize::MAX / 2) + 1, 4];
    assert!(Features::from_f32(vec![0.0; 4], wraps).is_err());
}

#[test]
fn tensor_datasets_batch_any_shape_and_type() {
    // 3 samples of shape [2, 2], f64 features, float targets of shape [3].
    let x = Features::from_f64((0..12).map(f64::from).collect(), [2, 2]).unwrap();
    let y = Features::from_f32((0..9).map(|i| i as f32 * 0.5).collect(), [3]).unwrap();
    let d = Dataset::new(x, TargetData::Values(y)).unwrap();
    assert_eq!(
        (d.len(), d.sample_dims(), d.classes(), d.labels()),
        (3, &[2, 2][..], None, None)
    );
    let b = d.batch::<f32>(&[2, 0]).unwrap();
    assert_eq!(b.x.dims(), &[2, 2, 2]);
    assert_eq!(b.x.to_vec(), [8., 9., 10., 11., 0., 1., 2., 3.]);
    assert_eq!(b.y.values().unwrap().dims(), &[2, 3]);
    assert_eq!(b.y.values().unwrap().to_vec(), [3.0, 3.5, 4.0, 0.0, 0.5, 1.0]);
    assert!(b.y.classes().unwrap_err().to_string().contains("not class indices"));
    assert!(d.batch::<f32>(&[3]).is_err());
    // Sample counts must agree.
    let x = Features::from_f32(vec![0.0; 4], [2]).unwrap();
    let e = Dataset::new(
        x,
        TargetData::Classes {
            labels: vec![0; 3],
            classes: 1,
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("2 samples of features but 3 targets"), "{e}");
    // validation_split: the LAST fraction, before shuffling; Keras's floor.
    let d = Dataset::new(
        Features::from_f32((0..7).map(|i| i as f32).collect(), [1]).unwrap(),
        TargetData::Classes {
            labels: vec![0, 1, 0, 1, 0, 1, 0],
            classes: 2,
        },
    )
    .unwrap();
    let (t, v) = d.validation_split(0.3).unwrap();
    assert_eq!((t.len(), v.len()), (4, 3));
    assert_eq!(v.batch::<f32>(&[0, 1, 2]).unwrap().x.to_vec(), [4.0, 5.0, 6.0]);
    assert_eq!(v.labels(), Some(&[0, 1, 0][..]));
    assert!(d.validation_split(0.0).is_err() && d.validation_split(1e-17).is_err());
}

#[test]
fn a_header_whose_dims_overflow_u128_is_refused_with_a_message() {
    // Found by the `idx_gzip` fuzz target: five dims of 2³² − 1 overflow even the u128
    // that the error message computed the declared size in (a panic under overflow checks).
    let mut bytes = vec![0, 0, 0x08, 5];
    for _ in 0..5 {
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
    }
    let e = decode_idx(&bytes[..], MAX_ELEMENTS).unwrap_err();
    assert!(e.contains("more than 2^128 elements") && e.contains("at most"), "{e}");
    // A size that fits u128 is still named exactly.
    let e = decode_idx(&encode_idx(&[1 << 20, 1 << 20], &[])[..], MAX_ELEMENTS).unwrap_err();
    assert!(e.contains("declare 1099511627776 elements"), "{e}");
}

#[test]
fn batches_arrive_in_order_whether_made_inline_or_on_the_prefetch_thread() {
    // 4096 samples of 256 features: an epoch of all of them holds the 2²⁰ elements from
    // which the batches are made on a second thread, handed over in chunks of 1, 2, 4, …
    // batches up to 2¹⁷ elements (170 batches of 3, 512 of 1); one of 100 batches is made
    // inline. Every way gives every batch, in order, with its samples, and stops at the
    // first error, whether the step returns it or a batch does.
    let (n, per) = (4096usize, 256usize);
    let x: Vec<f32> = (0..n * per).map(|i| (i / per) as f32).collect();
    let d = Dataset::new(
        Features::from_f32(x, [per]).unwrap(),
        TargetData::Classes {
            labels: (0..n).collect(),
            classes: n,
        },
    )
    .unwrap();
    for (size, take) in [(1, n), (3, n.div_ceil(3)), (3, 100), (4096, 1)] {
        let batches = &d.batch_indices(size, true, 5, 0, false).unwrap()[..take];
        let mut seen = vec![];
        d.for_each_batch::<f32>(batches, |i, b| {
            let firsts: Vec<usize> = (0..b.y.len()).map(|s| b.x.data()[s * per] as usize).collect();
            assert_eq!(firsts, b.y.classes().unwrap(), "batch {i}");
            assert_eq!(b.x.data().len(), b.y.len() * per, "batch {i}");
            seen.push(firsts);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, batches, "batches of {size}, {take} of them");
        let mut calls = 0;
        let err = d.for_each_batch::<f32>(batches, |_, _| {
            calls += 1;
            Err(tapegrad_core::Error::bad_value("step", "stop"))
        });
        assert!(err.is_err() && calls == 1, "batches of {size}, {take} of them");
        // A bad index in the middle of a chunk: the steps before it run, none after.
        let mut bad = batches.to_vec();
        let at = take / 2;
        bad[at][0] = n;
        let mut calls = 0;
        let err = d.for_each_batch::<f32>(&bad, |_, _| {
            calls += 1;
            Ok(())
        });
        assert!(
            err.unwrap_err().to_string().contains("Dataset::batch"),
            "batches of {size}"
        );
        assert_eq!(calls, at, "batches of {size}, {take} of them");
    }
}
