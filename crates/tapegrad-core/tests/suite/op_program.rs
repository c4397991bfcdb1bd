//! Random op programs (issue 11): bytes decoded into a short program of ops on small
//! tensors, with NaN/∞/subnormal values and invalid arguments, run forward and backward.
//! Invalid programs must return errors, valid ones gradients of the right shapes, and
//! nothing may panic. The same interpreter is the `op_program` fuzz target.

#[path = "op_program_interp.rs"]
mod interp;

use interp::run_op_program;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_op_programs_error_or_give_gradients_of_the_right_shapes(
        data in prop::collection::vec(any::<u8>(), 0..160)
    ) {
        if let Err(e) = run_op_program(&data) {
            prop_assert!(false, "{e}");
        }
    }
}

#[test]
fn programs_exercise_both_outcomes() {
    // Not vacuous: over many seeds, some programs run ops and backward, and some ops fail.
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
    let (mut ok, mut err, mut backward) = (0, 0, 0);
    // TAPEGRAD_OP_PROGRAMS=N runs more (a longer local search for panics).
    let n: usize = std::env::var("TAPEGRAD_OP_PROGRAMS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    for _ in 0..n {
        let len = rand::Rng::random_range(&mut rng, 0..160);
        let data: Vec<u8> = (0..len).map(|_| rand::Rng::random(&mut rng)).collect();
        let run = run_op_program(&data).unwrap();
        ok += run.ops_ok;
        err += run.ops_err;
        backward += run.backward_ran as usize;
    }
    eprintln!("op programs: {ok} ops ok, {err} errors, {backward} backward passes");
    assert!(
        ok > 500 && err > 500 && backward > 100,
        "ok {ok}, err {err}, backward {backward}"
    );
}
