//! Optimizer states: what `load_state` refuses (leaving the optimizer unchanged), the
//! counters that must not overflow, and the framed bytes (every flip and truncation).

use crate::api::{assert_mentions, msg};
use tapegrad_core::{Error, Tensor};
use tapegrad_optim::{Adam, AdamW, Optimizer, OptimizerState, Sgd};

/// Adam after three steps on `a` (3 elements) and `b` (1), and those parameters.
fn trained_adam() -> (Adam<f64>, Vec<(String, Tensor<f64>)>) {
    let mut opt = Adam::pytorch(0.1).unwrap();
    let (mut a, mut b) = (vec![1.0, 2.0, 3.0], vec![1.0]);
    let (ga, gb) = (vec![0.1, 0.2, 0.3], vec![0.5]);
    for _ in 0..3 {
        opt.step_slices(&mut [("a", &mut a[..], Some(&ga[..])), ("b", &mut b[..], Some(&gb[..]))])
            .unwrap();
    }
    let params = vec![
        ("a".to_string(), Tensor::from_vec(a, [3]).unwrap()),
        ("b".to_string(), Tensor::from_vec(b, [1]).unwrap()),
    ];
    (opt, params)
}

fn named(params: &[(String, Tensor<f64>)]) -> Vec<(String, &Tensor<f64>)> {
    params.iter().map(|(n, t)| (n.clone(), t)).collect()
}

#[test]
fn load_state_rejects_invalid_states_and_keeps_the_optimizer() {
    let (trained, params) = trained_adam();
    let state = trained.state();
    let p = named(&params);
    let mut sgd = Sgd::<f64>::pytorch(0.1).unwrap();
    assert_mentions(
        &msg(sgd.load_state(state.clone(), &p)),
        &["Sgd", "load_state", "Adam", "SGD"],
    );
    let mut adamw = AdamW::<f64>::pytorch(0.1).unwrap();
    assert_mentions(
        &msg(adamw.load_state(state.clone(), &p)),
        &["Adam state", "AdamW optimizer"],
    );

    let mut opt = Adam::<f64>::keras(0.5).unwrap();
    type Corrupt = Box<dyn Fn(&mut OptimizerState<f64>)>;
    let cases: Vec<(Corrupt, Vec<&str>)> = vec![
        (
            Box::new(|s| {
                s.params[0].buffers[1].pop();
            }),
            vec!["`exp_avg_sq` of parameter `a`", "2 elements", "[3]"],
        ),
        (
            Box::new(|s| {
                s.params[1].buffers.pop();
            }),
            vec!["parameter `b` has 1 buffers", "names 2"],
        ),
        (Box::new(|s| s.buffer_names.swap(0, 1)), vec!["exp_avg_sq", "exp_avg"]),
        (
            Box::new(|s| s.hyper.retain(|(k, _)| k != "beta1")),
            vec!["no hyper-parameter `beta1`"],
        ),
        (
            Box::new(|s| s.hyper.push(("amsgrad".into(), 1.0))),
            vec!["unexpected hyper-parameter `amsgrad`"],
        ),
        (Box::new(|s| s.hyper.push(("lr".into(), 1.0))), vec!["`lr` twice"]),
        (Box::new(|s| set(s, "eps", -1.0)), vec!["eps", "-1"]),
        (Box::new(|s| set(s, "lr", f64::INFINITY)), vec!["learning rate", "inf"]),
        (Box::new(|s| set(s, "beta2", 1.0)), vec!["beta2", "[0, 1)"]),
        (Box::new(|s| set(s, "keras_form", 0.5)), vec!["flag", "0.5"]),
        (Box::new(|s| set(s, "max_grad_norm", 0.0)), vec!["max_grad_norm", "> 0"]),
        (Box::new(|s| s.params[0].step = 4), vec!["`a` has 4 updates", "3 steps"]),
        (Box::new(|s| s.params[0].step = 0), vec!["`a` has 0 updates"]),
        (Box::new(|s| s.params[1].name = "a".into()), vec!["`a` has two entries"]),
        (
            Box::new(|s| s.params[0].buffers[0][1] = f64::NAN),
            vec!["`exp_avg` of parameter `a`", "NaN", "index 1"],
        ),
        (
            Box::new(|s| s.params[1].buffers[1][0] = -1e-3),
            vec!["`exp_avg_sq` of parameter `b`", "≥ 0"],
        ),
        (
            Box::new(|s| s.params[0].shape = vec![usize::MAX, 2]),
            vec!["too many elements"],
        ),
    ];
    for (corrupt, parts) in &cases {
        let mut bad = state.clone();
        corrupt(&mut bad);
        let m = msg(opt.load_state(bad, &p));
        assert_mentions(&m, &["Adam"]);
        assert_mentions(&m, parts);
    }
    // Entries that do not fit the parameters: one error listing all of them.
    let other = [
        ("a".to_string(), Tensor::<f64>::zeros([1, 3]).unwrap()),
        ("c".to_string(), Tensor::<f64>::zeros([1]).unwrap()),
    ];
    let m = msg(opt.load_state(state.clone(), &named(&other)));
    assert_mentions(
        &m,
        &[
            "2 entries do not fit",
            "`a` has shape [3] in the state but [1, 3]",
            "`b` (shape [1]) is not among the parameters",
        ],
    );
    // Every failed load left the Keras optimizer untouched.
    assert_eq!(
        (opt.learning_rate(), opt.step_count(), opt.state().params.len()),
        (0.5, 0, 0)
    );
    // Parameters without an entry are fine (their state starts on their first update).
    let mut more = named(&params);
    let extra = Tensor::<f64>::zeros([7]).unwrap();
    more.push(("c".to_string(), &extra));
    opt.load_state(state.clone(), &more).unwrap();
    assert_eq!(opt.state(), state);
    assert_eq!(opt.learning_rate(), 0.1);
}

fn set(s: &mut OptimizerState<f64>, name: &str, v: f64) {
    s.hyper.iter_mut().find(|(k, _)| k == name).unwrap().1 = v;
}

#[test]
fn a_step_that_would_overflow_the_counter_is_an_error() {
    // Issue 11: counters at u64::MAX made the next step NaN (release) or panic (debug).
    let (trained, params) = trained_adam();
    let mut state = trained.state();
    state.step = u64::MAX;
    state.params[0].step = u64::MAX;
    let mut opt = Adam::<f64>::pytorch(0.1).unwrap();
    opt.load_state(state.clone(), &named(&params)).unwrap();
    let (mut a, g) = (vec![1.0; 3], vec![0.5; 3]);
    let m = msg(opt.step_slices(&mut [("a", &mut a[..], Some(&g[..]))]));
    assert_mentions(&m, &["Adam", "step count", "18446744073709551615", "overflow"]);
    assert_eq!(a, vec![1.0; 3], "nothing moves");
    assert_eq!(opt.state(), state, "nothing changes");
    // One below the limit, the last step works and stays finite.
    state.step = u64::MAX - 1;
    state.params[0].step = u64::MAX - 1;
    opt.load_state(state, &named(&params)).unwrap();
    opt.step_slices(&mut [("a", &mut a[..], Some(&g[..]))]).unwrap();
    assert!(a.iter().all(|v| v.is_finite() && *v < 1.0), "{a:?}");
    assert_eq!(opt.state().params[0].step, u64::MAX);
}

fn format_msg<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    match r {
        Err(Error::Format(m)) => m,
        other => panic!("expected a format error, got {other:?}"),
    }
}

#[test]
fn state_bytes_round_trip_and_refuse_every_flip_and_truncation() {
    let (trained, _) = trained_adam();
    let state = trained.state();
    let bytes = state.to_bytes().unwrap();
    assert_eq!(OptimizerState::<f64>::from_bytes(&bytes).unwrap(), state);
    assert_eq!(&bytes[..8], b"TGOPTIMS");
    assert_eq!(&bytes[8..12], &2u32.to_le_bytes());
    assert_eq!(&bytes[12..15], b"f64");
    for i in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = bytes.clone();
            bad[i] ^= flip;
            let m = format_msg(OptimizerState::<f64>::from_bytes(&bad));
            assert!(
                ["header", "version", "checksum"].iter().any(|w| m.contains(w)),
                "byte {i} ^ {flip:#x}: {m}"
            );
        }
    }
    for len in 0..bytes.len() {
        format_msg(OptimizerState::<f64>::from_bytes(&bytes[..len]));
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(format_msg(OptimizerState::<f64>::from_bytes(&long)).contains("checksum"));
    assert!(format_msg(OptimizerState::<f64>::from_bytes(b"not a state")).contains("header"));
}

#[test]
fn an_f32_state_read_as_f64_names_both() {
    let mut opt = Adam::<f32>::pytorch(0.1).unwrap();
    let mut w = [1.0f32];
    opt.step_slices(&mut [("w", &mut w[..], Some(&[0.5][..]))]).unwrap();
    let bytes = opt.state().to_bytes().unwrap();
    let m = format_msg(OptimizerState::<f64>::from_bytes(&bytes));
    assert_mentions(&m, &["holds f32", "as f64"]);
    let bytes = trained_adam().0.state().to_bytes().unwrap();
    assert_mentions(
        &format_msg(OptimizerState::<f32>::from_bytes(&bytes)),
        &["holds f64", "as f32"],
    );
}

/// `body` framed as the format says, with a valid checksum.
fn framed(dtype: &[u8; 3], body: &[u8]) -> Vec<u8> {
    let mut out = b"TGOPTIMS".to_vec();
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(dtype);
    out.extend_from_slice(body);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

#[test]
fn hostile_but_well_framed_bytes_are_refused_without_allocating() {
    // A kind string claiming 2⁴⁰ bytes: refused by the decoder's limit, not allocated.
    let mut body = vec![253u8]; // bincode varint: a u64 follows
    body.extend_from_slice(&(1u64 << 40).to_le_bytes());
    let m = format_msg(OptimizerState::<f64>::from_bytes(&framed(b"f64", &body)));
    assert!(m.contains("LimitExceeded"), "{m}");
    // A valid body under another version is refused before decoding.
    let mut bytes = trained_adam().0.state().to_bytes().unwrap();
    bytes[8] = 1;
    assert_mentions(
        &format_msg(OptimizerState::<f64>::from_bytes(&bytes)),
        &["version 1", "version 2"],
    );
    // An unknown dtype.
    let body = &trained_adam().0.state().to_bytes().unwrap()[15..];
    let body = &body[..body.len() - 4];
    assert_mentions(
        &format_msg(OptimizerState::<f64>::from_bytes(&framed(b"i64", body))),
        &["holds i64"],
    );
    // A well-framed state whose counters break the rules is refused by from_bytes too.
    let mut state = trained_adam().0.state();
    state.params[1].step = 9;
    let m = format_msg(OptimizerState::<f64>::from_bytes(&state.to_bytes().unwrap()));
    assert_mentions(&m, &["`b` has 9 updates"]);
}
