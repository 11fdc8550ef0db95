//! GREEN verification: is a claimed equality true, and is it derivable?
//!
//! Truth is checked by evaluating both sides exactly on random rational
//! assignments (division by zero and unbounded powers make an assignment
//! undefined, not a counterexample). Derivability is checked by asking egg for an
//! explanation of the equality under the claimed colour's rules.

use crate::analysis::{ColoredAnalysis, fold};
use crate::color::Color;
use crate::constant::Constant;
use crate::lang::{Expr, Math};
use crate::modular::{self, Program};
use crate::rules::ColoredRewrite;
use egg::{FlatTerm, Id, Language, Runner, Symbol};
use num_rational::BigRational;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// Random assignments tried per equality.
pub const TRIALS: usize = 16;
/// Defined assignments needed to call an equality verified.
pub const MIN_DEFINED: usize = 4;

/// Evaluates an expression exactly; `None` where it is undefined or too large.
pub fn evaluate(expr: &Expr, assignment: &HashMap<Symbol, Constant>) -> Option<Constant> {
    let mut values: Vec<Option<Constant>> = Vec::with_capacity(expr.len());
    for node in expr.iter() {
        let value = match node {
            Math::Symbol(s) => assignment.get(s).cloned(),
            _ => fold(node, |id: Id| values[usize::from(id)].clone()),
        };
        values.push(value);
    }
    values.pop().flatten()
}

fn symbols(expr: &Expr, out: &mut BTreeSet<Symbol>) {
    out.extend(expr.iter().filter_map(|n| match n {
        Math::Symbol(s) => Some(*s),
        _ => None,
    }));
}

/// The outcome of evaluating both sides of an equality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Verdict {
    /// Equal on every defined assignment, with enough of them defined.
    Verified {
        /// Assignments on which both sides were defined.
        defined: usize,
    },
    /// A counterexample.
    Refuted {
        /// The assignment, symbol to value.
        assignment: BTreeMap<String, String>,
        /// The left side's value there.
        lhs: String,
        /// The right side's value there.
        rhs: String,
    },
    /// Too few assignments were defined to decide.
    Inconclusive {
        /// Assignments on which both sides were defined.
        defined: usize,
    },
}

impl Verdict {
    /// Whether the equality was refuted.
    pub fn is_refuted(&self) -> bool {
        matches!(self, Verdict::Refuted { .. })
    }
}

/// Checks `lhs = rhs` on [`TRIALS`] random assignments. The assignments are drawn
/// from a seed hashed from both sides, so every replica checks a claim the same way.
///
/// Both sides are evaluated modulo a 61-bit prime ([`crate::modular`]) when they
/// can be, exactly over the rationals otherwise; a counterexample is reported in
/// exact rationals either way.
pub fn check_semantically(lhs: &Expr, rhs: &Expr) -> Verdict {
    let mut h = blake3::Hasher::new();
    for (side, expr) in [(b'l', lhs), (b'r', rhs)] {
        h.update(&[side]);
        // Node by node (operator, then child positions): the same seed on every
        // agent, without printing the expressions.
        for node in expr.as_ref() {
            let op = node.to_string();
            h.update(&(op.len() as u64).to_le_bytes());
            h.update(op.as_bytes());
            for &child in node.children() {
                h.update(&(usize::from(child) as u64).to_le_bytes());
            }
        }
    }
    let digest = h.finalize();
    let seed = u64::from_le_bytes(digest.as_bytes()[..8].try_into().expect("8 bytes"));
    let mut names = BTreeSet::new();
    symbols(lhs, &mut names);
    symbols(rhs, &mut names);
    let names: Vec<Symbol> = names.into_iter().collect();
    let programs = Program::compile(lhs, &names).zip(Program::compile(rhs, &names));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (mut defined, mut draws, mut residues, mut scratch) = (0, Vec::new(), Vec::new(), Vec::new());
    for _ in 0..TRIALS {
        // Each symbol gets n/d with n in -20..=20 and d in 1..=7.
        draws.clear();
        draws.extend(
            names
                .iter()
                .map(|_| (rng.random_range(-20i64..=20), rng.random_range(1u32..=7))),
        );
        let exact = || -> Vec<Constant> {
            draws
                .iter()
                .map(|&(n, d)| Constant(BigRational::new(n.into(), i64::from(d).into())))
                .collect()
        };
        if let Some((l, r)) = &programs {
            residues.clear();
            residues.extend(draws.iter().map(|&(n, d)| modular::ratio_residue(n, d)));
            let (Some(a), Some(b)) = (l.eval(&residues, &mut scratch), r.eval(&residues, &mut scratch)) else {
                continue;
            };
            if a == b {
                defined += 1;
                continue;
            }
            let values = exact();
            let show = |expr: &Expr, residue: u64| {
                let exact = evaluate(expr, &names.iter().copied().zip(values.iter().cloned()).collect());
                exact.map_or_else(|| format!("{residue} (mod 2^61-1)"), |v| v.to_string())
            };
            return refuted(&names, &values, show(lhs, a), show(rhs, b));
        }
        let values = exact();
        let assignment: HashMap<Symbol, Constant> = names.iter().copied().zip(values.iter().cloned()).collect();
        let (Some(a), Some(b)) = (evaluate(lhs, &assignment), evaluate(rhs, &assignment)) else {
            continue;
        };
        if a != b {
            return refuted(&names, &values, a.to_string(), b.to_string());
        }
        defined += 1;
    }
    if defined >= MIN_DEFINED {
        Verdict::Verified { defined }
    } else {
        Verdict::Inconclusive { defined }
    }
}

fn refuted(names: &[Symbol], values: &[Constant], lhs: String, rhs: String) -> Verdict {
    Verdict::Refuted {
        assignment: names
            .iter()
            .zip(values)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        lhs,
        rhs,
    }
}

/// Whether egg can explain an equality with a colour's rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DerivationCheck {
    /// Both sides became equal within the limits.
    pub derivable: bool,
    /// Rewrite steps in egg's flat explanation.
    pub steps: usize,
    /// Rules the explanation used.
    pub rules_used: Vec<String>,
    /// Why the search stopped.
    pub stop_reason: String,
}

fn collect_rules(terms: &[FlatTerm<Math>], steps: &mut usize, rules: &mut BTreeSet<String>) {
    for t in terms {
        for rule in [t.forward_rule, t.backward_rule].into_iter().flatten() {
            *steps += 1;
            rules.insert(rule.to_string());
        }
        collect_rules(&t.children, steps, rules);
    }
}

/// Searches for a derivation of `lhs = rhs` with `rules` (plus constant folding),
/// with explanations on, and reports the explanation's rules.
pub fn check_derivation(lhs: &Expr, rhs: &Expr, rules: &[&ColoredRewrite], limit: Duration) -> DerivationCheck {
    let runner = Runner::<_, _, ()>::new(ColoredAnalysis::new(true))
        .with_explanations_enabled()
        .with_expr(lhs)
        .with_expr(rhs)
        .with_node_limit(5_000)
        .with_iter_limit(12)
        .with_time_limit(limit)
        .with_hook(|r| {
            if r.egraph.find(r.roots[0]) == r.egraph.find(r.roots[1]) {
                Err("proved".into())
            } else {
                Ok(())
            }
        });
    let mut runner = runner.run(rules.iter().copied());
    let stop_reason = crate::saturate::stop_reason_name(runner.stop_reason.as_ref());
    if runner.egraph.find(runner.roots[0]) != runner.egraph.find(runner.roots[1]) {
        return DerivationCheck {
            derivable: false,
            steps: 0,
            rules_used: Vec::new(),
            stop_reason,
        };
    }
    let mut explanation = runner.explain_equivalence(lhs, rhs);
    let (mut steps, mut used) = (0, BTreeSet::new());
    collect_rules(explanation.make_flat_explanation(), &mut steps, &mut used);
    DerivationCheck {
        derivable: true,
        steps,
        rules_used: used.into_iter().collect(),
        stop_reason,
    }
}

/// A derivation step claimed by both RED and BLUE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColorConflict {
    /// The step, as text.
    pub step: String,
    /// Each claim: rule and colour.
    pub claims: Vec<(String, Color)>,
}

/// Every derivation step of a replica claimed by both a RED and a BLUE rule: the
/// same equality asserted with both colours.
pub fn verify_color_constraint(state: &crate::replica::ReplicaState) -> Vec<ColorConflict> {
    use crate::term::TermKey;
    let mut claims: BTreeMap<(TermKey, TermKey), BTreeSet<(String, Color)>> = BTreeMap::new();
    for eq in state.equalities() {
        claims
            .entry((eq.lhs, eq.rhs))
            .or_default()
            .insert((eq.provenance.rule.clone(), eq.provenance.color));
    }
    let show = |k: TermKey| crate::materialize::term_expr(state, k).map_or(k.to_string(), |e| e.to_string());
    claims
        .into_iter()
        .filter(|(_, c)| c.iter().any(|x| x.1 == Color::Red) && c.iter().any(|x| x.1 == Color::Blue))
        .map(|((l, r), c)| ColorConflict {
            step: format!("{} = {}", show(l), show(r)),
            claims: c.into_iter().collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_expr;

    fn check(lhs: &str, rhs: &str) -> Verdict {
        check_semantically(&parse_expr(lhs).unwrap(), &parse_expr(rhs).unwrap())
    }

    #[test]
    fn true_identities_are_verified() {
        let square = "(pow (+ a b) 2)";
        let expanded = "(+ (* a a) (+ (* 2 (* a b)) (* b b)))";
        assert_eq!(check(square, expanded), Verdict::Verified { defined: TRIALS });
        assert!(matches!(check("(/ (* x y) y)", "x"), Verdict::Verified { .. }));
    }

    #[test]
    fn counterexamples_are_exact_rationals() {
        let Verdict::Refuted { assignment, lhs, rhs } = check("(+ a b)", "(* a b)") else {
            panic!("a + b = a * b refuted");
        };
        let value = |k: &str| assignment[k].parse::<Constant>().unwrap();
        let (a, b) = (value("a"), value("b"));
        assert_eq!(lhs.parse::<Constant>().unwrap(), a.add(&b).unwrap());
        assert_eq!(rhs.parse::<Constant>().unwrap(), a.mul(&b).unwrap());
    }

    #[test]
    fn symbolic_exponents_use_exact_evaluation() {
        assert!(!check("(pow x n)", "(pow x (+ n 0))").is_refuted());
        assert!(check("(pow x n)", "(pow x (+ n 1))").is_refuted());
    }
}
