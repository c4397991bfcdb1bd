//! Data-parallel training on MPI (feature `mpi`): the `mpi_worker` binary run under `mpirun`
//! with 2 and 4 ranks against one process without MPI, and a panicking rank.
//!
//! Tolerances: the ranks sum their gradients in another order than one process does, so the
//! parameters after 3 epochs of Adam (lr 0.01) may differ by rounding: at most 1e-12 in f64
//! and 1e-5 in f32 (parameters are of order 1; measured: 2e-16 and 1.3e-7). Across ranks they must be equal bit for bit,
//! which the worker checks before every step and at the end.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use tapegrad_train::distributed::shard_batches;

const WORKER: &str = env!("CARGO_BIN_EXE_mpi_worker");

/// `mpirun -np ranks mpi_worker args…` on this machine only, with a 60 s backstop.
fn mpirun(ranks: usize, args: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let out = Command::new("mpirun")
        .args(["--oversubscribe", "--timeout", "60", "-np", &ranks.to_string(), WORKER])
        .args(args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_btl", "self,vader")
        .env("OMPI_MCA_oob_tcp_if_include", "lo")
        .output()
        .expect("mpirun runs (install openmpi-bin)");
    (out, start.elapsed())
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tapegrad-mpi-{}-{name}", std::process::id()))
}

/// The worker's output file: `checks N`, the loss and accuracy series, then the parameters.
struct Run {
    checks: usize,
    series: Vec<(String, Vec<f64>)>,
}

fn read(path: &PathBuf) -> Run {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let _ = std::fs::remove_file(path);
    let mut checks = 0;
    let mut series = Vec::new();
    for line in text.lines() {
        let mut words = line.split(' ');
        let name = words.next().unwrap().to_string();
        let values: Vec<f64> = words.map(|w| w.parse().unwrap()).collect();
        if name == "checks" {
            checks = values[0] as usize;
        } else {
            series.push((name, values));
        }
    }
    Run { checks, series }
}

/// Trains with `ranks` ranks and in one process, and compares everything the runs write.
fn compare(ranks: usize, dtype: &str, batch: usize, tolerance: f64) {
    let (single, multi) = (
        tmp(&format!("{dtype}-{ranks}-single")),
        tmp(&format!("{dtype}-{ranks}")),
    );
    let status = Command::new(WORKER)
        .args(["train", dtype, single.to_str().unwrap(), &batch.to_string(), "--single"])
        .status()
        .unwrap();
    assert!(status.success());
    let (out, _) = mpirun(ranks, &["train", dtype, multi.to_str().unwrap(), &batch.to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (single, multi) = (read(&single), read(&multi));
    // 96 samples: one check before each of the epochs' steps (the last short batch included
    // when every rank gets a sample of it) and one at the end, all passed.
    let steps_per_epoch = 96 / batch + usize::from(96 % batch >= ranks);
    assert_eq!(multi.checks, 3 * steps_per_epoch + 1);
    assert_eq!(single.series.len(), multi.series.len());
    let mut worst = 0.0f64;
    for ((name, a), (name_b, b)) in single.series.iter().zip(&multi.series) {
        assert_eq!((name, a.len()), (name_b, b.len()));
        for (x, y) in a.iter().zip(b) {
            worst = worst.max((x - y).abs());
        }
    }
    assert!(
        worst <= tolerance,
        "{ranks} ranks, {dtype}: differs from one process by {worst:e}"
    );
}

#[test]
fn two_ranks_train_like_one_process_f64() {
    compare(2, "f64", 24, 1e-12);
}

#[test]
fn four_uneven_ranks_train_like_one_process_f64() {
    // Batches of 18 split 4/5/4/5, the epoch's last batch of 6 split 1/2/1/2.
    compare(4, "f64", 18, 1e-12);
}

#[test]
fn two_ranks_train_like_one_process_f32() {
    compare(2, "f32", 24, 1e-5);
}

#[test]
fn a_panicking_rank_ends_the_job() {
    let (out, took) = mpirun(2, &["panic"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("rank 1 fails on purpose"), "{stderr}");
    assert!(took < Duration::from_secs(20), "took {took:?}: {stderr}");
}

#[test]
fn shards_are_disjoint_cover_the_batch_and_differ_by_one_at_most() {
    let global: Vec<Vec<usize>> = vec![(0..18).collect(), (18..24).collect(), (24..27).collect()];
    for world in 1..=4 {
        let shards: Vec<Vec<Vec<usize>>> = (0..world).map(|r| shard_batches(&global, r, world)).collect();
        let kept = global.iter().filter(|b| b.len() >= world).count();
        for (b, batch) in global.iter().filter(|b| b.len() >= world).enumerate() {
            let mut joined: Vec<usize> = shards.iter().flat_map(|s| s[b].clone()).collect();
            let sizes: Vec<usize> = shards.iter().map(|s| s[b].len()).collect();
            assert!(
                sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
                "{sizes:?}"
            );
            joined.sort_unstable();
            assert_eq!(&joined, batch);
        }
        assert!(shards.iter().all(|s| s.len() == kept));
    }
    // The batch of 3 is skipped by 4 ranks.
    assert_eq!(shard_batches(&global, 0, 4).len(), 2);
}
