//! Exact evaluation modulo the Mersenne prime 2^61 − 1.
//!
//! Reducing rationals modulo a prime is a ring homomorphism wherever denominators
//! stay invertible, so two expressions that differ modulo p on an assignment differ
//! as rational functions, and two that agree on many random assignments are equal
//! with overwhelming probability (Schwartz–Zippel). It is the same test as
//! evaluating over the rationals, without big-integer allocation: GREEN checks run
//! it first and fall back to [`crate::verify::evaluate`] for what it cannot express
//! (a `pow` whose exponent is not a literal integer) and to show counterexamples.

use crate::constant::Constant;
use crate::lang::{Expr, Math};
use egg::Symbol;
use num_bigint::BigInt;
use num_integer::Integer;
use num_traits::ToPrimitive;

/// The prime: 2^61 − 1.
pub const P: u64 = (1 << 61) - 1;

/// Largest literal exponent accepted, as in [`Constant::pow`].
const MAX_EXPONENT: i64 = 64;

fn reduce(x: u128) -> u64 {
    // x mod (2^61 − 1) for x < 2^122, by folding the high bits onto the low ones.
    let folded = (x & P as u128) + (x >> 61);
    let folded = (folded & P as u128) + (folded >> 61);
    let r = folded as u64;
    if r >= P { r - P } else { r }
}

fn add(a: u64, b: u64) -> u64 {
    let s = a + b;
    if s >= P { s - P } else { s }
}

fn sub(a: u64, b: u64) -> u64 {
    if a >= b { a - b } else { a + P - b }
}

fn mul(a: u64, b: u64) -> u64 {
    reduce(a as u128 * b as u128)
}

fn pow(mut base: u64, mut e: u64) -> u64 {
    let mut acc = 1;
    while e > 0 {
        if e & 1 == 1 {
            acc = mul(acc, base);
        }
        base = mul(base, base);
        e >>= 1;
    }
    acc
}

/// The inverse of a non-zero residue (Fermat).
fn inv(a: u64) -> Option<u64> {
    (a != 0).then(|| pow(a, P - 2))
}

/// An integer's residue.
pub fn residue_of_int(n: &BigInt) -> u64 {
    n.mod_floor(&BigInt::from(P)).to_u64().expect("a residue is below P")
}

/// The residue of `n / d` for a small positive `d`.
pub fn ratio_residue(n: i64, d: u32) -> u64 {
    let n = n.rem_euclid(P as i64) as u64;
    mul(n, inv(d as u64 % P).expect("d is positive and below P"))
}

/// A rational's residue, `None` when its denominator is a multiple of P.
pub fn residue(c: &Constant) -> Option<u64> {
    Some(mul(residue_of_int(c.0.numer()), inv(residue_of_int(c.0.denom()))?))
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Const(Option<u64>),
    Var(usize),
    Add(usize, usize),
    Sub(usize, usize),
    Mul(usize, usize),
    Div(usize, usize),
    Neg(usize),
    Pow(usize, i64),
}

/// An expression compiled for repeated evaluation modulo [`P`].
#[derive(Debug, Clone)]
pub struct Program {
    ops: Vec<Op>,
}

impl Program {
    /// Compiles `expr`, numbering its symbols by their position in `symbols`.
    /// `None` when the expression has a `pow` whose exponent is not a literal
    /// integer of at most 64 in size, or a symbol missing from `symbols`.
    pub fn compile(expr: &Expr, symbols: &[Symbol]) -> Option<Program> {
        let ops = expr
            .iter()
            .map(|node| {
                Some(match node {
                    Math::Num(c) => Op::Const(residue(c)),
                    Math::Symbol(s) => Op::Var(symbols.iter().position(|x| x == s)?),
                    Math::Add([a, b]) => Op::Add((*a).into(), (*b).into()),
                    Math::Sub([a, b]) => Op::Sub((*a).into(), (*b).into()),
                    Math::Mul([a, b]) => Op::Mul((*a).into(), (*b).into()),
                    Math::Div([a, b]) => Op::Div((*a).into(), (*b).into()),
                    Math::Neg([a]) => Op::Neg((*a).into()),
                    Math::Pow([a, b]) => {
                        let Math::Num(e) = &expr[*b] else { return None };
                        let e = e.0.is_integer().then(|| e.0.to_integer().to_i64()).flatten()?;
                        if e.abs() > MAX_EXPONENT {
                            return None;
                        }
                        Op::Pow((*a).into(), e)
                    }
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Program { ops })
    }

    /// The value modulo [`P`] under `values` (one residue per symbol), or `None`
    /// where a division by zero (modulo P) makes it undefined.
    pub fn eval(&self, values: &[u64], scratch: &mut Vec<Option<u64>>) -> Option<u64> {
        scratch.clear();
        for op in &self.ops {
            let v = |i: usize| scratch[i];
            let value = match *op {
                Op::Const(c) => c,
                Op::Var(i) => Some(values[i]),
                Op::Add(a, b) => Some(add(v(a)?, v(b)?)),
                Op::Sub(a, b) => Some(sub(v(a)?, v(b)?)),
                Op::Mul(a, b) => Some(mul(v(a)?, v(b)?)),
                Op::Div(a, b) => Some(mul(v(a)?, inv(v(b)?)?)),
                Op::Neg(a) => Some(sub(0, v(a)?)),
                Op::Pow(a, e) if e >= 0 => Some(pow(v(a)?, e as u64)),
                Op::Pow(a, e) => inv(pow(v(a)?, e.unsigned_abs())),
            };
            scratch.push(value);
        }
        scratch.last().copied().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_expr;
    use proptest::prelude::*;

    fn field(c: &Constant) -> u64 {
        residue(c).unwrap()
    }

    proptest! {
        /// Modular arithmetic is the image of exact arithmetic.
        #[test]
        fn agrees_with_exact_arithmetic(a in -1_000_000i64..1_000_000, b in -1_000_000i64..1_000_000, d in 1i64..1_000) {
            let (x, y) = (Constant::int(a), Constant(num_rational::BigRational::new(b.into(), d.into())));
            prop_assert_eq!(add(field(&x), field(&y)), field(&x.add(&y).unwrap()));
            prop_assert_eq!(sub(field(&x), field(&y)), field(&x.sub(&y).unwrap()));
            prop_assert_eq!(mul(field(&x), field(&y)), field(&x.mul(&y).unwrap()));
            prop_assert_eq!(field(&y), ratio_residue(b, d as u32));
            if b != 0 {
                prop_assert_eq!(mul(field(&x), inv(field(&y)).unwrap()), field(&x.div(&y).unwrap()));
            }
            let e = Constant::int(a.rem_euclid(9) - 4);
            prop_assert_eq!(
                Program::compile(&parse_expr(&format!("(pow y {e})")).unwrap(), &[Symbol::from("y")])
                    .unwrap()
                    .eval(&[field(&y)], &mut Vec::new()),
                y.pow(&e).map(|v| field(&v))
            );
        }
    }

    #[test]
    fn reduce_handles_the_extremes() {
        assert_eq!(mul(P - 1, P - 1), 1);
        assert_eq!(reduce(P as u128), 0);
        assert_eq!(add(P - 1, 1), 0);
        assert_eq!(sub(0, 1), P - 1);
    }

    #[test]
    fn division_by_zero_is_undefined() {
        let x = Symbol::from("x");
        let p = Program::compile(&parse_expr("(/ 1 (- x x))").unwrap(), &[x]).unwrap();
        assert_eq!(p.eval(&[5], &mut Vec::new()), None);
    }

    #[test]
    fn symbolic_exponents_are_not_compiled() {
        let syms = [Symbol::from("x"), Symbol::from("n")];
        assert!(Program::compile(&parse_expr("(pow x n)").unwrap(), &syms).is_none());
        assert!(Program::compile(&parse_expr("(pow x 1/2)").unwrap(), &syms).is_none());
        assert!(Program::compile(&parse_expr("(pow x 65)").unwrap(), &syms).is_none());
    }
}
