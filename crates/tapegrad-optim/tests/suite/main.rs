//! tapegrad-optim's integration tests, in one binary (linking dominates test build time).

mod alloc;
mod api;
mod naming;
mod rules;
mod state_file;
mod training;

use tapegrad_optim::{Adam, AdamW, GradClip, Momentum, MomentumConfig, Optimizer, RmsProp, RmsPropConfig, Sgd};

/// One optimizer of every rule, each with its options that reach the most code (Nesterov
/// momentum, centered RMSprop with momentum, AdamW with norm clipping), named.
fn every_rule() -> Vec<(&'static str, Box<dyn Optimizer<f32>>)> {
    vec![
        ("Sgd", Box::new(Sgd::pytorch(0.1).unwrap())),
        (
            "Momentum",
            Box::new(
                Momentum::from_config(MomentumConfig {
                    nesterov: true,
                    ..MomentumConfig::keras(0.1)
                })
                .unwrap(),
            ),
        ),
        (
            "RmsProp",
            Box::new(
                RmsProp::from_config(RmsPropConfig {
                    centered: true,
                    momentum: 0.9,
                    ..RmsPropConfig::pytorch(0.1)
                })
                .unwrap(),
            ),
        ),
        ("Adam", Box::new(Adam::keras(0.1).unwrap())),
        (
            "AdamW",
            Box::new(
                AdamW::pytorch(0.1)
                    .unwrap()
                    .with_grad_clip(GradClip::norm(1.0))
                    .unwrap(),
            ),
        ),
    ]
}
