//! A rule as the component keeps it: the core's [`RuleSpec`] in a normal form
//! (variables renamed in order of first appearance), a content key naming
//! that normal form, the colour its direction gives it, and where it came from.

use egg::{ENodeOrVar, Id, Language, Pattern, PatternAst, RecExpr, Var};
use ramanujan_core::analysis::fold;
use ramanujan_core::color::Color;
use ramanujan_core::constant::Constant;
use ramanujan_core::lang::Math;
use ramanujan_core::rules::{MAX_PATTERN_BYTES, RuleSpec};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

/// Where a rule came from and who checked it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = RuleProvenance)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// `enumeration` (mined from enumerated terms), `equalities` (generalised
    /// from equalities, e.g. the network's), `code` (parsed from a generated
    /// module) or `user`.
    pub source: String,
    /// What checked it: the core's soundness check (both sides over random
    /// substitutions modulo random primes, see `ramanujan_core::soundness`).
    pub verified_by: String,
    /// Free text: the equality it generalises, the enumeration it came from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// The check every rule passes before the component keeps it.
pub const VERIFIER: &str = "ramanujan-core soundness check (random points modulo random primes)";

/// A rule in normal form, with its key and provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A hash of the normal form of both sides and the conditions (not the
    /// name or colour): the same law found twice has one key.
    pub key: String,
    /// The rule, as the core compiles it.
    pub spec: RuleSpec,
    /// Where it came from.
    pub provenance: Provenance,
}

/// A rule that cannot be kept, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRule(pub String);

/// Parses a pattern, naming the side in the error.
pub fn parse_pattern(side: &str, text: &str) -> Result<Pattern<Math>, InvalidRule> {
    if text.len() > MAX_PATTERN_BYTES {
        return Err(InvalidRule(format!("{side} is longer than {MAX_PATTERN_BYTES} bytes")));
    }
    text.parse::<Pattern<Math>>()
        .map_err(|e| InvalidRule(format!("{side} `{text}` is not a pattern: {e}")))
}

/// The variables of a pattern in order of first appearance, read left to right.
fn variables_in_order(ast: &PatternAst<Math>, order: &mut Vec<Var>) {
    fn walk(ast: &PatternAst<Math>, id: Id, order: &mut Vec<Var>) {
        match &ast[id] {
            ENodeOrVar::Var(v) => {
                if !order.contains(v) {
                    order.push(*v);
                }
            }
            ENodeOrVar::ENode(node) => {
                for &child in node.children() {
                    walk(ast, child, order);
                }
            }
        }
    }
    if !ast.is_empty() {
        walk(ast, Id::from(ast.len() - 1), order);
    }
}

/// The `i`th normal variable name: `?a` to `?z`, then `?v26`, `?v27`, ...
fn normal_var(i: usize) -> Var {
    let name = if i < 26 {
        format!("?{}", (b'a' + i as u8) as char)
    } else {
        format!("?v{i}")
    };
    name.parse().expect("a ?name is a variable")
}

fn rename(ast: &PatternAst<Math>, names: &HashMap<Var, Var>) -> PatternAst<Math> {
    ast.as_ref()
        .iter()
        .map(|n| match n {
            ENodeOrVar::Var(v) => ENodeOrVar::Var(names[v]),
            ENodeOrVar::ENode(node) => ENodeOrVar::ENode(node.clone()),
        })
        .collect::<Vec<_>>()
        .into()
}

/// Tree size of a pattern (nodes, variables counted as one each).
pub fn pattern_size(ast: &PatternAst<Math>) -> usize {
    fn size(ast: &PatternAst<Math>, id: Id) -> usize {
        match &ast[id] {
            ENodeOrVar::Var(_) => 1,
            ENodeOrVar::ENode(node) => 1 + node.children().iter().map(|&c| size(ast, c)).sum::<usize>(),
        }
    }
    if ast.is_empty() {
        0
    } else {
        size(ast, Id::from(ast.len() - 1))
    }
}

/// How many times variables occur in a pattern, read as a tree.
fn variable_occurrences(ast: &PatternAst<Math>) -> usize {
    fn count(ast: &PatternAst<Math>, id: Id) -> usize {
        match &ast[id] {
            ENodeOrVar::Var(_) => 1,
            ENodeOrVar::ENode(node) => node.children().iter().map(|&c| count(ast, c)).sum(),
        }
    }
    if ast.is_empty() {
        0
    } else {
        count(ast, Id::from(ast.len() - 1))
    }
}

/// The variables of a pattern, as a set.
pub fn variables(ast: &PatternAst<Math>) -> BTreeSet<Var> {
    ast.as_ref()
        .iter()
        .filter_map(|n| match n {
            ENodeOrVar::Var(v) => Some(*v),
            ENodeOrVar::ENode(_) => None,
        })
        .collect()
}

/// The colour a rule's direction gives it: GREEN for an identity law (the right
/// side is a single variable or constant, as in `(+ ?a 0) => ?a`), BLUE for a
/// rule that shrinks (fewer nodes, or as many with fewer variable occurrences:
/// factoring, collecting like terms), RED for the rest (growing or expanding,
/// and the size-preserving reorderings such as commutativity).
pub fn color_of(lhs: &PatternAst<Math>, rhs: &PatternAst<Math>) -> Color {
    if rhs.as_ref().len() == 1 {
        return Color::Green;
    }
    let (l, r) = (pattern_size(lhs), pattern_size(rhs));
    if r < l || (r == l && variable_occurrences(rhs) < variable_occurrences(lhs)) {
        Color::Blue
    } else {
        Color::Red
    }
}

/// Both sides of a rule in normal form: variables renamed `?a`, `?b`, ... in
/// order of first appearance (left side, then right side), conditions renamed
/// the same way and sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalForm {
    /// Left side.
    pub lhs: PatternAst<Math>,
    /// Right side.
    pub rhs: PatternAst<Math>,
    /// `nonzero` variables.
    pub nonzero: Vec<String>,
    /// `integer` variables.
    pub integer: Vec<String>,
}

impl NormalForm {
    /// Checks and normalises a rule given as patterns: the left side is not a
    /// lone variable or constant, the right side uses no variable the left
    /// side does not bind, conditions name variables of the left side.
    pub fn new(
        lhs: &PatternAst<Math>,
        rhs: &PatternAst<Math>,
        nonzero: &[String],
        integer: &[String],
    ) -> Result<Self, InvalidRule> {
        if lhs.as_ref().len() == 1 {
            return Err(InvalidRule(
                "the left side must be an operator application, not a lone variable or constant".into(),
            ));
        }
        let bound = variables(lhs);
        if let Some(free) = variables(rhs).difference(&bound).next() {
            return Err(InvalidRule(format!(
                "variable {free} is on the right side but not on the left"
            )));
        }
        let mut order = Vec::new();
        variables_in_order(lhs, &mut order);
        let names: HashMap<Var, Var> = order.iter().enumerate().map(|(i, v)| (*v, normal_var(i))).collect();
        let condition = |field: &str, vars: &[String]| -> Result<Vec<String>, InvalidRule> {
            let mut out = vars
                .iter()
                .map(|v| {
                    let var: Var = v
                        .parse()
                        .map_err(|_| InvalidRule(format!("`{v}` in {field} is not a ?variable")))?;
                    names
                        .get(&var)
                        .map(|n| n.to_string())
                        .ok_or_else(|| InvalidRule(format!("{field} variable {v} is not on the left side")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.sort();
            out.dedup();
            Ok(out)
        };
        Ok(NormalForm {
            lhs: rename(lhs, &names),
            rhs: rename(rhs, &names),
            nonzero: condition("nonzero", nonzero)?,
            integer: condition("integer", integer)?,
        })
    }

    /// Parses and normalises a spec's sides and conditions.
    pub fn of_spec(spec: &RuleSpec) -> Result<Self, InvalidRule> {
        let lhs = parse_pattern("lhs", &spec.lhs)?;
        let rhs = parse_pattern("rhs", &spec.rhs)?;
        Self::new(&lhs.ast, &rhs.ast, &spec.nonzero, &spec.integer)
    }

    /// The content key: BLAKE3 of both sides and the conditions, 128 bits in hex.
    pub fn key(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"2tdx-rule\0");
        for part in [self.lhs.to_string(), self.rhs.to_string()] {
            hasher.update(part.as_bytes());
            hasher.update(b"\0");
        }
        for vars in [&self.nonzero, &self.integer] {
            hasher.update(vars.join(" ").as_bytes());
            hasher.update(b"\0");
        }
        hasher.finalize().as_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The colour its direction gives it (see [`color_of`]).
    pub fn color(&self) -> Color {
        color_of(&self.lhs, &self.rhs)
    }

    /// A rule with this normal form: named `name`, coloured `color`.
    pub fn into_rule(self, name: String, color: Color, provenance: Provenance) -> Rule {
        let key = self.key();
        Rule {
            key,
            spec: RuleSpec {
                name,
                lhs: self.lhs.to_string(),
                rhs: self.rhs.to_string(),
                color,
                bidirectional: false,
                nonzero: self.nonzero,
                integer: self.integer,
            },
            provenance,
        }
    }
}

/// A name for a rule found without one: its colour and the start of its key.
pub fn mined_name(color: Color, key: &str) -> String {
    format!("{}-{}", color.name().to_lowercase(), &key[..8])
}

/// An expression with each subterm made of constants only replaced by its
/// value (`(+ 1 1)` → `2`), as an e-graph that folds constants holds it: a
/// pattern that spells the subterm out would match nothing there. A subterm
/// whose value is undefined (`(/ 1 0)`) stays as it is.
pub fn fold_constants(expr: &RecExpr<Math>) -> RecExpr<Math> {
    fn build(expr: &RecExpr<Math>, id: Id, values: &[Option<Constant>], out: &mut RecExpr<Math>) -> Id {
        if let Some(c) = &values[usize::from(id)] {
            return out.add(Math::Num(c.clone()));
        }
        let node = expr[id].clone().map_children(|child| build(expr, child, values, out));
        out.add(node)
    }
    let mut values: Vec<Option<Constant>> = Vec::with_capacity(expr.as_ref().len());
    for node in expr.as_ref() {
        let value = fold(node, |child| values[usize::from(child)].clone());
        values.push(value);
    }
    let mut out = RecExpr::default();
    if !expr.as_ref().is_empty() {
        build(expr, Id::from(expr.as_ref().len() - 1), &values, &mut out);
    }
    out
}

/// An expression over symbols as a pattern: constants folded (see
/// [`fold_constants`]), and each symbol in `variables` made the variable
/// `?symbol`.
pub fn generalise(expr: &RecExpr<Math>, variables: &BTreeSet<egg::Symbol>) -> PatternAst<Math> {
    fold_constants(expr)
        .as_ref()
        .iter()
        .map(|n| match n {
            Math::Symbol(s) if variables.contains(s) => {
                ENodeOrVar::Var(format!("?{s}").parse().expect("?symbol is a variable"))
            }
            other => ENodeOrVar::ENode(other.clone()),
        })
        .collect::<Vec<_>>()
        .into()
}

/// A pattern with every variable replaced by a fresh symbol (`?a` → `a`, with
/// a prefix no user symbol has), so both sides of a rule can be put in an
/// e-graph as terms.
pub fn instantiate(ast: &PatternAst<Math>) -> RecExpr<Math> {
    ast.as_ref()
        .iter()
        .map(|n| match n {
            ENodeOrVar::Var(v) => Math::Symbol(format!("var·{}", v.to_string().trim_start_matches('?')).into()),
            ENodeOrVar::ENode(node) => node.clone(),
        })
        .collect::<Vec<_>>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(lhs: &str, rhs: &str) -> NormalForm {
        let (l, r) = (parse_pattern("lhs", lhs).unwrap(), parse_pattern("rhs", rhs).unwrap());
        NormalForm::new(&l.ast, &r.ast, &[], &[]).unwrap()
    }

    #[test]
    fn renaming_does_not_change_the_key() {
        let a = normal("(+ ?x (* ?y ?x))", "(* ?x (+ 1 ?y))");
        let b = normal("(+ ?q (* ?p ?q))", "(* ?q (+ 1 ?p))");
        assert_eq!(a, b);
        assert_eq!(a.key(), b.key());
        assert_eq!(a.lhs.to_string(), "(+ ?a (* ?b ?a))");
        // Different laws, different keys; the direction counts.
        assert_ne!(a.key(), normal("(* ?x (+ 1 ?y))", "(+ ?x (* ?y ?x))").key());
    }

    #[test]
    fn colours_follow_the_direction() {
        assert_eq!(normal("(+ ?a 0)", "?a").color(), Color::Green);
        assert_eq!(
            normal("(+ (* ?a ?b) (* ?a ?c))", "(* ?a (+ ?b ?c))").color(),
            Color::Blue
        );
        assert_eq!(normal("(+ ?a ?a)", "(* 2 ?a)").color(), Color::Blue);
        assert_eq!(
            normal("(* ?a (+ ?b ?c))", "(+ (* ?a ?b) (* ?a ?c))").color(),
            Color::Red
        );
        assert_eq!(normal("(+ ?a ?b)", "(+ ?b ?a)").color(), Color::Red);
    }

    #[test]
    fn constant_subterms_are_folded() {
        let vars: BTreeSet<egg::Symbol> = ["a".into()].into();
        let expr: RecExpr<Math> = "(* (+ 1 1) (- a (neg -1)))".parse().unwrap();
        assert_eq!(generalise(&expr, &vars).to_string(), "(* 2 (- ?a 1))");
        let undefined: RecExpr<Math> = "(+ a (/ 1 0))".parse().unwrap();
        assert_eq!(fold_constants(&undefined).to_string(), "(+ a (/ 1 0))");
    }

    #[test]
    fn bad_rules_are_named() {
        let bad = |lhs: &str, rhs: &str| {
            let (l, r) = (parse_pattern("lhs", lhs).unwrap(), parse_pattern("rhs", rhs).unwrap());
            NormalForm::new(&l.ast, &r.ast, &[], &[]).unwrap_err().0
        };
        assert!(bad("(+ ?a 0)", "?b").contains("?b is on the right side but not on the left"));
        assert!(bad("?a", "(+ ?a 0)").contains("lone variable"));
        assert!(
            parse_pattern("lhs", "(sin ?a)")
                .unwrap_err()
                .0
                .contains("lhs `(sin ?a)`")
        );
        assert!(parse_pattern("lhs", "(+ ?a").is_err());
    }
}
