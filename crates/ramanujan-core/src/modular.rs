//! Exact evaluation modulo primes drawn at random for each process.
//!
//! Reducing rationals modulo a prime p is a ring homomorphism wherever the
//! denominators stay invertible, so two expressions that differ modulo p at an
//! assignment where both are defined differ as rational functions there, and two
//! that agree at many random points are equal with overwhelming probability
//! (Schwartz–Zippel: a non-zero rational function whose numerator and
//! denominator have total degree at most d agrees with zero at a uniformly random
//! point of the field with probability at most d / p). GREEN checks run this
//! first and fall back to [`crate::verify::evaluate`] for what it cannot express
//! (a `pow` whose exponent is not a literal integer) and to show counterexamples.
//!
//! The primes are drawn from the operating system's randomness when the process
//! first needs them, between 2^61 and 2^62, so no input can be built against
//! them: a constant that is zero modulo one of them is as unlikely as guessing
//! it. Exponents are never reduced: a `pow` takes a literal integer of at most
//! 64 in size, evaluated exactly by squaring, and [`degree`] bounds a whole
//! expression's degree so a tower of powers is refused, not trusted.

use crate::constant::{Constant, exponent_within_bound};
use crate::lang::{Expr, Math};
use egg::Symbol;
use num_bigint::BigInt;
use num_integer::Integer;
use num_traits::ToPrimitive;
use rand::{Rng, SeedableRng};
use std::sync::OnceLock;

/// How many random primes each check uses.
pub const PRIMES: usize = 2;

/// The process's primes, each in [2^61, 2^62), drawn once from OS randomness.
pub fn primes() -> &'static [Field; PRIMES] {
    static PRIMES_DRAWN: OnceLock<[Field; PRIMES]> = OnceLock::new();
    PRIMES_DRAWN.get_or_init(|| {
        let mut rng = rand_chacha::ChaCha8Rng::from_os_rng();
        std::array::from_fn(|_| Field::new(random_prime(&mut rng)))
    })
}

/// A uniformly random prime in [2^61, 2^62) (by rejection; about one odd
/// candidate in 21 is prime).
pub fn random_prime(rng: &mut impl Rng) -> u64 {
    loop {
        let candidate = rng.random_range((1u64 << 61)..(1u64 << 62)) | 1;
        if machine_prime::is_prime(candidate) {
            return candidate;
        }
    }
}

/// Arithmetic modulo one prime below 2^62.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    p: u64,
}

impl Field {
    /// The field of residues modulo `p` (a prime below 2^62).
    pub fn new(p: u64) -> Self {
        debug_assert!(p < 1 << 62 && machine_prime::is_prime(p));
        Field { p }
    }

    /// The prime.
    pub fn modulus(&self) -> u64 {
        self.p
    }

    fn add(&self, a: u64, b: u64) -> u64 {
        let s = a + b;
        if s >= self.p { s - self.p } else { s }
    }

    fn sub(&self, a: u64, b: u64) -> u64 {
        if a >= b { a - b } else { a + self.p - b }
    }

    fn mul(&self, a: u64, b: u64) -> u64 {
        ((a as u128 * b as u128) % self.p as u128) as u64
    }

    fn pow(&self, mut base: u64, mut e: u64) -> u64 {
        let mut acc = 1;
        while e > 0 {
            if e & 1 == 1 {
                acc = self.mul(acc, base);
            }
            base = self.mul(base, base);
            e >>= 1;
        }
        acc
    }

    /// The inverse of a non-zero residue, by the extended Euclidean algorithm
    /// (about 36 word divisions for a 61-bit prime, where Fermat's `a^(p-2)`
    /// takes some 90 128-bit reductions). Every value fits an `i64`: the
    /// remainders are below p < 2^62 and the coefficients at most p in size.
    fn inv(&self, a: u64) -> Option<u64> {
        if a == 0 {
            return None;
        }
        let (mut r0, mut r1) = (self.p as i64, a as i64);
        let (mut t0, mut t1) = (0i64, 1i64);
        while r1 != 0 {
            let q = r0 / r1;
            (r0, r1) = (r1, r0 - q * r1);
            (t0, t1) = (t1, t0 - q * t1);
        }
        debug_assert_eq!(r0, 1, "a non-zero residue is a unit modulo a prime");
        Some(t0.rem_euclid(self.p as i64) as u64)
    }

    /// An integer's residue.
    pub fn residue_of_int(&self, n: &BigInt) -> u64 {
        n.mod_floor(&BigInt::from(self.p))
            .to_u64()
            .expect("a residue is below p")
    }

    /// The residue of `n / d` for a small positive `d`.
    pub fn ratio_residue(&self, n: i64, d: u32) -> u64 {
        let n = (i128::from(n)).rem_euclid(i128::from(self.p)) as u64;
        self.mul(n, self.inv(u64::from(d) % self.p).expect("d is positive and below p"))
    }

    /// A rational's residue: `None` when it is not a unit's image faithfully,
    /// that is when its numerator or denominator is a non-zero multiple of p
    /// (a non-zero constant that is zero modulo p would make a false equality
    /// look true; the check then uses another prime).
    pub fn residue(&self, c: &Constant) -> Option<u64> {
        let numer = self.residue_of_int(c.value().numer());
        if numer == 0 && !c.is_zero() {
            return None;
        }
        Some(self.mul(numer, self.inv(self.residue_of_int(c.value().denom()))?))
    }
}

/// An upper bound on the total degree of `expr` as a rational function: the
/// degrees of a numerator and a denominator that represent it. `None` where it
/// is not a rational function of its symbols (a `pow` whose exponent is not a
/// literal integer). Saturates at `u64::MAX`.
pub fn degree(expr: &Expr) -> Option<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(expr.len());
    for node in expr.iter() {
        let d = |id: &egg::Id| out[usize::from(*id)];
        let value = match node {
            Math::Num(_) => (0, 0),
            Math::Symbol(_) => (1, 0),
            Math::Add([a, b]) | Math::Sub([a, b]) => {
                let ((na, da), (nb, db)) = (d(a), d(b));
                (na.saturating_add(db).max(nb.saturating_add(da)), da.saturating_add(db))
            }
            Math::Mul([a, b]) => {
                let ((na, da), (nb, db)) = (d(a), d(b));
                (na.saturating_add(nb), da.saturating_add(db))
            }
            Math::Div([a, b]) => {
                let ((na, da), (nb, db)) = (d(a), d(b));
                (na.saturating_add(db), da.saturating_add(nb))
            }
            Math::Neg([a]) => d(a),
            Math::Pow([a, b]) => {
                let Math::Num(e) = &expr[*b] else { return None };
                let e = e
                    .value()
                    .is_integer()
                    .then(|| e.value().to_integer().to_i64())
                    .flatten()?;
                let (n, den) = d(a);
                let k = e.unsigned_abs();
                let (n, den) = (n.saturating_mul(k), den.saturating_mul(k));
                if e >= 0 { (n, den) } else { (den, n) }
            }
        };
        out.push(value);
    }
    out.last().copied()
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

/// An expression compiled for repeated evaluation modulo one prime.
#[derive(Debug, Clone)]
pub struct Program {
    field: Field,
    ops: Vec<Op>,
}

impl Program {
    /// Compiles `expr` for `field`, numbering its symbols by their position in
    /// `symbols`. `None` when the expression has a `pow` whose exponent is not a
    /// literal integer of at most 64 in size, a symbol missing from `symbols`,
    /// or a non-zero constant that is zero modulo the prime.
    pub fn compile(expr: &Expr, symbols: &[Symbol], field: Field) -> Option<Program> {
        let ops = expr
            .iter()
            .map(|node| {
                Some(match node {
                    Math::Num(c) => Op::Const(Some(field.residue(c)?)),
                    Math::Symbol(s) => Op::Var(symbols.iter().position(|x| x == s)?),
                    Math::Add([a, b]) => Op::Add((*a).into(), (*b).into()),
                    Math::Sub([a, b]) => Op::Sub((*a).into(), (*b).into()),
                    Math::Mul([a, b]) => Op::Mul((*a).into(), (*b).into()),
                    Math::Div([a, b]) => Op::Div((*a).into(), (*b).into()),
                    Math::Neg([a]) => Op::Neg((*a).into()),
                    Math::Pow([a, b]) => {
                        let Math::Num(e) = &expr[*b] else { return None };
                        let e = e
                            .value()
                            .is_integer()
                            .then(|| e.value().to_integer().to_i64())
                            .flatten()?;
                        if !exponent_within_bound(e) {
                            return None;
                        }
                        Op::Pow((*a).into(), e)
                    }
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Program { field, ops })
    }

    /// The value modulo the prime under `values` (one residue per symbol), or
    /// `None` where a division by zero (modulo the prime) makes it undefined.
    pub fn eval(&self, values: &[u64], scratch: &mut Vec<Option<u64>>) -> Option<u64> {
        let f = self.field;
        scratch.clear();
        for op in &self.ops {
            let v = |i: usize| scratch[i];
            let value = match *op {
                Op::Const(c) => c,
                Op::Var(i) => Some(values[i]),
                Op::Add(a, b) => Some(f.add(v(a)?, v(b)?)),
                Op::Sub(a, b) => Some(f.sub(v(a)?, v(b)?)),
                Op::Mul(a, b) => Some(f.mul(v(a)?, v(b)?)),
                Op::Div(a, b) => Some(f.mul(v(a)?, f.inv(v(b)?)?)),
                Op::Neg(a) => Some(f.sub(0, v(a)?)),
                Op::Pow(a, e) if e >= 0 => Some(f.pow(v(a)?, e as u64)),
                Op::Pow(a, e) => f.inv(f.pow(v(a)?, e.unsigned_abs())),
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

    fn field() -> Field {
        primes()[0]
    }

    fn res(c: &Constant) -> u64 {
        field().residue(c).unwrap()
    }

    proptest! {
        /// Modular arithmetic is the image of exact arithmetic.
        #[test]
        fn agrees_with_exact_arithmetic(a in -1_000_000i64..1_000_000, b in -1_000_000i64..1_000_000, d in 1i64..1_000) {
            let f = field();
            let (x, y) = (Constant::int(a), Constant::from(num_rational::BigRational::new(b.into(), d.into())));
            prop_assert_eq!(f.add(res(&x), res(&y)), res(&x.add(&y).unwrap()));
            prop_assert_eq!(f.sub(res(&x), res(&y)), res(&x.sub(&y).unwrap()));
            prop_assert_eq!(f.mul(res(&x), res(&y)), res(&x.mul(&y).unwrap()));
            prop_assert_eq!(res(&y), f.ratio_residue(b, d as u32));
            if b != 0 {
                prop_assert_eq!(f.mul(res(&x), f.inv(res(&y)).unwrap()), res(&x.div(&y).unwrap()));
            }
            let e = Constant::int(a.rem_euclid(9) - 4);
            prop_assert_eq!(
                Program::compile(&parse_expr(&format!("(pow y {e})")).unwrap(), &[Symbol::from("y")], f)
                    .unwrap()
                    .eval(&[res(&y)], &mut Vec::new()),
                y.pow(&e).map(|v| res(&v))
            );
        }

        /// Every non-zero residue's inverse is one, for residues anywhere in the
        /// field (the test above only reaches small ones) and for the largest
        /// prime below 2^62, where the Euclidean coefficients are widest.
        #[test]
        fn inverses_are_inverses(a in 1u64..u64::MAX, which in 0usize..3) {
            let f = match which {
                0 => field(),
                1 => primes()[1],
                _ => Field::new(LARGEST_PRIME_BELOW_2_62),
            };
            let a = a % f.modulus();
            prop_assume!(a != 0);
            prop_assert_eq!(f.mul(a, f.inv(a).unwrap()), 1);
        }
    }

    /// 2^62 − 57.
    const LARGEST_PRIME_BELOW_2_62: u64 = (1 << 62) - 57;

    #[test]
    fn inverses_at_the_edges() {
        assert!(machine_prime::is_prime(LARGEST_PRIME_BELOW_2_62));
        for f in [field(), primes()[1], Field::new(LARGEST_PRIME_BELOW_2_62)] {
            assert_eq!(f.inv(0), None);
            for a in [1, 2, 3, f.modulus() - 1, f.modulus() - 2, f.modulus() / 2] {
                assert_eq!(f.mul(a, f.inv(a).unwrap()), 1, "{a} modulo {}", f.modulus());
            }
        }
    }

    #[test]
    fn primes_are_random_61_bit_primes() {
        let [a, b] = *primes();
        for f in [a, b] {
            assert!(machine_prime::is_prime(f.modulus()));
            assert!((1u64 << 61..1u64 << 62).contains(&f.modulus()));
        }
        // Two draws from about 2^56 primes: equal only if the draw is broken.
        assert_ne!(a, b);
        assert_ne!(a.modulus(), (1 << 61) - 1, "not the fixed Mersenne prime");
    }

    #[test]
    fn arithmetic_handles_the_extremes() {
        let f = field();
        let p = f.modulus();
        assert_eq!(f.mul(p - 1, p - 1), 1);
        assert_eq!(f.add(p - 1, 1), 0);
        assert_eq!(f.sub(0, 1), p - 1);
        assert_eq!(f.ratio_residue(i64::MIN, 1), f.residue_of_int(&BigInt::from(i64::MIN)));
    }

    #[test]
    fn a_constant_that_is_zero_modulo_the_prime_is_not_taken_for_zero() {
        let f = field();
        let multiple = Constant::from(num_rational::BigRational::from_integer(BigInt::from(f.modulus()) * 3));
        assert_eq!(f.residue(&multiple), None);
        assert_eq!(f.residue(&Constant::int(0)), Some(0));
        let expr = parse_expr(&format!("(* x {multiple})")).unwrap();
        assert!(Program::compile(&expr, &[Symbol::from("x")], f).is_none());
    }

    #[test]
    fn division_by_zero_is_undefined() {
        let x = Symbol::from("x");
        let p = Program::compile(&parse_expr("(/ 1 (- x x))").unwrap(), &[x], field()).unwrap();
        assert_eq!(p.eval(&[5], &mut Vec::new()), None);
    }

    #[test]
    fn symbolic_exponents_are_not_compiled() {
        let syms = [Symbol::from("x"), Symbol::from("n")];
        for expr in ["(pow x n)", "(pow x 1/2)", "(pow x 65)"] {
            assert!(
                Program::compile(&parse_expr(expr).unwrap(), &syms, field()).is_none(),
                "{expr}"
            );
        }
    }

    #[test]
    fn degrees_bound_numerators_and_denominators() {
        let d = |e: &str| degree(&parse_expr(e).unwrap());
        assert_eq!(d("(+ (* x y) 3)"), Some((2, 0)));
        assert_eq!(d("(/ 1 (- x 5))"), Some((0, 1)));
        assert_eq!(d("(+ (/ 1 x) (/ 1 y))"), Some((1, 2)));
        assert_eq!(d("(pow (+ x 1) -3)"), Some((0, 3)));
        assert_eq!(d("(pow x n)"), None);
        // A tower of powers: 2 · 64^10 = 2^61, far past any bound that means something.
        let tower = (0..10).fold("(pow x 2)".to_string(), |acc, _| format!("(pow {acc} 64)"));
        assert_eq!(d(&tower), Some((1 << 61, 0)));
    }
}
