//! Every term up to a size over a grammar, with its values at random points
//! (its *characteristic vector*, as Ruler calls it): terms that agree at every
//! point are candidates for being equal.

use egg::{FromOp, Id, Language, RecExpr, Symbol};
use ramanujan_core::constant::Constant;
use ramanujan_core::lang::{Expr, Math, is_symbol_name, operator_arity};
use ramanujan_core::modular::{Field, Program, primes};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Largest term size an enumeration may ask for.
pub const MAX_SIZE: usize = 7;
/// Most terms an enumeration may hold.
pub const MAX_TERMS: usize = 200_000;
/// Most variables, and most constants, of a grammar.
pub const MAX_LEAVES: usize = 8;
/// Random points each term is evaluated at. Two different polynomials of
/// degree at most 7 agree at a random point modulo a 61-bit prime with
/// probability at most 7 / 2^61, so at 16 points practically never; a
/// coincidence would still be caught by the soundness check of each rule.
pub const POINTS: usize = 16;

/// What terms are built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grammar {
    /// Operators, as written (`+`, `-`, `*`, `/`, `pow`, `neg`).
    pub operators: Vec<String>,
    /// Variable names (symbols).
    pub variables: Vec<String>,
    /// Constants, as written (`0`, `1`, `-1`, `1/2`).
    pub constants: Vec<String>,
}

impl Default for Grammar {
    /// `+ - * neg` over `a b c` and `0 1 -1`: the domain of the mining test.
    fn default() -> Self {
        let strings = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect();
        Grammar {
            operators: strings(&["+", "-", "*", "neg"]),
            variables: strings(&["a", "b", "c"]),
            constants: strings(&["0", "1", "-1"]),
        }
    }
}

/// A grammar or size the enumeration refuses, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GrammarError(pub String);

/// A grammar, checked: operators with their arity, variables and constants,
/// each once.
#[derive(Debug, Clone)]
pub struct Leaves {
    /// Operators and their arity.
    pub operators: Vec<(String, usize)>,
    /// Variables.
    pub variables: Vec<Symbol>,
    /// Constants.
    pub constants: Vec<Constant>,
}

impl Leaves {
    /// The terms of size one.
    pub fn terms(&self) -> Vec<Expr> {
        self.variables
            .iter()
            .map(|&v| leaf(Math::Symbol(v)))
            .chain(self.constants.iter().map(|c| leaf(Math::Num(c.clone()))))
            .collect()
    }
}

/// Checks a grammar and a size.
pub fn check(grammar: &Grammar, max_size: usize) -> Result<Leaves, GrammarError> {
    let err = |m: String| Err(GrammarError(m));
    if max_size == 0 || max_size > MAX_SIZE {
        return err(format!("max_size must be 1 to {MAX_SIZE}"));
    }
    if grammar.variables.len() > MAX_LEAVES || grammar.constants.len() > MAX_LEAVES {
        return err(format!("at most {MAX_LEAVES} variables and {MAX_LEAVES} constants"));
    }
    if grammar.variables.is_empty() {
        return err("a grammar needs at least one variable".into());
    }
    let mut operators = Vec::new();
    for op in &grammar.operators {
        let Some(arity) = operator_arity(op) else {
            return err(format!("unknown operator `{op}` (the language has + - * / pow neg)"));
        };
        if op == "pow" {
            return err("`pow` cannot be enumerated: its exponents would be arbitrary terms".into());
        }
        if !operators.iter().any(|(o, _)| o == op) {
            operators.push((op.clone(), arity));
        }
    }
    let mut variables = Vec::new();
    for v in &grammar.variables {
        if !is_symbol_name(v) {
            return err(format!("`{v}` is not a variable name"));
        }
        let v = Symbol::from(v.as_str());
        if !variables.contains(&v) {
            variables.push(v);
        }
    }
    let mut constants = Vec::new();
    for c in &grammar.constants {
        let c: Constant = c
            .parse()
            .map_err(|e| GrammarError(format!("`{c}` is not a constant: {e}")))?;
        if !constants.contains(&c) {
            constants.push(c);
        }
    }
    Ok(Leaves {
        operators,
        variables,
        constants,
    })
}

/// A term and what it evaluates to.
#[derive(Debug, Clone)]
pub struct Term {
    /// The term.
    pub expr: Expr,
    /// Its size (nodes).
    pub size: usize,
    /// Its value at each of the enumeration's points, `None` where it is
    /// undefined (a division by zero) at some point.
    pub values: Option<Vec<u64>>,
}

/// The terms of a grammar up to a size.
#[derive(Debug, Clone)]
pub struct Enumeration {
    /// Every term, smallest first.
    pub terms: Vec<Term>,
    /// The grammar's variables.
    pub variables: Vec<Symbol>,
}

/// `op` applied to `children`, as one expression.
pub fn apply(op: &str, children: &[&Expr]) -> Expr {
    let mut nodes: Vec<Math> = Vec::new();
    let mut ids = Vec::new();
    for child in children {
        let offset = nodes.len();
        nodes.extend(
            child
                .as_ref()
                .iter()
                .map(|n| n.clone().map_children(|id| Id::from(usize::from(id) + offset))),
        );
        ids.push(Id::from(nodes.len() - 1));
    }
    let node = Math::from_op(op, ids).expect("operators of the grammar have their arity");
    nodes.push(node);
    RecExpr::from(nodes)
}

fn leaf(node: Math) -> Expr {
    RecExpr::from(vec![node])
}

/// How many terms of each size the grammar has, without building them
/// (saturating), so an enumeration too big is refused before it starts.
pub fn counts(leaves: &Leaves, max_size: usize) -> Vec<usize> {
    let mut by_size = vec![0usize; max_size + 1];
    by_size[1] = leaves.variables.len() + leaves.constants.len();
    for size in 2..=max_size {
        let mut n = 0usize;
        for (_, arity) in &leaves.operators {
            if *arity == 1 {
                n = n.saturating_add(by_size[size - 1]);
            } else {
                for left in 1..size - 1 {
                    n = n.saturating_add(by_size[left].saturating_mul(by_size[size - 1 - left]));
                }
            }
        }
        by_size[size] = n;
    }
    by_size
}

/// The terms of size `size` built by the grammar's operators from `by_size`
/// (the terms of each smaller size, at their size's index).
pub fn layer(leaves: &Leaves, by_size: &[Vec<&Expr>], size: usize) -> Vec<Expr> {
    if size == 1 {
        return leaves.terms();
    }
    let mut layer = Vec::new();
    for (op, arity) in &leaves.operators {
        if *arity == 1 {
            layer.extend(by_size[size - 1].iter().map(|t| apply(op, &[t])));
        } else {
            for left in 1..size - 1 {
                for l in &by_size[left] {
                    for r in &by_size[size - 1 - left] {
                        layer.push(apply(op, &[l, r]));
                    }
                }
            }
        }
    }
    layer
}

/// Random points to evaluate terms at, modulo one of the process's random
/// primes: [`POINTS`] values for each variable, drawn from OS randomness.
#[derive(Debug, Clone)]
pub struct Points {
    field: Field,
    variables: Vec<Symbol>,
    points: Vec<Vec<u64>>,
}

impl Points {
    /// Fresh points for these variables.
    pub fn new(variables: &[Symbol]) -> Self {
        let field = primes()[0];
        let mut rng = rand_chacha::ChaCha8Rng::from_os_rng();
        let points = (0..POINTS)
            .map(|_| variables.iter().map(|_| rng.random_range(0..field.modulus())).collect())
            .collect();
        Points {
            field,
            variables: variables.to_vec(),
            points,
        }
    }

    /// The values of `expr` at the points, `None` where it is undefined at one.
    pub fn values(&self, expr: &Expr) -> Option<Vec<u64>> {
        let program = Program::compile(expr, &self.variables, self.field)?;
        let mut scratch = Vec::new();
        self.points.iter().map(|p| program.eval(p, &mut scratch)).collect()
    }
}

/// Every term of `grammar` up to `max_size` nodes (none left out), each
/// evaluated at [`Points`].
pub fn enumerate(grammar: &Grammar, max_size: usize) -> Result<Enumeration, GrammarError> {
    let leaves = check(grammar, max_size)?;
    let total = counts(&leaves, max_size)
        .iter()
        .fold(0usize, |a, &b| a.saturating_add(b));
    if total > MAX_TERMS {
        return Err(GrammarError(format!(
            "the grammar has {total} terms up to size {max_size}, more than the {MAX_TERMS} an enumeration may hold"
        )));
    }
    let mut by_size: Vec<Vec<Expr>> = vec![Vec::new()];
    for size in 1..=max_size {
        let smaller: Vec<Vec<&Expr>> = by_size.iter().map(|l| l.iter().collect()).collect();
        let next = layer(&leaves, &smaller, size);
        by_size.push(next);
    }
    let points = Points::new(&leaves.variables);
    let terms = by_size
        .into_iter()
        .enumerate()
        .flat_map(|(size, layer)| layer.into_iter().map(move |expr| (size, expr)))
        .map(|(size, expr)| Term {
            values: points.values(&expr),
            expr,
            size,
        })
        .collect();
    Ok(Enumeration {
        terms,
        variables: leaves.variables,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_what_is_built() {
        let grammar = Grammar::default();
        let leaves = check(&grammar, 5).unwrap();
        let counts = counts(&leaves, 5);
        let terms = enumerate(&grammar, 5).unwrap().terms;
        for (size, &n) in counts.iter().enumerate() {
            assert_eq!(terms.iter().filter(|t| t.size == size).count(), n, "size {size}");
        }
        // 6 leaves; 6 negations; 3·36 + 6; ...
        assert_eq!(&counts[1..], &[6, 6, 114, 330, 4542]);
        assert_eq!(
            terms.iter().filter(|t| t.expr.to_string() == "(* a (+ b c))").count(),
            1
        );
    }

    #[test]
    fn equal_terms_agree_and_different_ones_do_not() {
        let terms = enumerate(&Grammar::default(), 3).unwrap().terms;
        let value = |s: &str| terms.iter().find(|t| t.expr.to_string() == s).unwrap().values.clone();
        assert_eq!(value("(+ a b)"), value("(+ b a)"));
        assert_eq!(value("(- a a)"), value("0"));
        assert_ne!(value("(- a b)"), value("(- b a)"));
    }

    #[test]
    fn bad_grammars_are_named() {
        let with = |f: &dyn Fn(&mut Grammar)| {
            let mut g = Grammar::default();
            f(&mut g);
            enumerate(&g, 3).unwrap_err().0
        };
        assert!(with(&|g| g.operators.push("sin".into())).contains("unknown operator `sin`"));
        assert!(with(&|g| g.variables.push("1x".into())).contains("`1x` is not a variable"));
        assert!(with(&|g| g.constants.push("x".into())).contains("`x` is not a constant"));
        assert!(enumerate(&Grammar::default(), 8).unwrap_err().0.contains("max_size"));
        assert!(enumerate(&Grammar::default(), 7).unwrap_err().0.contains("more than"));
    }
}
