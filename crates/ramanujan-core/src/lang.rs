//! The expression language: s-expressions over `+ - * / pow neg`, exact rational
//! constants and symbols.

use crate::constant::Constant;
use egg::{Id, Symbol, define_language};

pub use node::Math;

// egg's macro takes no documentation on variants: each is the operator
// written beside it, a constant, or a symbol.
#[allow(missing_docs)]
mod node {
    use super::*;

    define_language! {
        /// One node of an arithmetic expression, as egg stores it.
        pub enum Math {
            "+" = Add([Id; 2]),
            "-" = Sub([Id; 2]),
            "*" = Mul([Id; 2]),
            "/" = Div([Id; 2]),
            "pow" = Pow([Id; 2]),
            "neg" = Neg([Id; 1]),
            Num(Constant),
            Symbol(Symbol),
        }
    }
}

/// An expression: a tree of [`Math`] nodes.
pub type Expr = egg::RecExpr<Math>;

/// The operators, with their arity, as users write them.
pub const OPERATORS: [(&str, usize); 6] = [("+", 2), ("-", 2), ("*", 2), ("/", 2), ("pow", 2), ("neg", 1)];

/// The arity of an operator name, or `None` if it is not an operator.
pub fn operator_arity(name: &str) -> Option<usize> {
    OPERATORS.iter().find(|(op, _)| *op == name).map(|&(_, arity)| arity)
}

/// Whether `name` is a valid symbol: a letter or `_`, then letters, digits, `_` or `'`.
pub fn is_symbol_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '\'')
        && operator_arity(name).is_none()
}
