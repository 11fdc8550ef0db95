//! Content-addressed terms: the unit of replication.
//!
//! A term is an operator over the keys of its children; its key is a hash of the
//! operator and those keys, so every replica names the same term the same way and
//! egg's local e-class ids never leave a process.

use crate::constant::Constant;
use crate::lang::{Math, is_symbol_name};
use egg::{Id, Language};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// The key of a term: the first 128 bits of a BLAKE3 hash of its operator and child keys.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TermKey(pub u128);

impl fmt::Display for TermKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for TermKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:08x}", (self.0 >> 96) as u32)
    }
}

impl std::str::FromStr for TermKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() != 32 {
            return Err(format!("term key `{s}` is not 32 hex digits"));
        }
        u128::from_str_radix(s, 16)
            .map(TermKey)
            .map_err(|_| format!("term key `{s}` is not hex"))
    }
}

/// Hex in human-readable formats (JSON), 16 raw bytes in binary ones.
impl Serialize for TermKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_bytes(&self.0.to_le_bytes())
        }
    }
}

impl<'de> Deserialize<'de> for TermKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            let bytes = <serde_bytes_16::Bytes16>::deserialize(d)?;
            Ok(TermKey(u128::from_le_bytes(bytes.0)))
        }
    }
}

mod serde_bytes_16 {
    //! Sixteen bytes from a binary format's byte string.
    use serde::de::{Deserialize, Deserializer, Error, Visitor};

    pub struct Bytes16(pub [u8; 16]);

    impl<'de> Deserialize<'de> for Bytes16 {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Bytes16;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("16 bytes of a term key")
                }
                fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Bytes16, E> {
                    v.try_into().map(Bytes16).map_err(|_| E::invalid_length(v.len(), &self))
                }
            }
            d.deserialize_bytes(V)
        }
    }
}

/// A term's operator: an arithmetic operator, a constant, or a symbol.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TermOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `pow`
    Pow,
    /// `neg`
    Neg,
    /// An exact rational constant.
    Num(Constant),
    /// A symbol (interned, as egg interns it: copied, never allocated).
    Sym(egg::Symbol),
}

/// One term: an operator applied to child terms named by key.
///
/// Cheap to copy (32 bytes, no allocation): every replica holds every term.
/// Copies share their children's keys, so the agents of one process that
/// merged the same event's terms hold those keys once; a term decoded from
/// a message or a store has its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Term {
    /// The operator.
    pub op: TermOp,
    /// The children's keys (empty for constants and symbols), shared.
    pub args: Arc<[TermKey]>,
}

impl Term {
    /// The term for an e-node whose children are already named by `key_of`.
    pub fn from_node(node: &Math, key_of: impl Fn(Id) -> TermKey) -> Term {
        let op = match node {
            Math::Add(_) => TermOp::Add,
            Math::Sub(_) => TermOp::Sub,
            Math::Mul(_) => TermOp::Mul,
            Math::Div(_) => TermOp::Div,
            Math::Pow(_) => TermOp::Pow,
            Math::Neg(_) => TermOp::Neg,
            Math::Num(c) => TermOp::Num(c.clone()),
            Math::Symbol(s) => TermOp::Sym(*s),
        };
        Term {
            op,
            args: node.children().iter().map(|&c| key_of(c)).collect(),
        }
    }

    /// The e-node for this term, with children named by `id_of`.
    pub fn to_node(&self, id_of: impl Fn(TermKey) -> Id) -> Math {
        let a = |i: usize| id_of(self.args[i]);
        match &self.op {
            TermOp::Add => Math::Add([a(0), a(1)]),
            TermOp::Sub => Math::Sub([a(0), a(1)]),
            TermOp::Mul => Math::Mul([a(0), a(1)]),
            TermOp::Div => Math::Div([a(0), a(1)]),
            TermOp::Pow => Math::Pow([a(0), a(1)]),
            TermOp::Neg => Math::Neg([a(0)]),
            TermOp::Num(c) => Math::Num(c.clone()),
            TermOp::Sym(s) => Math::Symbol(*s),
        }
    }

    fn op_name(&self) -> &str {
        match &self.op {
            TermOp::Add => "+",
            TermOp::Sub => "-",
            TermOp::Mul => "*",
            TermOp::Div => "/",
            TermOp::Pow => "pow",
            TermOp::Neg => "neg",
            TermOp::Num(_) => "num",
            TermOp::Sym(_) => "sym",
        }
    }

    fn arity(&self) -> usize {
        match self.op {
            TermOp::Num(_) | TermOp::Sym(_) => 0,
            TermOp::Neg => 1,
            _ => 2,
        }
    }

    /// The term's content address.
    pub fn key(&self) -> TermKey {
        let mut hasher = blake3::Hasher::new();
        hasher.update(self.op_name().as_bytes());
        hasher.update(&[0]);
        match &self.op {
            TermOp::Num(c) => {
                hasher.update(c.to_string().as_bytes());
            }
            TermOp::Sym(s) => {
                hasher.update(s.as_str().as_bytes());
            }
            _ => {}
        }
        hasher.update(&[0]);
        for arg in self.args.iter() {
            hasher.update(&arg.0.to_le_bytes());
        }
        let bytes: [u8; 16] = hasher.finalize().as_bytes()[..16].try_into().expect("16 bytes");
        TermKey(u128::from_le_bytes(bytes))
    }
}

/// A term as it travels: `{"op":"+","args":[k1,k2]}`, `{"op":"num","value":"3/4"}`,
/// `{"op":"sym","value":"x"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireTerm {
    /// Operator name, or `num` / `sym` for leaves.
    pub op: String,
    /// Children keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<TermKey>,
    /// The constant or symbol of a leaf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl Term {
    /// The wire form's operator name and leaf value, borrowed where they can
    /// be (a constant is written out).
    pub(crate) fn wire_op_and_value(&self) -> (&str, Option<std::borrow::Cow<'_, str>>) {
        let value = match &self.op {
            TermOp::Num(c) => Some(std::borrow::Cow::Owned(c.to_string())),
            TermOp::Sym(s) => Some(std::borrow::Cow::Borrowed(s.as_str())),
            _ => None,
        };
        (self.op_name(), value)
    }
}

impl From<&Term> for WireTerm {
    fn from(t: &Term) -> Self {
        let (op, value) = t.wire_op_and_value();
        WireTerm {
            op: op.into(),
            args: t.args.to_vec(),
            value: value.map(std::borrow::Cow::into_owned),
        }
    }
}

impl TryFrom<WireTerm> for Term {
    type Error = String;
    fn try_from(w: WireTerm) -> Result<Self, String> {
        let op = match (w.op.as_str(), w.value) {
            ("num", Some(v)) => TermOp::Num(v.parse().map_err(|e| format!("bad number `{v}`: {e}"))?),
            ("sym", Some(v)) if is_symbol_name(&v) => TermOp::Sym(v.as_str().into()),
            ("sym", Some(v)) => return Err(format!("bad symbol `{v}`")),
            ("num" | "sym", None) => return Err(format!("`{}` term needs a value", w.op)),
            ("+", None) => TermOp::Add,
            ("-", None) => TermOp::Sub,
            ("*", None) => TermOp::Mul,
            ("/", None) => TermOp::Div,
            ("pow", None) => TermOp::Pow,
            ("neg", None) => TermOp::Neg,
            (op, _) => return Err(format!("unknown term operator `{op}`")),
        };
        let term = Term {
            op,
            args: w.args.into(),
        };
        if term.args.len() != term.arity() {
            return Err(format!(
                "`{}` takes {} argument(s), found {}",
                w.op,
                term.arity(),
                term.args.len()
            ));
        }
        Ok(term)
    }
}
