//! The GEMM against a naive f64 reference: every ISA this CPU has (forced), the fallback,
//! f32 and f64, all four transpose combinations, serial and both parallel splits, and shapes
//! around the register-tile and cache-block boundaries.
//!
//! Tolerance: whatever the summation order (blocking, FMA), a computed dot product of length
//! k differs from the exact one by at most about k·u·Σ|aᵢ·bᵢ| (u = the unit roundoff); each
//! element is checked against (k + 2)·ε·Σ|aᵢ·bᵢ|, ε = 2u being the type's epsilon.

use super::*;

/// Never split.
const SERIAL: Split = Split {
    min_macs: usize::MAX,
    caller_max_macs: 0,
};
/// Split from the first multiply-add, every block a task of the pool.
const POOL: Split = Split {
    min_macs: 0,
    caller_max_macs: 0,
};
/// Split from the first multiply-add, the caller taking the first block.
const CALLER: Split = Split {
    min_macs: 0,
    caller_max_macs: usize::MAX,
};

fn run_in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool")
        .install(f)
}

/// Deterministic values in [-1, 1) with varied mantissas.
fn values<T: Element>(len: usize, seed: u64) -> Vec<T> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            T::from_f64_lossy(((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0)
        })
        .collect()
}

/// `op(a)·op(b)` computed by `matmul_with` into a NaN-filled C (so an element left unwritten
/// fails the comparison).
#[allow(clippy::too_many_arguments)]
fn product<T: Element>(
    isa: Isa,
    split: Split,
    a: &[T],
    b: &[T],
    m: usize,
    k: usize,
    n: usize,
    ta: bool,
    tb: bool,
) -> Vec<T> {
    let mut c = vec![MaybeUninit::new(T::nan()); m * n];
    matmul_with(isa, split, a, b, &mut c, m, k, n, ta, tb);
    // SAFETY: every element was initialised (NaN) before the call, and the GEMM only ever
    // stores initialised values.
    c.into_iter().map(|x| unsafe { x.assume_init() }).collect()
}

/// Checks `got` against the f64 reference for every element; returns a description of the
/// first failure.
#[allow(clippy::too_many_arguments)]
fn check<T: Element>(
    got: &[T],
    a: &[T],
    b: &[T],
    m: usize,
    k: usize,
    n: usize,
    ta: bool,
    tb: bool,
) -> Result<(), String> {
    let at = |i: usize, p: usize| if ta { a[p * m + i] } else { a[i * k + p] }.as_f64();
    let bt = |p: usize, j: usize| if tb { b[j * k + p] } else { b[p * n + j] }.as_f64();
    let tol = (k as f64 + 2.0) * T::epsilon().as_f64();
    for i in 0..m {
        for j in 0..n {
            let (mut want, mut mag) = (0.0, 0.0);
            for p in 0..k {
                want += at(i, p) * bt(p, j);
                mag += (at(i, p) * bt(p, j)).abs();
            }
            let g = got[i * n + j].as_f64();
            // A NaN (an element left unwritten) fails too.
            if (g - want).abs() > tol * mag || g.is_nan() {
                return Err(format!(
                    "({i}, {j}) of {m}x{k}x{n} ta={ta} tb={tb}: got {g}, want {want} ± {}",
                    tol * mag
                ));
            }
        }
    }
    Ok(())
}

const TRANSPOSES: [(bool, bool); 4] = [(false, false), (true, false), (false, true), (true, true)];

/// Every shape given, every transpose, every available ISA and the fallback, one thread.
fn sweep<T: Element>(shapes: &[(usize, usize, usize)]) {
    for isa in Isa::available() {
        for &(m, k, n) in shapes {
            let a = values::<T>(m * k, (m * 31 + k) as u64);
            let b = values::<T>(k * n, (n * 17 + k) as u64);
            for (ta, tb) in TRANSPOSES {
                let got = product(isa, SERIAL, &a, &b, m, k, n, ta, tb);
                if let Err(e) = check(&got, &a, &b, m, k, n, ta, tb) {
                    panic!("{isa:?} {}: {e}", T::DTYPE);
                }
            }
        }
    }
}

/// All m, n in 1..=40 against depths 1..=40 (every m·n with a stride through k, so each
/// dimension takes every value in 1..=40).
fn small_shapes() -> Vec<(usize, usize, usize)> {
    let mut s = Vec::new();
    for m in 1..=40 {
        for n in 1..=40 {
            s.push((m, (m * 7 + n * 3) % 40 + 1, n));
        }
    }
    s
}

/// Around the tile (6 rows; 64/32/16/8 columns) and block (kc 256, mc 144, nc 1024/512)
/// sizes, the in-place-B limits (48 rows of A; a B of 32 KB, just below and above with
/// many rows of A), k = 1 and a long k.
const BOUNDARY: [(usize, usize, usize); 16] = [
    (6, 1, 64),
    (7, 255, 65),
    (5, 256, 63),
    (48, 257, 129),
    (49, 100, 200),
    (97, 257, 17),
    (145, 40, 9),
    (100, 60, 70),
    (70, 64, 129),
    (143, 513, 130),
    (191, 300, 33),
    (5, 1, 1025),
    (25, 300, 1030),
    (2, 70, 2049),
    (3, 3000, 7),
    (1, 700, 1),
];

#[test]
fn small_shapes_f32() {
    sweep::<f32>(&small_shapes());
}

#[test]
fn small_shapes_f64() {
    sweep::<f64>(&small_shapes());
}

#[test]
fn block_boundaries_f32() {
    sweep::<f32>(&BOUNDARY);
}

#[test]
fn block_boundaries_f64() {
    sweep::<f64>(&BOUNDARY);
}

/// The parallel splits (rows for tall products, columns for wide ones, forced from the first
/// multiply-add; every block on the pool, or the first on the caller) give the serial
/// path's bits, and are the product.
fn parallel_matches_serial<T: Element>() {
    // Tall (row split), wide (column split), and square-ish with a ragged edge.
    for (m, k, n) in [(211, 300, 19), (13, 70, 531), (100, 257, 100)] {
        let a = values::<T>(m * k, 3);
        let b = values::<T>(k * n, 4);
        for isa in Isa::available() {
            for (ta, tb) in TRANSPOSES {
                let serial = product(isa, SERIAL, &a, &b, m, k, n, ta, tb);
                // Inside a 3-thread pool (a short last block), and from outside any pool.
                for (parallel, how) in [
                    (run_in_pool(3, || product(isa, POOL, &a, &b, m, k, n, ta, tb)), "pool"),
                    (
                        run_in_pool(3, || product(isa, CALLER, &a, &b, m, k, n, ta, tb)),
                        "caller",
                    ),
                    (product(isa, POOL, &a, &b, m, k, n, ta, tb), "pool, outside"),
                    (product(isa, CALLER, &a, &b, m, k, n, ta, tb), "caller, outside"),
                ] {
                    assert!(
                        serial
                            .iter()
                            .zip(&parallel)
                            .all(|(s, p)| s.as_f64().to_bits() == p.as_f64().to_bits()),
                        "{isa:?} {m}x{k}x{n} ta={ta} tb={tb} {how}"
                    );
                    check(&parallel, &a, &b, m, k, n, ta, tb).unwrap();
                }
            }
        }
    }
}

#[test]
fn parallel_matches_serial_f32() {
    parallel_matches_serial::<f32>();
}

#[test]
fn parallel_matches_serial_f64() {
    parallel_matches_serial::<f64>();
}

/// Through the production entry point: the default dispatch (shape threshold, detected ISA,
/// default parallel threshold) on a 2-thread pool, a batch of three products reusing the
/// per-thread packing buffers, both sides of the parallel threshold.
#[test]
fn batched_default_dispatch() {
    for (m, k, n) in [(2, 3, 4), (32, 784, 128), (256, 256, 256)] {
        let a = values::<f32>(3 * m * k, 5);
        let b = values::<f32>(2 * k * n, 6);
        let pairs = [(0, 1), (2, 0), (1, 1)];
        for (ta, tb) in TRANSPOSES {
            let c = run_in_pool(2, || batched(&a, &b, &pairs, m, k, n, ta, tb));
            for (&(ia, ib), cm) in pairs.iter().zip(c.chunks_exact(m * n)) {
                let am = &a[ia * m * k..(ia + 1) * m * k];
                let bm = &b[ib * k * n..(ib + 1) * k * n];
                check(cm, am, bm, m, k, n, ta, tb).unwrap();
            }
        }
    }
}

/// The fallback's own row split (the path CPUs without AVX2 take for large products).
#[test]
fn fallback_parallel_matches_serial() {
    let (m, k, n) = (211, 300, 190);
    let a = values::<f64>(m * k, 7);
    let b = values::<f64>(k * n, 8);
    for (ta, tb) in TRANSPOSES {
        let serial = product(Isa::Fallback, SERIAL, &a, &b, m, k, n, ta, tb);
        for split in [POOL, CALLER] {
            let parallel = run_in_pool(3, || product(Isa::Fallback, split, &a, &b, m, k, n, ta, tb));
            assert_eq!(serial, parallel, "ta={ta} tb={tb}");
            check(&parallel, &a, &b, m, k, n, ta, tb).unwrap();
        }
    }
}

/// `k = 0` gives zeros without calling a kernel; empty m or n give an empty product.
#[test]
fn degenerate_shapes() {
    let z = batched::<f32>(&[], &[], &[(0, 0)], 2, 0, 3, false, false);
    assert_eq!(z, vec![0.0; 6]);
    let a = values::<f32>(5, 1);
    assert!(batched::<f32>(&a, &[], &[(0, 0)], 0, 5, 0, false, false).is_empty());
    for isa in Isa::available() {
        assert!(product::<f32>(isa, POOL, &[], &a, 0, 5, 1, false, false).is_empty());
        assert!(run_in_pool(2, || product::<f32>(isa, CALLER, &a, &[], 1, 5, 0, false, false)).is_empty());
    }
}

/// The CBLAS path (feature `blas`) against the reference, for the same shapes.
#[cfg(feature = "blas")]
#[test]
fn blas_matches_reference() {
    fn sweep_blas<T: Element>(shapes: &[(usize, usize, usize)]) {
        for &(m, k, n) in shapes {
            let a = values::<T>(m * k, 11);
            let b = values::<T>(k * n, 12);
            for (ta, tb) in TRANSPOSES {
                let mut c = vec![MaybeUninit::new(T::nan()); m * n];
                assert!(blas::gemm(&a, &b, &mut c, m, k, n, ta, tb));
                // SAFETY: every element was initialised (NaN) before the call.
                let got: Vec<T> = c.into_iter().map(|x| unsafe { x.assume_init() }).collect();
                check(&got, &a, &b, m, k, n, ta, tb).unwrap();
            }
        }
    }
    let shapes: Vec<_> = small_shapes().into_iter().step_by(7).chain(BOUNDARY).collect();
    sweep_blas::<f32>(&shapes);
    sweep_blas::<f64>(&shapes);
}

/// `matmul_packing_a` on each ISA with a kernel, A packed by a closure from a row-major
/// matrix (rows past A zero, as the contract asks), into a NaN-filled C: shapes around the
/// tile and block edges, B read in place.
fn packing_a_matches_reference<T: Element>() {
    for isa in Isa::available() {
        let Some(kern) = T::kernel(isa) else { continue };
        for &(m, k, n) in &[
            (1, 1, 1),
            (7, 9, 5),
            (13, 300, 31),
            (150, 40, 64),
            (12, 257, 70),
            (6, 17, 130),
        ] {
            let a = values::<T>(m * k, (m * 7 + k) as u64);
            let b = values::<T>(k * n, (n * 5 + k) as u64);
            let mr = kern.mr;
            let pack = |dst: &mut [T], i0: usize, p0: usize, depth: usize, rows: usize| {
                for (panel, out) in dst.chunks_exact_mut(depth * mr).take(rows.div_ceil(mr)).enumerate() {
                    for (d, row) in out.chunks_exact_mut(mr).enumerate() {
                        for (r, v) in row.iter_mut().enumerate() {
                            let i = i0 + panel * mr + r;
                            *v = if i < i0 + rows { a[i * k + p0 + d] } else { T::zero() };
                        }
                    }
                }
            };
            let mut c = vec![T::nan(); m * n];
            matmul_packing_a_on(isa, &pack, &b, &mut c, m, k, n);
            if let Err(e) = check(&c, &a, &b, m, k, n, false, false) {
                panic!("{isa:?} {}: {e}", T::DTYPE);
            }
        }
    }
}

#[test]
fn packing_a_f32() {
    packing_a_matches_reference::<f32>();
}

#[test]
fn packing_a_f64() {
    packing_a_matches_reference::<f64>();
}

/// `values`, with all but about one element in six (at pseudo-random places) set to zero.
fn sparse_values<T: Element>(len: usize, seed: u64) -> Vec<T> {
    let mut v = values::<T>(len, seed);
    let keep = values::<f64>(len, seed ^ 0x5eed);
    for (x, r) in v.iter_mut().zip(keep) {
        if r.abs() > 1.0 / 6.0 {
            *x = T::zero();
        }
    }
    v
}

/// The zero-skipping sums (`sparse`, taken by a serial product whose A is mostly zeros) give
/// the dense kernel's values bit for bit (taken by the same product split over the pool):
/// both ISAs, f32 and f64, A row-major and transposed, one and several depth slices, both
/// group widths (whichever this CPU would pick), widths of C around the groups.
fn sparse_a_matches_dense<T: Element>() {
    for isa in Isa::available() {
        if T::kernel(isa).is_none() {
            continue;
        }
        for &(m, k, n) in &[
            (32, 784, 128),
            (9, 600, 70),
            (50, 40, 65),
            (784, 32, 128),
            (100, 300, 33),
            (20, 300, 200),
            (33, 40, 128),
            (33, 40, 64),
        ] {
            for ta in [false, true] {
                let a = sparse_values::<T>(m * k, (m + 3 * k + n) as u64);
                let b = values::<T>(k * n, (n * 5 + k) as u64);
                assert!(sparse::worth_trying(&a), "the sparse path is tried");
                let av = View::of(&a, if ta { m } else { k }, ta);
                let kc = driver::even(k, T::kernel(isa).unwrap().kc, 1);
                let sparse = product(isa, SERIAL, &a, &b, m, k, n, ta, false);
                let dense = run_in_pool(2, || product(isa, POOL, &a, &b, m, k, n, ta, false));
                let bits = |v: &[T]| v.iter().map(|x| x.as_f64().to_bits()).collect::<Vec<_>>();
                for wide in [false, true] {
                    let mut c = vec![MaybeUninit::new(T::nan()); m * n];
                    assert!(
                        sparse::gemm(av, &b, &mut c, m, k, n, kc, wide),
                        "the sparse path is taken"
                    );
                    // SAFETY: every element was initialised (NaN) before the call.
                    let direct: Vec<T> = c.into_iter().map(|x| unsafe { x.assume_init() }).collect();
                    assert!(
                        bits(&direct) == bits(&dense),
                        "{isa:?} {} {m}×{k}×{n} ta={ta} wide={wide}: the zero-skipping sums differ from the dense kernel's",
                        T::DTYPE
                    );
                }
                assert!(
                    bits(&sparse) == bits(&dense),
                    "{isa:?} {} {m}×{k}×{n} ta={ta}: the serial product (zero-skipping) differs from the dense kernel's",
                    T::DTYPE
                );
                if let Err(e) = check(&sparse, &a, &b, m, k, n, ta, false) {
                    panic!("{isa:?} {} sparse: {e}", T::DTYPE);
                }
            }
        }
    }
}

#[test]
fn sparse_a_f32() {
    sparse_a_matches_dense::<f32>();
}

#[test]
fn sparse_a_f64() {
    sparse_a_matches_dense::<f64>();
}

/// A zero of A times an infinity of B is NaN on every path: a B that is not all finite
/// keeps the product off the zero-skipping path, with C untouched, whichever depth slice
/// the bad row lies in (B is checked before C is written).
#[test]
fn sparse_a_with_a_non_finite_b_still_gives_nan() {
    let (m, k, n) = (32, 64, 16);
    let a = sparse_values::<f32>(m * k, 1);
    // Rows 1 and 41 of B meet columns 1 and 41 of A, zero in row 0.
    assert_eq!((a[1], a[41]), (0.0, 0.0));
    for (p, kc) in [(1, k), (1, 16), (41, 16)] {
        for bad in [f32::INFINITY, f32::NAN] {
            let mut b = values::<f32>(k * n, 2);
            b[p * n] = bad;
            let mut c = vec![MaybeUninit::new(7.0f32); m * n];
            let av = View::of(&a, k, false);
            assert!(
                !sparse::gemm(av, &b, &mut c, m, k, n, kc, sparse::wide_vectors()),
                "B[{p}, 0] = {bad}, kc = {kc}: not taken"
            );
            // SAFETY: every element was initialised (7) before the call.
            assert!(c.iter().all(|x| unsafe { x.assume_init() } == 7.0), "C untouched");
            for isa in Isa::available() {
                let c = product(isa, SERIAL, &a, &b, m, k, n, false, false);
                assert!(c[0].is_nan(), "{isa:?}: 0 · {bad} must reach C[0, 0]");
            }
        }
    }
}

/// B is checked after the sums (`sparse.rs`): a non-finite value in a row of B that a
/// nonzero of A meets (it shows in the sums) or that none meets (looked at directly) keeps
/// the product off the zero-skipping path with C untouched, in one depth slice or several;
/// sums that are not finite for another reason (an infinity in A, an overflow) do not, and
/// the values are then the dense kernel's.
#[test]
fn sparse_b_checked_after_the_sums() {
    let (m, k, n) = (4, 130, 16);
    // Rows 3, 70 and 129 of B are met (by rows 0, 2 and 3 of A); no nonzero meets the others.
    let mut a = vec![0.0f32; m * k];
    a[3] = 1.0;
    a[2 * k + 70] = 2.0;
    a[3 * k + 129] = 0.5;
    let av = View::of(&a, k, false);
    for kc in [k, 40] {
        for (p, bad) in [
            (3, f32::INFINITY),
            (70, f32::NAN),
            (129, f32::NEG_INFINITY),
            (5, f32::INFINITY),
            (64, f32::NAN),
            (128, f32::INFINITY),
        ] {
            let mut b = values::<f32>(k * n, 6);
            b[p * n + 7] = bad;
            let mut c = vec![MaybeUninit::new(7.0f32); m * n];
            assert!(
                !sparse::gemm(av, &b, &mut c, m, k, n, kc, sparse::wide_vectors()),
                "B[{p}, 7] = {bad}, kc = {kc}: not taken"
            );
            // SAFETY: every element was initialised (7) before the call.
            assert!(c.iter().all(|x| unsafe { x.assume_init() } == 7.0), "C untouched");
        }
        // Sums that overflow (row 0: 1·MAX + 1·MAX), and an infinity in A (row 1), with B finite.
        let mut a2 = a.clone();
        a2[4] = 1.0;
        a2[k + 10] = f32::INFINITY;
        let mut b = values::<f32>(k * n, 6);
        b[3 * n..5 * n].fill(f32::MAX);
        for isa in Isa::available() {
            let Some(kern) = f32::kernel(isa) else { continue };
            let kc = driver::even(k, kern.kc.min(kc), 1);
            let mut c = vec![MaybeUninit::new(f32::NAN); m * n];
            assert!(
                sparse::gemm(View::of(&a2, k, false), &b, &mut c, m, k, n, kc, sparse::wide_vectors()),
                "{isa:?}: taken"
            );
            // SAFETY: every element was initialised (NaN) before the call.
            let got: Vec<f32> = c.into_iter().map(|x| unsafe { x.assume_init() }).collect();
            assert!(got[..n].iter().all(|&x| x == f32::INFINITY), "row 0 overflows");
            assert!(
                got[n..2 * n].iter().all(|x| x.is_infinite() || x.is_nan()),
                "row 1: ∞ · B"
            );
            assert!(got[2 * n..].iter().all(|x| x.is_finite()));
        }
    }
}

/// A dense A is turned away by the sample, or, when the sample misleads, by the count.
#[test]
fn dense_a_takes_the_dense_path() {
    assert!(!sparse::worth_trying(&values::<f32>(32 * 784, 3)));
    assert!(sparse::worth_trying(&sparse_values::<f32>(32 * 784, 3)));
    assert!(!sparse::worth_trying(&[0.0f32; 100]), "too small to be worth a check");
    // Zeros wherever the sample looks (every 392nd element), dense elsewhere.
    let (m, k, n) = (32, 784, 16);
    let mut a = values::<f32>(m * k, 4);
    a.iter_mut().step_by(m * k / 64).for_each(|x| *x = 0.0);
    assert!(sparse::worth_trying(&a));
    let mut c = vec![MaybeUninit::new(0.0f32); m * n];
    let av = View::of(&a, k, false);
    assert!(!sparse::gemm(
        av,
        &values::<f32>(k * n, 5),
        &mut c,
        m,
        k,
        n,
        196,
        sparse::wide_vectors()
    ));
}
