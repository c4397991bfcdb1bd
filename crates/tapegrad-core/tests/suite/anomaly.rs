//! Anomaly mode: the first op to produce a NaN or an infinity, forward or backward, is
//! named with its input shapes and the line of this file that called it.

use tapegrad_core::{detect_anomaly, detect_anomaly_guard, is_anomaly_enabled, Error, Tensor};

fn site(line: u32) -> String {
    format!("{}:{line}:", file!())
}

fn tracked(v: &[f64]) -> Tensor<f64> {
    Tensor::from_vec(v.to_vec(), [v.len()]).unwrap().requires_grad()
}

#[test]
fn forward_anomaly_names_the_first_op_and_its_call_site() {
    let x = tracked(&[1.0, 0.0, 2.0]);
    let mut line = 0;
    let err = detect_anomaly(|| {
        let a = x.mul_scalar(2.0);
        line = line!() + 1;
        let b = a.log(); // log 0 = −inf
        let c = b.mul(&b)?; // inf too, but later
        c.sum_all().backward()
    })
    .unwrap_err();
    let Error::Anomaly { op, direction, ref msg } = err else {
        panic!("{err}")
    };
    assert_eq!((op, direction), ("log", "forward"));
    assert!(
        msg.contains("1 infinite") && msg.contains("[3]") && msg.contains(&site(line)),
        "{msg}"
    );
}

#[test]
fn backward_anomaly_names_the_rule_that_returned_a_non_finite_gradient() {
    // √0 = 0 is finite; its gradient 1/(2√0) is not.
    let x = tracked(&[4.0, 0.0]);
    let y = tracked(&[1.0, 1.0]);
    let mut line = 0;
    let err = detect_anomaly(|| {
        line = line!() + 1;
        let s = x.sqrt();
        s.mul(&y)?.sum_all().backward()
    })
    .unwrap_err();
    let Error::Anomaly { op, direction, ref msg } = err else {
        panic!("{err}")
    };
    assert_eq!((op, direction), ("sqrt", "backward"));
    assert!(msg.contains("input 0") && msg.contains(&site(line)), "{msg}");
    // Off, the same computation gives an infinite gradient and no error, as in PyTorch.
    let g = x.sqrt().mul(&y).unwrap().sum_all().backward().unwrap();
    assert!(g.wrt(&x).unwrap().to_vec()[1].is_infinite());
}

#[test]
fn composite_ops_and_operators_report_the_callers_line() {
    let x = tracked(&[1000.0, 1.0]);
    let guard = detect_anomaly_guard();
    let line = line!() + 1;
    let _ = x.powf(200.0).unwrap(); // 1000²⁰⁰ overflows
    let err = guard.check().unwrap_err().to_string();
    assert!(err.contains("powf") && err.contains(&site(line)), "{err}");
    let line = line!() + 1;
    let _ = &x.mul_scalar(f64::INFINITY) + &x;
    let err = guard.check().unwrap_err().to_string();
    assert!(err.contains("mul_scalar") && err.contains(&site(line)), "{err}");
    // check() cleared the report; a finite computation leaves nothing behind.
    let _ = x.softmax(0).unwrap();
    guard.check().unwrap();
}

#[test]
fn guards_nest_and_untracked_ops_are_not_checked() {
    assert!(!is_anomaly_enabled());
    {
        let _outer = detect_anomaly_guard();
        {
            let _inner = detect_anomaly_guard();
        }
        assert!(is_anomaly_enabled());
        // Not recorded, so not checked (only ops on tracked tensors are).
        let _ = Tensor::<f64>::from_vec(vec![-1.0], [1]).unwrap().sqrt();
        assert!(detect_anomaly(|| Ok(())).is_ok());
    }
    assert!(!is_anomaly_enabled());
    // Off: a NaN is no error.
    let x = tracked(&[-1.0]);
    assert!(x.sqrt().sum_all().backward().is_ok());
    assert!(detect_anomaly(|| Ok(x.mul_scalar(2.0).sum_all().backward()?.len())).is_ok());
}
