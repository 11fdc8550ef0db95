//! A strict s-expression reader for [`Expr`] whose errors say where and why.
//!
//! egg's own `RecExpr::from_str` accepts any word as a symbol and reports no
//! position, so user input goes through this reader instead. It is iterative, so a
//! deeply nested input cannot overflow the stack, and it enforces size limits.

use crate::constant::Constant;
use crate::lang::{Expr, Math, is_symbol_name, operator_arity};
use egg::Id;

/// Limits on what [`parse_expr_with`] accepts.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    /// Largest input, in bytes.
    pub max_bytes: usize,
    /// Largest number of nodes in the expression.
    pub max_nodes: usize,
    /// Deepest nesting of parentheses.
    pub max_depth: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_bytes: 64 * 1024,
            max_nodes: 10_000,
            max_depth: 512,
        }
    }
}

/// A parse error: the byte offset where it was found and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {message}")]
pub struct ParseError {
    /// Byte offset into the input.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

fn error(offset: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        offset,
        message: message.into(),
    }
}

/// Parses an expression with the default [`ParseLimits`].
pub fn parse_expr(input: &str) -> Result<Expr, ParseError> {
    parse_expr_with(input, ParseLimits::default())
}

enum Token<'a> {
    Open,
    Close,
    Atom(&'a str),
}

fn tokens(input: &str) -> impl Iterator<Item = (usize, Token<'_>)> {
    let bytes = input.as_bytes();
    let mut pos = 0;
    std::iter::from_fn(move || {
        while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        let start = pos;
        match bytes.get(pos)? {
            b'(' => {
                pos += 1;
                Some((start, Token::Open))
            }
            b')' => {
                pos += 1;
                Some((start, Token::Close))
            }
            _ => {
                while pos < bytes.len() && !bytes[pos].is_ascii_whitespace() && !b"()".contains(&bytes[pos]) {
                    pos += 1;
                }
                Some((start, Token::Atom(&input[start..pos])))
            }
        }
    })
}

/// An open list being read: where it started, its operator, and its children so far.
struct Frame<'a> {
    offset: usize,
    operator: Option<(usize, &'a str)>,
    children: Vec<Id>,
}

fn leaf(offset: usize, atom: &str) -> Result<Math, ParseError> {
    let starts_numeric =
        atom.starts_with(|c: char| c.is_ascii_digit() || c == '.') || (atom.len() > 1 && atom.starts_with('-'));
    if starts_numeric {
        return atom
            .parse::<Constant>()
            .map(Math::Num)
            .map_err(|e| error(offset, format!("bad number `{atom}`: {e}")));
    }
    if let Some(arity) = operator_arity(atom) {
        return Err(error(
            offset,
            format!("operator `{atom}` needs {arity} argument(s) inside parentheses"),
        ));
    }
    if is_symbol_name(atom) {
        return Ok(Math::Symbol(atom.into()));
    }
    Err(error(
        offset,
        format!("`{atom}` is neither a number nor a symbol (letters, digits, `_`, `'`)"),
    ))
}

fn node(frame: &Frame<'_>, close_offset: usize) -> Result<Math, ParseError> {
    let Some((op_offset, op)) = frame.operator else {
        return Err(error(frame.offset, "empty list `()`: expected an operator"));
    };
    let Some(arity) = operator_arity(op) else {
        return Err(error(
            op_offset,
            format!("unknown operator `{op}`: expected one of + - * / pow neg"),
        ));
    };
    if frame.children.len() != arity {
        return Err(error(
            close_offset,
            format!(
                "operator `{op}` takes {arity} argument(s), found {}",
                frame.children.len()
            ),
        ));
    }
    let c = &frame.children;
    Ok(match op {
        "+" => Math::Add([c[0], c[1]]),
        "-" => Math::Sub([c[0], c[1]]),
        "*" => Math::Mul([c[0], c[1]]),
        "/" => Math::Div([c[0], c[1]]),
        "pow" => Math::Pow([c[0], c[1]]),
        _ => Math::Neg([c[0]]),
    })
}

/// Parses an expression, enforcing `limits`.
pub fn parse_expr_with(input: &str, limits: ParseLimits) -> Result<Expr, ParseError> {
    if input.len() > limits.max_bytes {
        return Err(error(
            limits.max_bytes,
            format!("expression is longer than {} bytes", limits.max_bytes),
        ));
    }
    let mut expr = Expr::default();
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut root: Option<Id> = None;
    for (offset, token) in tokens(input) {
        if root.is_some() {
            return Err(error(offset, "unexpected input after the end of the expression"));
        }
        if expr.len() >= limits.max_nodes {
            return Err(error(
                offset,
                format!("expression has more than {} nodes", limits.max_nodes),
            ));
        }
        let finished = match token {
            Token::Open => {
                if stack.len() >= limits.max_depth {
                    return Err(error(offset, format!("nesting deeper than {}", limits.max_depth)));
                }
                if let Some(parent) = stack.last()
                    && parent.operator.is_none()
                {
                    return Err(error(offset, "expected an operator, found `(`"));
                }
                stack.push(Frame {
                    offset,
                    operator: None,
                    children: Vec::new(),
                });
                None
            }
            Token::Close => {
                let frame = stack.pop().ok_or_else(|| error(offset, "unbalanced `)`"))?;
                Some(expr.add(node(&frame, offset)?))
            }
            Token::Atom(atom) => match stack.last_mut() {
                Some(frame) if frame.operator.is_none() => {
                    frame.operator = Some((offset, atom));
                    None
                }
                _ => Some(expr.add(leaf(offset, atom)?)),
            },
        };
        if let Some(id) = finished {
            match stack.last_mut() {
                Some(parent) => parent.children.push(id),
                None => root = Some(id),
            }
        }
    }
    if let Some(frame) = stack.last() {
        return Err(error(frame.offset, "unclosed `(`"));
    }
    if root.is_none() {
        return Err(error(input.len(), "empty expression"));
    }
    Ok(expr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_expressions() {
        let e = parse_expr("(+ 1 (* x (pow y -2/3)))").unwrap();
        assert_eq!(e.to_string(), "(+ 1 (* x (pow y -2/3)))");
        assert_eq!(parse_expr("  x ").unwrap().to_string(), "x");
        assert_eq!(parse_expr("(neg (- a 0.5))").unwrap().to_string(), "(neg (- a 1/2))");
    }

    #[test]
    fn errors_say_where_and_why() {
        let cases = [
            ("(+ 1", 0, "unclosed"),
            ("(+ 1 2))", 7, "after the end"),
            ("(sin x)", 1, "unknown operator `sin`"),
            ("(+ 1 2 3)", 8, "takes 2 argument(s), found 3"),
            ("()", 0, "empty list"),
            ("((+ 1 2) 3)", 1, "expected an operator"),
            ("(+ 1 $)", 5, "neither a number"),
            ("(+ 1 1/0)", 5, "zero denominator"),
            ("", 0, "empty expression"),
            (")", 0, "unbalanced"),
            ("+", 0, "needs 2 argument(s)"),
        ];
        for (input, offset, needle) in cases {
            let err = parse_expr(input).unwrap_err();
            assert_eq!(err.offset, offset, "{input}: {err}");
            assert!(err.message.contains(needle), "{input}: {err}");
        }
    }

    #[test]
    fn limits_hold() {
        let deep = format!("{}x{}", "(neg ".repeat(600), ")".repeat(600));
        assert!(parse_expr(&deep).unwrap_err().message.contains("nesting"));
        let long = "x".repeat(70_000);
        assert!(parse_expr(&long).unwrap_err().message.contains("longer than"));
        let limits = ParseLimits {
            max_nodes: 3,
            ..ParseLimits::default()
        };
        assert!(
            parse_expr_with("(+ (+ 1 2) 3)", limits)
                .unwrap_err()
                .message
                .contains("nodes")
        );
    }
}
