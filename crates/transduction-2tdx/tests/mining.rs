//! Mining by enumeration (issue #20): over `+ - * neg`, three variables and the
//! constants 0, 1, −1, terms up to size 7, the mined rules derive every built-in
//! rule of the core in that domain, and none of them is unsound.

use ramanujan_core::color::Color;
use ramanujan_core::constant::Constant;
use ramanujan_core::rules::{ColoredRewrite, RuleSpec, default_rules};
use ramanujan_core::verify::evaluate;
use std::collections::HashMap;
use transduction_2tdx::enumerate::Grammar;
use transduction_2tdx::mine::{MineOptions, compile_checked, derives, mine_enumeration};
use transduction_2tdx::rule::{NormalForm, instantiate};

/// Built-in rules outside the mined domain: side conditions, or an operator
/// (`/`, `pow`) the grammar does not have.
fn outside_domain(rule: &RuleSpec) -> Option<&'static str> {
    if !rule.nonzero.is_empty() || !rule.integer.is_empty() {
        return Some("side condition");
    }
    if [&rule.lhs, &rule.rhs]
        .iter()
        .any(|s| s.contains("(/ ") || s.contains("(pow "))
    {
        return Some("operator outside + - * neg");
    }
    None
}

/// Both sides evaluated exactly at random small rationals: a second check of
/// soundness, independent of the primes the miner's check used.
fn agrees_exactly(normal: &NormalForm) -> bool {
    let (lhs, rhs) = (instantiate(&normal.lhs), instantiate(&normal.rhs));
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    (0..32).all(|_| {
        let assignment: HashMap<egg::Symbol, Constant> = ["a", "b", "c", "d"]
            .iter()
            .map(|v| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let n = (seed >> 33) as i64 % 41 - 20;
                (format!("var·{v}").into(), Constant::int(n))
            })
            .collect();
        evaluate(&lhs, &assignment) == evaluate(&rhs, &assignment)
    })
}

#[test]
fn mined_rules_derive_the_built_in_ones_and_are_sound() {
    // Size 7, not 5: distributivity's right side, `(+ (* a b) (* a c))`, has 7 nodes.
    let options = MineOptions {
        max_size: 7,
        ..MineOptions::default()
    };
    let mined = mine_enumeration(&Grammar::default(), &options, &[]).unwrap();
    eprintln!(
        "{} terms, {} groups, {} candidates, {} rounds, {} rules kept ({} dropped as derivable), {} refuted, {:.0} ms ({})",
        mined.terms,
        mined.groups,
        mined.candidates,
        mined.rounds,
        mined.rules.len(),
        mined.dropped,
        mined.refuted.len(),
        mined.elapsed_ms,
        mined.stop_reason
    );
    for rule in &mined.rules {
        eprintln!("  {:>6} {} => {}", rule.spec.color.name(), rule.spec.lhs, rule.spec.rhs);
    }
    assert_eq!(mined.stop_reason, "done");
    let rewrites: Vec<ColoredRewrite> = mined.rules.iter().map(|r| compile_checked(&r.spec).unwrap()).collect();
    let rewrites: Vec<&ColoredRewrite> = rewrites.iter().collect();
    for rule in &mined.rules {
        let normal = NormalForm::of_spec(&rule.spec).unwrap();
        assert!(agrees_exactly(&normal), "unsound mined rule {rule:?}");
    }
    let mut missed = Vec::new();
    for color in Color::ALL {
        for rule in default_rules(color) {
            if let Some(why) = outside_domain(&rule) {
                eprintln!("  not in the domain: {} ({why})", rule.name);
                continue;
            }
            let normal = NormalForm::of_spec(&rule).unwrap();
            if !derives(
                &rewrites,
                &normal,
                8,
                100_000,
                std::time::Instant::now() + std::time::Duration::from_secs(10),
            ) {
                missed.push(rule.name.clone());
            }
        }
    }
    assert!(
        missed.is_empty(),
        "built-in rules the mined ones do not derive: {missed:?}"
    );
}
