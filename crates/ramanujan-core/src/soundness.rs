//! Is a rewrite rule sound? Both sides are instantiated over random
//! substitutions and checked as an equality before the rule may derive anything.
//!
//! A pattern variable stands for any term, so it becomes a fresh symbol and the
//! two sides go to [`check_semantically`]: a `verified` verdict there covers
//! every value of the variables at once. A variable with an `integer` condition
//! only ever matches an integer constant, so it is drawn as one (several draws).
//! A `nonzero` condition needs nothing: a symbol is already "any value where
//! defined". Where the sides are not rational functions of their variables (a
//! variable in an exponent), random exact evaluation with small integers and
//! fractions decides instead: it finds counterexamples, and a rule it does not
//! refute on enough defined assignments is accepted as checked, not verified.

use crate::constant::Constant;
use crate::lang::{Expr, Math};
use crate::rules::RuleSpec;
use crate::verify::{Verdict, check_semantically, evaluate};
use egg::{ENodeOrVar, Id, Language, Pattern, RecExpr, Symbol, Var};
use num_rational::BigRational;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};

/// Draws of the `integer` variables checked per rule.
const INTEGER_DRAWS: usize = 4;
/// Exact assignments tried when random points cannot decide.
const EXACT_TRIALS: usize = 64;
/// Of those, defined ones needed to accept a rule as checked.
const EXACT_DEFINED: usize = 8;

/// Why a rule is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsound {
    /// A substitution where the two sides differ.
    Counterexample {
        /// Variable to value (a symbol's name where it stayed symbolic).
        assignment: BTreeMap<String, String>,
        /// The left side's value.
        lhs: String,
        /// The right side's value.
        rhs: String,
    },
    /// Neither side could be evaluated often enough to decide.
    Undecided(String),
}

impl std::fmt::Display for Unsound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unsound::Counterexample { assignment, lhs, rhs } => {
                let at: Vec<String> = assignment.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                write!(
                    f,
                    "unsound: at {} the left side is {lhs} and the right side {rhs}",
                    at.join(", ")
                )
            }
            Unsound::Undecided(reason) => write!(f, "cannot be checked: {reason}"),
        }
    }
}

/// Checks one direction of a rule, `lhs => rhs`, with the spec's conditions.
/// The patterns must parse (they are checked by [`crate::rules::compile`] first).
pub fn check_rule(spec: &RuleSpec, lhs: &Pattern<Math>, rhs: &Pattern<Math>) -> Result<(), Unsound> {
    let integer: Vec<Var> = spec.integer.iter().filter_map(|v| v.parse().ok()).collect();
    // Unpredictable draws: a rule cannot be built against them.
    let mut rng = rand_chacha::ChaCha8Rng::from_os_rng();
    let draws = if integer.is_empty() { 1 } else { INTEGER_DRAWS };
    let mut undecided = None;
    for _ in 0..draws {
        let subst: HashMap<Var, Math> = integer
            .iter()
            .map(|&v| (v, Math::Num(Constant::int(rng.random_range(-8..=8)))))
            .collect();
        let (l, r) = (instantiate(&lhs.ast, &subst), instantiate(&rhs.ast, &subst));
        match check_semantically(&l, &r) {
            Verdict::Verified { .. } => {}
            Verdict::Refuted { assignment, lhs, rhs } => {
                let mut assignment = assignment;
                for (v, value) in &subst {
                    assignment.insert(v.to_string(), value.to_string());
                }
                return Err(Unsound::Counterexample { assignment, lhs, rhs });
            }
            Verdict::Inconclusive { reason, .. } => undecided = Some(reason),
        }
    }
    match undecided {
        None => Ok(()),
        Some(reason) => check_exactly(lhs, rhs, &integer, &mut rng).map_err(|e| match e {
            Unsound::Undecided(why) => Unsound::Undecided(format!("{reason}; {why}")),
            refuted => refuted,
        }),
    }
}

/// Random exact evaluation, every variable a small integer or fraction (an
/// `integer` one always an integer): the fallback for exponents.
fn check_exactly(lhs: &Pattern<Math>, rhs: &Pattern<Math>, integer: &[Var], rng: &mut impl Rng) -> Result<(), Unsound> {
    let mut vars = lhs.vars();
    for v in rhs.vars() {
        if !vars.contains(&v) {
            vars.push(v);
        }
    }
    let empty = HashMap::new();
    let mut defined = 0;
    for _ in 0..EXACT_TRIALS {
        let values: HashMap<Var, Constant> = vars
            .iter()
            .map(|&v| {
                let n = rng.random_range(-6i64..=6);
                let d = if integer.contains(&v) || rng.random_bool(0.5) {
                    1
                } else {
                    rng.random_range(2i64..=5)
                };
                (v, Constant::from(BigRational::new(n.into(), d.into())))
            })
            .collect();
        let subst: HashMap<Var, Math> = values.iter().map(|(v, c)| (*v, Math::Num(c.clone()))).collect();
        let (l, r) = (instantiate(&lhs.ast, &subst), instantiate(&rhs.ast, &subst));
        let (Some(a), Some(b)) = (evaluate(&l, &empty), evaluate(&r, &empty)) else {
            continue;
        };
        if a != b {
            return Err(Unsound::Counterexample {
                assignment: values.iter().map(|(v, c)| (v.to_string(), c.to_string())).collect(),
                lhs: a.to_string(),
                rhs: b.to_string(),
            });
        }
        defined += 1;
    }
    if defined >= EXACT_DEFINED {
        Ok(())
    } else {
        Err(Unsound::Undecided(format!(
            "both sides were defined at {defined} of {EXACT_TRIALS} exact assignments, {EXACT_DEFINED} are needed"
        )))
    }
}

/// A pattern with each variable replaced by `subst`'s node, or by a symbol of
/// the variable's own name (`?a`: no symbol a user writes starts with `?`).
fn instantiate(pattern: &RecExpr<ENodeOrVar<Math>>, subst: &HashMap<Var, Math>) -> Expr {
    let mut out = Expr::default();
    let mut ids: Vec<Id> = Vec::with_capacity(pattern.as_ref().len());
    for node in pattern.as_ref() {
        let id = match node {
            ENodeOrVar::Var(v) => out.add(
                subst
                    .get(v)
                    .cloned()
                    .unwrap_or_else(|| Math::Symbol(Symbol::from(v.to_string()))),
            ),
            ENodeOrVar::ENode(n) => out.add(n.clone().map_children(|c| ids[usize::from(c)])),
        };
        ids.push(id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::color::Color;
    use crate::rules::default_rules;

    fn spec(lhs: &str, rhs: &str, nonzero: &[&str], integer: &[&str]) -> RuleSpec {
        RuleSpec {
            name: "r".into(),
            lhs: lhs.into(),
            rhs: rhs.into(),
            color: Color::Red,
            bidirectional: false,
            nonzero: nonzero.iter().map(|s| s.to_string()).collect(),
            integer: integer.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn check(spec: &RuleSpec) -> Result<(), Unsound> {
        check_rule(spec, &spec.lhs.parse().unwrap(), &spec.rhs.parse().unwrap())
    }

    /// Every built-in rule passes: the check is not stricter than the rules
    /// the network runs on.
    #[test]
    fn every_built_in_rule_is_sound() {
        for color in Color::ALL {
            for rule in default_rules(color) {
                assert_eq!(check(&rule), Ok(()), "{}: {} => {}", rule.name, rule.lhs, rule.rhs);
            }
        }
    }

    #[test]
    fn unsound_rules_are_refused_with_a_counterexample() {
        let unsound = [
            spec("(* ?a ?b)", "(+ ?a ?b)", &[], &[]),
            spec("(/ ?a ?b)", "?a", &["?b"], &[]),
            spec("(pow (pow ?a ?b) ?c)", "(pow ?a (+ ?b ?c))", &[], &[]),
            spec("(pow ?a ?n)", "(* ?a ?n)", &[], &["?n"]),
            spec("(+ ?a 2305843009213693951)", "?a", &[], &[]),
        ];
        for rule in unsound {
            let err = check(&rule).unwrap_err();
            assert!(
                matches!(err, Unsound::Counterexample { .. }),
                "{} => {}: {err}",
                rule.lhs,
                rule.rhs
            );
        }
        let err = check(&spec("(* ?a ?b)", "(+ ?a ?b)", &[], &[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("?a = ") && err.contains("left side"), "{err}");
    }

    #[test]
    fn a_rule_never_defined_is_refused_as_undecided() {
        let err = check(&spec("(/ ?a 0)", "?a", &[], &[])).unwrap_err();
        assert!(matches!(err, Unsound::Undecided(_)), "{err}");
    }

    #[test]
    fn sound_rules_with_conditions_pass() {
        assert_eq!(
            check(&spec("(pow ?a ?n)", "(/ 1 (pow ?a (neg ?n)))", &[], &["?n"])),
            Ok(())
        );
        assert_eq!(check(&spec("(* (/ ?a ?b) ?b)", "?a", &["?b"], &[])), Ok(()));
    }
}
