//! Memory across training steps. Alone in its own test binary: `live_nodes` counts the
//! whole process, so tests running beside it would disturb the count.

use tapegrad_core::{live_nodes, Tensor};

fn t(v: &[f64], s: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(v.to_vec(), s).unwrap()
}

#[test]
fn a_training_loop_does_not_grow() {
    let mut w = t(&[0.5, -0.5, 0.25, 1.0], &[2, 2]).requires_grad();
    let x = t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let baseline = live_nodes();
    for step in 0..10_000 {
        let loss = x.matmul(&w).unwrap().tanh().square().unwrap().mean_all().unwrap();
        let grads = loss.backward().unwrap();
        let g = grads.wrt(&w).unwrap();
        drop((loss, grads));
        for (wi, gi) in w.data_mut().iter_mut().zip(g.data()) {
            *wi -= 0.01 * gi;
        }
        if step % 1000 == 999 {
            assert_eq!(
                live_nodes(),
                baseline,
                "step {step}: nodes from earlier steps are still alive"
            );
        }
    }
}
