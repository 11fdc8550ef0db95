//! GREEN verification: is a claimed equality true, and is it derivable?
//!
//! Truth is checked by evaluating both sides exactly: on small rational
//! assignments, for a readable counterexample, then at random points modulo
//! random primes, which is what can verify (see [`check_semantically`] and
//! [`crate::modular`]; division by zero makes an assignment undefined, not a
//! counterexample). Derivability is checked by asking egg for an
//! explanation of the equality under the claimed colour's rules.

use crate::analysis::{ColoredAnalysis, fold};
use crate::color::Color;
use crate::constant::{Constant, exponent_within_bound};
use crate::lang::{Expr, Math};
use crate::modular::{self, Field, Program};
use crate::rules::ColoredRewrite;
use egg::{FlatTerm, Id, Language, Runner, Symbol};
use num_rational::{BigRational, Ratio};
use num_traits::{CheckedAdd, CheckedMul, CheckedSub, ToPrimitive, Zero};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;
use std::time::Duration;

/// Small rational assignments tried per equality, to find a readable
/// counterexample (they decide nothing in an equality's favour).
pub const TRIALS: usize = 16;
/// Uniformly random points of each prime's field tried per equality: the
/// points that decide in its favour.
pub const FIELD_TRIALS: usize = 4;
/// Field points where both sides are defined needed to call an equality verified.
pub const MIN_DEFINED: usize = 4;
/// The largest degree verified: the difference of the two sides, as one
/// fraction, with a numerator of at most this degree. A false equality agrees
/// at a random point of a field of p > 2^61 elements with probability at most
/// degree / p < 2^-41, so with [`MIN_DEFINED`] independent points it is
/// verified with probability below 2^-160.
pub const MAX_DEGREE: u64 = 1 << 20;

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

/// An expression evaluated exactly in `i64` fractions, while its values fit:
/// the cheap path of [`evaluate`], which it agrees with wherever it answers.
/// Symbols are read from `values` through each node's slot.
struct SmallProgram {
    nodes: Vec<SmallNode>,
}

#[derive(Clone, Copy)]
enum SmallNode {
    Value(Ratio<i64>),
    Slot(usize),
    Op(fn(Ratio<i64>, Ratio<i64>) -> Small, usize, usize),
    Neg(usize),
}

/// One value of a [`SmallProgram`].
#[derive(Clone, Copy)]
enum Small {
    Value(Ratio<i64>),
    /// Undefined, as [`evaluate`] says `None`.
    Undefined,
    /// Past `i64`: [`evaluate`] decides.
    Overflow,
}

impl SmallProgram {
    /// `None` for an expression with a constant past `i64` (or a symbol
    /// missing from `names`).
    fn compile(expr: &Expr, names: &[Symbol]) -> Option<SmallProgram> {
        let nodes = expr
            .iter()
            .map(|node| {
                let (op, [a, b]): (fn(_, _) -> _, _) = match node {
                    Math::Num(c) => {
                        let (n, d) = (c.value().numer().to_i64()?, c.value().denom().to_i64()?);
                        return (n != i64::MIN).then(|| SmallNode::Value(Ratio::new_raw(n, d)));
                    }
                    Math::Symbol(s) => return names.iter().position(|n| n == s).map(SmallNode::Slot),
                    Math::Neg([a]) => return Some(SmallNode::Neg(usize::from(*a))),
                    Math::Add(ab) => (small_add, *ab),
                    Math::Sub(ab) => (small_sub, *ab),
                    Math::Mul(ab) => (small_mul, *ab),
                    Math::Div(ab) => (small_div, *ab),
                    Math::Pow(ab) => (small_pow, *ab),
                };
                Some(SmallNode::Op(op, usize::from(a), usize::from(b)))
            })
            .collect::<Option<_>>()?;
        Some(SmallProgram { nodes })
    }

    fn eval(&self, values: &[Ratio<i64>], scratch: &mut Vec<Small>) -> Small {
        scratch.clear();
        for node in &self.nodes {
            let value = match *node {
                SmallNode::Value(v) => Small::Value(v),
                SmallNode::Slot(i) => Small::Value(values[i]),
                SmallNode::Neg(a) => match scratch[a] {
                    // Values never hold i64::MIN (see `small`): negation fits.
                    Small::Value(v) => Small::Value(Ratio::new_raw(-*v.numer(), *v.denom())),
                    other => other,
                },
                SmallNode::Op(op, a, b) => match (scratch[a], scratch[b]) {
                    (Small::Value(x), Small::Value(y)) => op(x, y),
                    (Small::Overflow, _) | (_, Small::Overflow) => Small::Overflow,
                    _ => Small::Undefined,
                },
            };
            scratch.push(value);
        }
        scratch.pop().unwrap_or(Small::Undefined)
    }
}

/// A checked result as a [`Small`]: past `i64` (or at `i64::MIN`, which has
/// no negation) is an overflow.
fn small(value: Option<Ratio<i64>>) -> Small {
    match value {
        Some(v) if *v.numer() != i64::MIN && *v.denom() != i64::MIN => Small::Value(v),
        _ => Small::Overflow,
    }
}

fn small_add(x: Ratio<i64>, y: Ratio<i64>) -> Small {
    small(x.checked_add(&y))
}

fn small_sub(x: Ratio<i64>, y: Ratio<i64>) -> Small {
    small(x.checked_sub(&y))
}

fn small_mul(x: Ratio<i64>, y: Ratio<i64>) -> Small {
    small(x.checked_mul(&y))
}

fn small_div(x: Ratio<i64>, y: Ratio<i64>) -> Small {
    if y.is_zero() {
        return Small::Undefined;
    }
    // Times the reciprocal, whose denominator is positive: `checked_div`
    // would negate a denominator, which overflows at `i64::MIN`.
    small(x.checked_mul(&y.recip()))
}

/// As [`Constant::pow`]: an integer exponent of at most
/// [`crate::constant::MAX_EXPONENT`], no negative power of zero.
fn small_pow(x: Ratio<i64>, e: Ratio<i64>) -> Small {
    if !e.is_integer() || !exponent_within_bound(*e.numer()) || (*e.numer() < 0 && x.is_zero()) {
        return Small::Undefined;
    }
    // Powers of a reduced fraction's parts are coprime: no gcd to take.
    let n = e.numer().unsigned_abs() as u32;
    let power = x.numer().checked_pow(n).zip(x.denom().checked_pow(n));
    match small(power.map(|(numer, denom)| Ratio::new_raw(numer, denom))) {
        Small::Value(p) if *e.numer() < 0 => Small::Value(p.recip()),
        power => power,
    }
}

/// The same value as a [`Constant`].
fn constant(v: Ratio<i64>) -> Constant {
    Constant::from(BigRational::new((*v.numer()).into(), (*v.denom()).into()))
}

/// Which of `names` occur in an exponent of either side.
fn in_exponents(lhs: &Expr, rhs: &Expr, names: &[Symbol]) -> Vec<bool> {
    let mut found = vec![false; names.len()];
    for expr in [lhs, rhs] {
        let nodes = expr.as_ref();
        // Children come before their parents: one pass from the root down.
        let mut inside = vec![false; nodes.len()];
        for (i, node) in nodes.iter().enumerate().rev() {
            if let Math::Pow([_, b]) = node {
                inside[usize::from(*b)] = true;
            }
            if inside[i] {
                node.for_each(|child| inside[usize::from(child)] = true);
                if let Math::Symbol(s) = node
                    && let Some(k) = names.iter().position(|n| n == s)
                {
                    found[k] = true;
                }
            }
        }
    }
    found
}

fn symbols(expr: &Expr, out: &mut BTreeSet<Symbol>) {
    out.extend(expr.iter().filter_map(|n| match n {
        Math::Symbol(s) => Some(*s),
        _ => None,
    }));
}

/// The outcome of checking an equality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Verdict {
    /// Both sides are rational functions of bounded degree that agree at
    /// random points of fields of random primes: false with probability below
    /// 2^-160 (see [`MAX_DEGREE`]).
    Verified {
        /// Field points at which both sides were defined (and equal).
        defined: usize,
    },
    /// A counterexample: an exact assignment where the two sides differ.
    Refuted {
        /// The assignment, symbol to exact value.
        assignment: BTreeMap<String, String>,
        /// The left side's value there (exact, or its residue where the exact
        /// value is too large to write).
        lhs: String,
        /// The right side's value there.
        rhs: String,
    },
    /// Neither: no counterexample was found, and random evaluation cannot vouch
    /// for the equality.
    Inconclusive {
        /// Assignments on which both sides were defined.
        defined: usize,
        /// Why not verified.
        reason: String,
    },
}

impl Verdict {
    /// Whether the equality was refuted.
    pub fn is_refuted(&self) -> bool {
        matches!(self, Verdict::Refuted { .. })
    }

    /// Whether the equality was verified.
    pub fn is_verified(&self) -> bool {
        matches!(self, Verdict::Verified { .. })
    }
}

/// A secret of this process, so that where the field points fall cannot be
/// computed from an equality by anyone else.
fn process_salt() -> u64 {
    static SALT: OnceLock<u64> = OnceLock::new();
    *SALT.get_or_init(|| rand_chacha::ChaCha8Rng::from_os_rng().random())
}

/// Checks `lhs = rhs`. First on [`TRIALS`] small rational assignments, drawn
/// from a seed hashed from both sides (a counterexample there is exact and
/// readable); then, if both sides are rational functions of degree at most
/// [`MAX_DEGREE`], at [`FIELD_TRIALS`] uniformly random points modulo each of
/// the process's random primes ([`crate::modular::primes`]). Only the second
/// can verify. A point where a side divides by zero (or by something that is
/// zero modulo the prime) decides nothing either way.
pub fn check_semantically(lhs: &Expr, rhs: &Expr) -> Verdict {
    let seed = equality_seed(lhs, rhs);
    let mut names = BTreeSet::new();
    symbols(lhs, &mut names);
    symbols(rhs, &mut names);
    let names: Vec<Symbol> = names.into_iter().collect();
    let primes = modular::primes();
    // Both sides compiled once per prime; `None` for a prime that some
    // non-zero constant is a multiple of (the other prime decides).
    let programs: Vec<(Field, Option<(Program, Program)>)> = primes
        .iter()
        .map(|&field| {
            let compiled = Program::compile(lhs, &names, field).zip(Program::compile(rhs, &names, field));
            (field, compiled)
        })
        .collect();
    // Sides the first prime cannot evaluate (a symbolic exponent) are
    // evaluated exactly: in i64 fractions while they fit. A symbol in an
    // exponent is drawn as an integer: a fractional exponent makes a side
    // undefined, and the trial decides nothing.
    let (small, integral) = if programs[0].1.is_none() {
        let small = SmallProgram::compile(lhs, &names).zip(SmallProgram::compile(rhs, &names));
        (small, in_exponents(lhs, rhs, &names))
    } else {
        (None, vec![false; names.len()])
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (mut defined, mut draws, mut residues, mut scratch) = (0, Vec::new(), Vec::new(), Vec::new());
    let (mut fractions, mut small_scratch) = (Vec::new(), Vec::new());
    for _ in 0..TRIALS {
        // Each symbol gets n/d with n in -20..=20 and d in 1..=7 (1 in an exponent).
        draws.clear();
        draws.extend(integral.iter().map(|&integral| {
            let (n, d) = (rng.random_range(-20i64..=20), rng.random_range(1u32..=7));
            (n, if integral { 1 } else { d })
        }));
        let exact = || -> Vec<Constant> {
            draws
                .iter()
                .map(|&(n, d)| Constant::from(BigRational::new(n.into(), i64::from(d).into())))
                .collect()
        };
        if let (field, Some((l, r))) = &programs[0] {
            let field = *field;
            residues.clear();
            residues.extend(draws.iter().map(|&(n, d)| field.ratio_residue(n, d)));
            let (Some(a), Some(b)) = (l.eval(&residues, &mut scratch), r.eval(&residues, &mut scratch)) else {
                continue;
            };
            defined += 1;
            if a != b {
                return refuted(lhs, rhs, &names, &exact(), field, a, b);
            }
            continue;
        }
        if let Some((l, r)) = &small {
            fractions.clear();
            fractions.extend(draws.iter().map(|&(n, d)| Ratio::new(n, i64::from(d))));
            match (
                l.eval(&fractions, &mut small_scratch),
                r.eval(&fractions, &mut small_scratch),
            ) {
                (Small::Value(a), Small::Value(b)) if a == b => {
                    defined += 1;
                    continue;
                }
                (Small::Value(a), Small::Value(b)) => {
                    return Verdict::Refuted {
                        assignment: show_assignment(&names, &exact()),
                        lhs: constant(a).to_string(),
                        rhs: constant(b).to_string(),
                    };
                }
                (Small::Undefined, _) | (_, Small::Undefined) => continue,
                // Past i64: in big rationals, below.
                _ => {}
            }
        }
        let values = exact();
        let assignment: HashMap<Symbol, Constant> = names.iter().copied().zip(values.iter().cloned()).collect();
        let (Some(a), Some(b)) = (evaluate(lhs, &assignment), evaluate(rhs, &assignment)) else {
            continue;
        };
        if a != b {
            return Verdict::Refuted {
                assignment: show_assignment(&names, &values),
                lhs: a.to_string(),
                rhs: b.to_string(),
            };
        }
        defined += 1;
    }
    let degree = modular::degree(lhs)
        .zip(modular::degree(rhs))
        .map(|((nl, dl), (nr, dr))| nl.saturating_add(dr).max(nr.saturating_add(dl)));
    let degree = match degree {
        None => {
            return Verdict::Inconclusive {
                defined,
                reason: format!(
                    "a power with a symbolic or fractional exponent is not a rational function: \
                     equal on {defined} exact assignments, which bounds no error"
                ),
            };
        }
        Some(d) if d > MAX_DEGREE => {
            return Verdict::Inconclusive {
                defined,
                reason: format!("degree {d} exceeds {MAX_DEGREE}: random evaluation bounds no error there"),
            };
        }
        Some(d) => d,
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ process_salt());
    let mut defined = 0;
    for (field, compiled) in &programs {
        let (field, Some((l, r))) = (*field, compiled) else {
            continue;
        };
        for _ in 0..FIELD_TRIALS {
            residues.clear();
            residues.extend(names.iter().map(|_| rng.random_range(0..field.modulus())));
            let (Some(a), Some(b)) = (l.eval(&residues, &mut scratch), r.eval(&residues, &mut scratch)) else {
                continue;
            };
            if a != b {
                // The residues are integers where both sides are defined: an
                // exact counterexample.
                let values: Vec<Constant> = residues.iter().map(|&v| Constant::int(v as i64)).collect();
                return refuted(lhs, rhs, &names, &values, field, a, b);
            }
            defined += 1;
        }
    }
    if defined >= MIN_DEFINED {
        Verdict::Verified { defined }
    } else {
        Verdict::Inconclusive {
            defined,
            reason: format!(
                "both sides were defined at {defined} of {} random points (degree {degree}); \
                 {MIN_DEFINED} are needed",
                FIELD_TRIALS * primes.len()
            ),
        }
    }
}

/// A seed hashed from both sides, node by node (operator, then child positions),
/// so every agent draws the same small assignments for the same claim.
fn equality_seed(lhs: &Expr, rhs: &Expr) -> u64 {
    let mut h = blake3::Hasher::new();
    for (side, expr) in [(b'l', lhs), (b'r', rhs)] {
        h.update(&[side]);
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
    u64::from_le_bytes(digest.as_bytes()[..8].try_into().expect("8 bytes"))
}

fn show_assignment(names: &[Symbol], values: &[Constant]) -> BTreeMap<String, String> {
    names
        .iter()
        .zip(values)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A refutation at `values`, where the sides' residues modulo `field` are `a`
/// and `b` (different, both defined: so the exact values differ too).
fn refuted(lhs: &Expr, rhs: &Expr, names: &[Symbol], values: &[Constant], field: Field, a: u64, b: u64) -> Verdict {
    let assignment: HashMap<Symbol, Constant> = names.iter().copied().zip(values.iter().cloned()).collect();
    let show = |expr: &Expr, residue: u64| {
        evaluate(expr, &assignment).map_or_else(|| format!("{residue} (mod {})", field.modulus()), |v| v.to_string())
    };
    Verdict::Refuted {
        assignment: show_assignment(names, values),
        lhs: show(lhs, a),
        rhs: show(rhs, b),
    }
}

/// Whether egg can explain an equality with a colour's rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DerivationCheck {
    /// Both sides became equal within the limits.
    pub derivable: bool,
    /// Rewrite steps in egg's flat explanation.
    pub steps: usize,
    /// Rules the explanation used.
    pub rules_used: Vec<String>,
    /// Why the search stopped.
    pub stop_reason: crate::stop::Stop,
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
                Err(crate::stop::PROVED.into())
            } else {
                Ok(())
            }
        });
    let mut runner = runner.run(rules.iter().copied());
    let stop_reason = crate::stop::Stop::of_egg(runner.stop_reason.as_ref());
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
            .insert((eq.provenance.rule.to_string(), eq.provenance.color));
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
        let all = FIELD_TRIALS * crate::modular::PRIMES;
        assert_eq!(check(square, expanded), Verdict::Verified { defined: all });
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

    /// The false equalities of issue #14, each built against a verifier that
    /// evaluated modulo the fixed prime 2^61 − 1 on 191 small rationals.
    #[test]
    fn equalities_built_against_a_known_prime_or_sample_set_are_never_verified() {
        let p = "2305843009213693951";
        let tower = (0..10).fold("(pow x 2)".to_string(), |acc, _| format!("(pow {acc} 64)"));
        // Every value n/d the old verifier drew (n in -20..=20, d in 1..=7): a
        // product that vanishes on all of them, and nowhere else that matters.
        let mut roots: Vec<Constant> = (-20i64..=20)
            .flat_map(|n| (1i64..=7).map(move |d| Constant::from(BigRational::new(n.into(), d.into()))))
            .collect();
        roots.sort_by(|a, b| a.value().cmp(b.value()));
        roots.dedup();
        assert!(roots.len() >= 191);
        let sample_product = balanced_product(roots.iter().map(|r| format!("(- x {r})")).collect());
        let degree_200 = balanced_product((0..200).map(|i| format!("(- x {i})")).collect());
        let cases = [
            (p.to_string(), "0".to_string()),
            (format!("(* x {p})"), "0".to_string()),
            (format!("(/ 1 (- x {p}))"), "(/ 1 x)".to_string()),
            (tower, "(* x x)".to_string()),
            (sample_product.clone(), "0".to_string()),
            (degree_200.clone(), "0".to_string()),
            ("(/ x 0)".to_string(), "5".to_string()),
            ("(pow x 1/2)".to_string(), "7".to_string()),
        ];
        for (lhs, rhs) in cases {
            let verdict = check(&lhs, &rhs);
            assert!(!verdict.is_verified(), "{lhs} = {rhs}: {verdict:?}");
        }
        // Those a random point decides are refuted, with an exact counterexample.
        let refutable = [
            (format!("(* x {p})"), "0"),
            (format!("(/ 1 (- x {p}))"), "(/ 1 x)"),
            (sample_product, "0"),
            (degree_200, "0"),
        ];
        for (lhs, rhs) in refutable {
            assert!(check(&lhs, rhs).is_refuted(), "{lhs} = {rhs}");
        }
        let Verdict::Inconclusive { reason, .. } = check("(/ x 0)", "5") else {
            panic!("division by zero everywhere decides nothing");
        };
        assert!(reason.contains("defined"), "{reason}");
    }

    /// A product of `factors`, as a balanced tree.
    fn balanced_product(mut factors: Vec<String>) -> String {
        while factors.len() > 1 {
            factors = factors
                .chunks(2)
                .map(|c| match c {
                    [a, b] => format!("(* {a} {b})"),
                    [a] => a.clone(),
                    _ => unreachable!(),
                })
                .collect();
        }
        factors.pop().unwrap_or_else(|| "1".into())
    }

    /// A true identity of degree 400 is verified: the bound is on the degree,
    /// not on the size of the sample set.
    #[test]
    fn a_true_identity_of_high_degree_is_verified() {
        let product = balanced_product((0..200).map(|i| format!("(- x {i})")).collect());
        let squared = format!("(* {product} {product})");
        let power = format!("(pow {product} 2)");
        assert!(check(&squared, &power).is_verified());
    }

    /// Expressions with constants at and past the edges of `i64`, exponents
    /// on both sides of [`crate::constant::MAX_EXPONENT`], and symbolic ones.
    fn edgy_expr() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let constants = vec![
            "0",
            "1",
            "-1",
            "2",
            "7/3",
            "-5/8",
            "3037000499",
            "-3037000500",
            "4611686018427387904",
            "9223372036854775807",
            "-9223372036854775807",
            "9223372036854775808",
            "1/9223372036854775807",
        ];
        let leaf = prop_oneof![
            prop::sample::select(vec!["a", "b", "n"]).prop_map(String::from),
            prop::sample::select(constants).prop_map(String::from),
        ];
        leaf.prop_recursive(5, 32, 2, |inner| {
            prop_oneof![
                (
                    prop::sample::select(vec!["+", "-", "*", "/", "pow"]),
                    inner.clone(),
                    inner.clone()
                )
                    .prop_map(|(op, a, b)| format!("({op} {a} {b})")),
                (inner.clone(), -70i32..70).prop_map(|(a, e)| format!("(pow {a} {e})")),
                inner.prop_map(|a| format!("(neg {a})")),
            ]
        })
    }

    proptest::proptest! {
        /// The i64 path says what big rationals say wherever it answers
        /// (fails with `small_pow` past `MAX_EXPONENT`, or with a value at
        /// `i64::MIN` let through: its negation panics).
        #[test]
        fn evaluation_in_small_fractions_agrees_with_big_rationals(
            text in edgy_expr(),
            draws in proptest::collection::vec((-20i64..=20, 1i64..=7), 3),
        ) {
            // `n` an integer, as it is drawn when it is an exponent.
            let fractions = [Ratio::new(draws[0].0, draws[0].1), Ratio::new(draws[1].0, draws[1].1), Ratio::from(draws[2].0)];
            assert_small_agrees(&text, &fractions);
        }
    }

    /// Evaluates `text` at `a, b, n = fractions` both ways; panics where the
    /// i64 path answers otherwise than big rationals.
    fn assert_small_agrees(text: &str, fractions: &[Ratio<i64>; 3]) {
        let expr = parse_expr(text).unwrap();
        let names: Vec<Symbol> = ["a", "b", "n"].into_iter().map(Symbol::from).collect();
        let Some(program) = SmallProgram::compile(&expr, &names) else {
            return;
        };
        let assignment: HashMap<Symbol, Constant> = names
            .iter()
            .copied()
            .zip(fractions.iter().map(|&v| constant(v)))
            .collect();
        let want = evaluate(&expr, &assignment);
        match program.eval(fractions, &mut Vec::new()) {
            Small::Value(v) => assert_eq!(want, Some(constant(v)), "{text}"),
            Small::Undefined => assert_eq!(want, None, "{text}"),
            Small::Overflow => {}
        }
    }

    /// Values that reach `i64::MIN`, whose negation and reciprocal overflow,
    /// go to big rationals (fails with `i64::MIN` let through: a panic).
    #[test]
    fn values_at_the_edge_of_i64_go_to_big_rationals() {
        let min = "(- (neg 9223372036854775807) 1)";
        let at = [Ratio::from(3), Ratio::new(-7, 2), Ratio::from(-2)];
        for text in [
            format!("(neg {min})"),
            format!("(/ 1 {min})"),
            format!("(/ {min} -1)"),
            format!("(pow {min} -1)"),
            "(neg (pow -2 63))".to_string(),
            "(pow (pow -2 n) -63)".to_string(),
            "(* 3037000500 3037000500)".to_string(),
            "(- (* 3037000500 3037000500) (* 3037000500 3037000500))".to_string(),
        ] {
            assert_small_agrees(&text, &at);
        }
    }

    #[test]
    fn symbolic_exponents_use_exact_evaluation() {
        assert!(!check("(pow x n)", "(pow x (+ n 0))").is_refuted());
        assert!(check("(pow x n)", "(pow x (+ n 1))").is_refuted());
    }
}
