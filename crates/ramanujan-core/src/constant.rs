//! Exact rational constants: the numbers of the expression language.

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{Signed, ToPrimitive, Zero};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Largest number of decimal digits accepted in a numeric literal.
pub const MAX_LITERAL_DIGITS: usize = 256;
/// Values wider than this many bits (numerator or denominator) are not produced by
/// folding or evaluation; the operation is treated as undefined instead.
pub const MAX_VALUE_BITS: u64 = 4096;
/// Largest absolute integer exponent that `pow` folds or evaluates exactly.
pub const MAX_EXPONENT: i64 = 64;

/// Whether `|e| <= MAX_EXPONENT`: the one check of the bound, for folding,
/// exact and modular evaluation alike. Not `abs`: `i64::MIN` has none (a
/// release build wrapped it to a negative "absolute value", and 2^(i64::MIN)
/// folded to 1).
pub fn exponent_within_bound(e: i64) -> bool {
    e.unsigned_abs() <= MAX_EXPONENT.unsigned_abs()
}

/// An exact rational number, such as `3`, `-7/2` or `0.25` (read as `1/4`).
///
/// Shared, not inline: a rational is 64 bytes and every e-node of the
/// language is as wide as its widest variant, so an inline constant made
/// every e-node 64 bytes (16 with this pointer), and a copy of a constant
/// cost two allocations.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Constant(Arc<BigRational>);

impl From<BigRational> for Constant {
    fn from(value: BigRational) -> Self {
        Constant(Arc::new(value))
    }
}

impl Constant {
    /// The constant `n`.
    pub fn int(n: i64) -> Self {
        Constant::from(BigRational::from_integer(BigInt::from(n)))
    }

    /// The rational it is.
    pub fn value(&self) -> &BigRational {
        &self.0
    }

    /// Wraps a rational, refusing values wider than [`MAX_VALUE_BITS`].
    pub fn bounded(value: BigRational) -> Option<Self> {
        let fits = value.numer().bits() <= MAX_VALUE_BITS && value.denom().bits() <= MAX_VALUE_BITS;
        fits.then(|| Constant::from(value))
    }

    /// Whether this is zero.
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// Whether this is an integer.
    pub fn is_integer(&self) -> bool {
        self.0.is_integer()
    }

    /// `self + other`, if the result stays within bounds.
    pub fn add(&self, other: &Self) -> Option<Self> {
        Self::bounded(self.value() + other.value())
    }
    /// `self - other`, if the result stays within bounds.
    pub fn sub(&self, other: &Self) -> Option<Self> {
        Self::bounded(self.value() - other.value())
    }
    /// `self * other`, if the result stays within bounds.
    pub fn mul(&self, other: &Self) -> Option<Self> {
        Self::bounded(self.value() * other.value())
    }
    /// `self / other`; undefined when `other` is zero.
    pub fn div(&self, other: &Self) -> Option<Self> {
        if other.0.is_zero() {
            return None;
        }
        Self::bounded(self.value() / other.value())
    }
    /// `-self`.
    pub fn neg(&self) -> Self {
        Constant::from(-self.value())
    }
    /// `self ^ exponent` for an integer exponent with `|exponent| <= MAX_EXPONENT`;
    /// undefined otherwise, and for `0 ^ negative`.
    pub fn pow(&self, exponent: &Self) -> Option<Self> {
        if !exponent.0.is_integer() {
            return None;
        }
        let e = exponent.0.to_integer().to_i64()?;
        if !exponent_within_bound(e) {
            return None;
        }
        if e < 0 && self.0.is_zero() {
            return None;
        }
        let n = e.unsigned_abs() as u32;
        // x^n has at least (bits(x) - 1) * n + 1 bits: refuse before computing.
        let too_wide = |x: &BigInt| x.bits().saturating_sub(1).saturating_mul(u64::from(n)) >= MAX_VALUE_BITS;
        if too_wide(self.0.numer()) || too_wide(self.0.denom()) {
            return None;
        }
        // Powers of a reduced fraction's parts are coprime: no gcd to take.
        let result = BigRational::new_raw(self.0.numer().pow(n), self.0.denom().pow(n));
        Self::bounded(if e < 0 { result.recip() } else { result })
    }
}

/// Why a numeric literal was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstantError {
    /// Not of the form `int`, `int/int` or `int.digits`.
    #[error("not a number: expected an integer, a fraction like 3/4 or a decimal like 0.25")]
    Syntax,
    /// More than [`MAX_LITERAL_DIGITS`] digits.
    #[error("number has more than {MAX_LITERAL_DIGITS} digits")]
    TooLong,
    /// A fraction with denominator zero.
    #[error("fraction has a zero denominator")]
    ZeroDenominator,
}

fn parse_int(s: &str) -> Result<BigInt, ConstantError> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConstantError::Syntax);
    }
    BigInt::from_str(s).map_err(|_| ConstantError::Syntax)
}

impl FromStr for Constant {
    type Err = ConstantError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > MAX_LITERAL_DIGITS + 2 {
            return Err(ConstantError::TooLong);
        }
        if let Some((numer, denom)) = s.split_once('/') {
            let numer = parse_int(numer)?;
            let denom = parse_int(denom)?;
            if denom.is_zero() {
                return Err(ConstantError::ZeroDenominator);
            }
            return Ok(Constant::from(BigRational::new(numer, denom)));
        }
        if let Some((whole, frac)) = s.split_once('.') {
            if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ConstantError::Syntax);
            }
            let negative = whole.starts_with('-');
            let whole = parse_int(if whole == "-" || whole.is_empty() { "0" } else { whole })?;
            let scale = BigInt::from(10u32).pow(frac.len() as u32);
            let frac = BigInt::from_str(frac).map_err(|_| ConstantError::Syntax)?;
            let magnitude = BigRational::new(whole.abs() * &scale + frac, scale);
            return Ok(Constant::from(if negative { -magnitude } else { magnitude }));
        }
        Ok(Constant::from(BigRational::from_integer(parse_int(s)?)))
    }
}

impl fmt::Display for Constant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_integer() {
            write!(f, "{}", self.0.numer())
        } else {
            write!(f, "{}/{}", self.0.numer(), self.0.denom())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_integers_fractions_and_decimals() {
        assert_eq!("42".parse::<Constant>().unwrap(), Constant::int(42));
        assert_eq!("-6/4".parse::<Constant>().unwrap().to_string(), "-3/2");
        assert_eq!("0.25".parse::<Constant>().unwrap().to_string(), "1/4");
        assert_eq!("-1.5".parse::<Constant>().unwrap().to_string(), "-3/2");
        assert_eq!("1/0".parse::<Constant>(), Err(ConstantError::ZeroDenominator));
        assert_eq!("x".parse::<Constant>(), Err(ConstantError::Syntax));
        assert_eq!("1.".parse::<Constant>(), Err(ConstantError::Syntax));
        assert_eq!("9".repeat(300).parse::<Constant>(), Err(ConstantError::TooLong));
    }

    #[test]
    fn pow_is_bounded() {
        let two = Constant::int(2);
        assert_eq!(two.pow(&Constant::int(10)), Some(Constant::int(1024)));
        assert_eq!(two.pow(&Constant::int(-1)).unwrap().to_string(), "1/2");
        assert_eq!(two.pow(&Constant::int(65)), None);
        assert_eq!(Constant::int(0).pow(&Constant::int(-1)), None);
        assert_eq!(two.pow(&"1/2".parse().unwrap()), None);
        // The one exponent whose `abs` overflows (found by a property test).
        assert_eq!(two.pow(&Constant::int(i64::MIN)), None);
        assert_eq!(Constant::int(1).pow(&Constant::int(i64::MIN)), None);
    }

    /// Powers by squaring agree with repeated multiplication, sign, reduction
    /// and the width bound included (a value of exactly `MAX_VALUE_BITS` bits
    /// fits, one more does not).
    #[test]
    fn pow_is_repeated_multiplication() {
        let bases = [
            "-3/2",
            "2/3",
            "-1",
            "0",
            "7",
            "-5/4",
            &format!("{}", BigInt::from(1) << 63usize),
        ];
        for base in bases {
            let base: Constant = base.parse().unwrap();
            for e in -MAX_EXPONENT..=MAX_EXPONENT {
                let mut want = Some(BigRational::from_integer(1.into()));
                for _ in 0..e.unsigned_abs() {
                    want = want.map(|w| w * base.value()).filter(|w: &BigRational| {
                        w.numer().bits() <= MAX_VALUE_BITS && w.denom().bits() <= MAX_VALUE_BITS
                    });
                }
                let want = want
                    .and_then(|w| {
                        if e >= 0 {
                            Some(w)
                        } else {
                            (!w.is_zero()).then(|| w.recip())
                        }
                    })
                    .and_then(Constant::bounded);
                assert_eq!(base.pow(&Constant::int(e)), want, "{base}^{e}");
            }
        }
        let wide = Constant::from(BigRational::from_integer(BigInt::from(1) << 63usize));
        assert_eq!(wide.pow(&Constant::int(65)), None, "beyond the exponent bound");
        let edge = Constant::from(BigRational::from_integer(BigInt::from(1) << 128usize));
        assert_eq!(
            edge.pow(&Constant::int(32)).map(|c| c.value().numer().bits()),
            None,
            "4097 bits"
        );
        let fits = Constant::from(BigRational::from_integer((BigInt::from(1) << 128usize) - 1));
        assert_eq!(
            fits.pow(&Constant::int(32)).map(|c| c.value().numer().bits()),
            Some(4096)
        );
    }
}
