//! Rule → code → rule (issue #20): the golden module, generated from the core's
//! built-in rules, is compiled here and builds the same rule book; the generator
//! reproduces it byte for byte; reading it back and writing again changes nothing.

// The golden file is prettyplease's output, byte for byte: rustfmt leaves it alone.
#[rustfmt::skip]
#[path = "golden/builtin_rules.rs"]
mod builtin_rules;

use ramanujan_core::color::Color;
use ramanujan_core::parse::parse_expr;
use ramanujan_core::rules::{RuleBook, RuleSpec, default_rules};
use ramanujan_core::saturate::{Limits, Saturation, Scheduler};
use transduction_2tdx::codegen::{generate, parse};

const GOLDEN: &str = include_str!("golden/builtin_rules.rs");

fn builtin() -> Vec<RuleSpec> {
    Color::ALL.into_iter().flat_map(default_rules).collect()
}

#[test]
fn the_generator_reproduces_the_golden_module() {
    let generated = generate(&builtin());
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/builtin_rules.rs"),
            &generated,
        )
        .unwrap();
    }
    assert!(
        generated == GOLDEN,
        "regenerate with BLESS=1 if the change is meant:\n{generated}"
    );
}

#[test]
fn code_read_back_is_the_same_rules_and_writes_the_same_bytes() {
    assert_eq!(parse(GOLDEN).unwrap(), builtin());
    assert_eq!(generate(&parse(GOLDEN).unwrap()), GOLDEN);
    assert_eq!(builtin_rules::specs(), builtin());
}

fn canonical(rules: RuleBook, expr: &str) -> String {
    Saturation {
        expr: parse_expr(expr).unwrap(),
        rules,
        fold_constants: true,
        scheduler: Scheduler::Backoff,
        limits: Limits::default(),
        start: None,
    }
    .run()
    .canonical
}

#[test]
fn the_compiled_module_rewrites_as_the_rules_given_as_data() {
    for expr in [
        "(* 0 (+ p q))",
        "(+ (* a b) (* a c))",
        "(+ x (+ x (+ x x)))",
        "(+ 1 (- a (* (- 2 1) a)))",
        "(* (pow 2 x) (pow 2 y))",
        "(- (* (+ a b) (+ a b)) (* a a))",
    ] {
        let compiled = canonical(builtin_rules::rule_book().unwrap(), expr);
        let as_data = canonical(RuleBook::new(false, &builtin()).unwrap(), expr);
        let built_in = canonical(RuleBook::new(true, &[]).unwrap(), expr);
        assert_eq!(compiled, as_data, "{expr}");
        assert_eq!(compiled, built_in, "{expr}");
    }
}

#[test]
fn any_rule_text_survives_the_round_trip() {
    let tricky = RuleSpec {
        name: "quote \" backslash \\ newline \n α".into(),
        lhs: "(/ ?x ?y)".into(),
        rhs: "(* ?x (pow ?y -1))".into(),
        color: Color::Green,
        bidirectional: false,
        nonzero: vec!["?y".into()],
        integer: vec!["?x".into(), "?y".into()],
    };
    let rules = vec![tricky, builtin().remove(0)];
    let code = generate(&rules);
    assert_eq!(parse(&code).unwrap(), rules);
    assert_eq!(generate(&parse(&code).unwrap()), code);
    assert_eq!(parse(&generate(&[])).unwrap(), Vec::<RuleSpec>::new());
}
