//! Properties that are not gradients: broadcasting equals explicit expansion, matmul equals
//! a triple loop, softmax rows sum to one, reductions equal folds.

use crate::common::*;
use proptest::prelude::*;
use tapegrad_core::{Shape, Tensor};

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn broadcasting_matches_explicit_expansion((sa, sb) in broadcast_pair(0), seed in any::<u64>()) {
        let a = Tensor::<f64>::from_vec((0..sa.iter().product::<usize>()).map(|i| (i as f64 + seed as f64 % 7.0) * 0.5).collect(), sa.clone()).unwrap();
        let b = Tensor::<f64>::from_vec((0..sb.iter().product::<usize>()).map(|i| 1.0 + i as f64).collect(), sb.clone()).unwrap();
        let out = Shape::from(sa).broadcast("t", &Shape::from(sb)).unwrap();
        // Explicit expansion by index arithmetic, independent of the kernels.
        let expand = |t: &Tensor<f64>| -> Vec<f64> {
            let nd = out.ndim();
            let off = nd - t.ndim();
            (0..out.numel()).map(|flat| {
                let mut rem = flat;
                let mut idx = vec![0; nd];
                for d in (0..nd).rev() { idx[d] = rem % out.dims()[d]; rem /= out.dims()[d]; }
                let src: Vec<usize> = (0..t.ndim()).map(|d| if t.dims()[d] == 1 { 0 } else { idx[d + off] }).collect();
                t.get(&src).unwrap()
            }).collect()
        };
        let (ea, eb) = (expand(&a), expand(&b));
        for (op, f) in [("add", (|x: f64, y: f64| x + y) as fn(f64, f64) -> f64), ("mul", |x, y| x * y), ("sub", |x, y| x - y), ("div", |x, y| x / y)] {
            let got = match op { "add" => a.add(&b), "mul" => a.mul(&b), "sub" => a.sub(&b), _ => a.div(&b) }.unwrap();
            prop_assert_eq!(got.shape(), &out);
            let want: Vec<f64> = ea.iter().zip(&eb).map(|(&x, &y)| f(x, y)).collect();
            prop_assert_eq!(got.to_vec(), want, "{}", op);
        }
        prop_assert_eq!(a.broadcast_to(&out).map(|t| t.to_vec()).unwrap_or_else(|_| ea.clone()), ea);
    }

    #[test]
    fn matmul_matches_triple_loop(m in 1usize..9, k in 1usize..9, n in 1usize..9, batch in 1usize..4, seed in any::<u64>()) {
        let gen = |len: usize, salt: u64| -> Vec<f64> { (0..len).map(|i| (((i as u64 * 2654435761 + seed + salt) % 1000) as f64) / 250.0 - 2.0).collect() };
        let a = Tensor::from_vec(gen(batch * m * k, 1), [batch, m, k]).unwrap();
        let b = Tensor::from_vec(gen(k * n, 2), [k, n]).unwrap();
        let c = a.matmul(&b).unwrap();
        prop_assert_eq!(c.dims(), &[batch, m, n]);
        for bi in 0..batch { for i in 0..m { for j in 0..n {
            let want: f64 = (0..k).map(|p| a.get(&[bi, i, p]).unwrap() * b.get(&[p, j]).unwrap()).sum();
            prop_assert!((c.get(&[bi, i, j]).unwrap() - want).abs() < 1e-12);
        }}}
        // The fused-transpose forms agree with explicit transposes.
        let at = a.transpose(-1, -2).unwrap();
        prop_assert_eq!(at.matmul_t(&b, true, false).unwrap().to_vec(), c.to_vec());
        let bt = b.t().unwrap();
        prop_assert_eq!(a.matmul_t(&bt, false, true).unwrap().to_vec(), c.to_vec());
    }

    #[test]
    fn softmax_rows_sum_to_one((s, ax) in shape(1, 3).prop_flat_map(|s| { let n = s.len(); (Just(s), 0..n) }), scale in prop::sample::select(vec![1.0f64, 100.0, 1e4])) {
        let n: usize = s.iter().product();
        let x = Tensor::<f32>::from_vec((0..n).map(|i| ((i * 7919 % 13) as f32 - 6.0) * scale as f32).collect(), s).unwrap();
        let y = x.softmax(ax as isize).unwrap();
        prop_assert!(y.data().iter().all(|v| v.is_finite() && *v >= 0.0));
        for v in y.sum([ax as isize], false).unwrap().data() { prop_assert!((v - 1.0).abs() < 1e-5, "row sums to {}", v); }
        let ls = x.log_softmax(ax as isize).unwrap();
        prop_assert!(ls.data().iter().all(|v| v.is_finite() && *v <= 1e-6));
        prop_assert!(x.logsumexp(ax as isize, false).unwrap().data().iter().all(|v| v.is_finite()));
    }

    #[test]
    fn reductions_match_folds((s, ax) in shape(1, 3).prop_flat_map(|s| { let n = s.len(); (Just(s), 0..n) }), data_seed in any::<u32>()) {
        let n: usize = s.iter().product();
        let x = Tensor::<f64>::from_vec((0..n).map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(data_seed) % 97) as f64 - 48.0).collect(), s.clone()).unwrap();
        let (outer, d, inner): (usize, usize, usize) = (s[..ax].iter().product(), s[ax], s[ax + 1..].iter().product());
        let sum = x.sum([ax as isize], false).unwrap();
        let max = x.max([ax as isize], false).unwrap();
        let min = x.min([ax as isize], true).unwrap();
        let mean = x.mean([ax as isize], false).unwrap();
        for o in 0..outer { for i in 0..inner {
            let col: Vec<f64> = (0..d).map(|j| x.data()[(o * d + j) * inner + i]).collect();
            let slot = o * inner + i;
            prop_assert_eq!(sum.data()[slot], col.iter().sum::<f64>());
            prop_assert_eq!(max.data()[slot], col.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
            prop_assert_eq!(min.data()[slot], col.iter().cloned().fold(f64::INFINITY, f64::min));
            prop_assert!((mean.data()[slot] - col.iter().sum::<f64>() / d as f64).abs() < 1e-12);
        }}
        prop_assert_eq!(x.sum_all().item().unwrap(), x.data().iter().sum::<f64>());
        let am = x.argmax(ax as isize, false).unwrap();
        for (slot, &j) in am.data().iter().enumerate() {
            let (o, i) = (slot / inner, slot % inner);
            prop_assert_eq!(x.data()[(o * d + j) * inner + i], max.data()[slot]);
        }
    }
}
