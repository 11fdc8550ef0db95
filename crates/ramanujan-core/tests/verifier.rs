//! The verifier against random equalities: true ones, built by the built-in
//! rules (an expression and the canonical form a saturation proves equal to
//! it), are `verified`; perturbed ones are `refuted`, with a counterexample
//! that holds in exact arithmetic.

use proptest::prelude::*;
use ramanujan_core::constant::Constant;
use ramanujan_core::parse::parse_expr;
use ramanujan_core::rules::RuleBook;
use ramanujan_core::saturate::{Limits, Saturation, Scheduler};
use ramanujan_core::verify::{Verdict, check_semantically, evaluate};
use std::collections::HashMap;
use std::time::Duration;

fn expr_strategy() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        prop::sample::select(vec!["a", "b", "c"]).prop_map(String::from),
        (-3i32..6).prop_map(|n| n.to_string()),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (prop::sample::select(vec!["+", "*", "-"]), inner.clone(), inner.clone())
                .prop_map(|(op, a, b)| format!("({op} {a} {b})")),
            (inner.clone(), 2u32..4).prop_map(|(a, n)| format!("(pow {a} {n})")),
            inner.prop_map(|a| format!("(neg {a})")),
        ]
    })
}

/// The canonical form the built-in rules prove equal to `text`.
fn canonical(text: &str) -> String {
    Saturation {
        expr: parse_expr(text).unwrap(),
        rules: RuleBook::new(true, &[]).unwrap(),
        fold_constants: true,
        scheduler: Scheduler::Backoff,
        limits: Limits {
            nodes: 2_000,
            time: Duration::from_secs(10),
            ..Limits::default()
        },
        start: None,
    }
    .run()
    .canonical
}

fn verdict(lhs: &str, rhs: &str) -> Verdict {
    check_semantically(&parse_expr(lhs).unwrap(), &parse_expr(rhs).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn rewrites_of_the_built_in_rules_are_verified_and_perturbations_refuted(text in expr_strategy()) {
        let form = canonical(&text);
        let v = verdict(&text, &form);
        prop_assert!(v.is_verified(), "{} = {}: {:?}", text, form, v);
        let perturbed = [
            format!("(+ {form} 1)"),
            format!("(+ {form} (* (- a b) (- a b)))"),
            format!("(* {form} 2)"),
        ];
        for (i, wrong) in perturbed.iter().enumerate() {
            // `form * 2 = form` holds where form is 0 everywhere.
            if i == 2 && verdict(&form, "0").is_verified() {
                continue;
            }
            let v = verdict(&text, wrong);
            let Verdict::Refuted { assignment, lhs, rhs } = &v else {
                return Err(TestCaseError::fail(format!("{text} = {wrong}: {v:?}")));
            };
            // The counterexample is exact: evaluate both sides there again.
            let at: HashMap<egg::Symbol, Constant> = assignment
                .iter()
                .map(|(k, v)| (egg::Symbol::from(k.as_str()), v.parse().unwrap()))
                .collect();
            let (l, r) = (
                evaluate(&parse_expr(&text).unwrap(), &at),
                evaluate(&parse_expr(wrong).unwrap(), &at),
            );
            prop_assert!(l.is_some() && r.is_some() && l != r, "{text} = {wrong} at {assignment:?}: {lhs} vs {rhs}");
        }
    }
}
