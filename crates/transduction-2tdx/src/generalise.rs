//! Pattern → rule from equalities: an equality between two terms (one the
//! network derived, say) becomes a rule by anti-unifying its two sides.
//!
//! The subterms the two sides share are what the equality is *about*; each
//! maximal shared subterm becomes one pattern variable on both sides, and so
//! does every symbol. `(* 2 (+ p q)) = (+ (* 2 p) (* 2 q))` shares `2`, `p` and
//! `q`, and becomes `(* ?a (+ ?b ?c)) => (+ (* ?a ?b) (* ?a ?c))`:
//! distributivity, from one instance. Generalising can make a true equality
//! a false rule (`(- 2 1) = 1` shares `1`), so the candidates are tried from
//! most to least general and the first the soundness check accepts is kept:
//!
//! 1. shared subterms and shared constants abstracted;
//! 2. shared compound subterms abstracted, constants kept;
//! 3. symbols only (always sound for an equality that holds for all values of
//!    its symbols).
//!
//! An equality is generalised only once GREEN's check (`check_semantically`)
//! verifies it; a rule the known rules already derive is reported, not kept.

use crate::mine::{Refuted, compile_checked, derives};
use crate::rule::{NormalForm, Provenance, Rule, VERIFIER, mined_name, pattern_size};
use egg::{ENodeOrVar, Id, Language, PatternAst, RecExpr, Var};
use ramanujan_core::lang::{Expr, Math};
use ramanujan_core::materialize::Materialized;
use ramanujan_core::replica::ReplicaState;
use ramanujan_core::rules::{ColoredRewrite, RuleSpec};
use ramanujan_core::term::{Term, TermKey, TermOp};
use ramanujan_core::verify::{Verdict, check_semantically};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap, HashSet};

/// Most equalities one request may generalise.
pub const MAX_EQUALITIES: usize = 2_000;

/// What generalising a list of equalities found.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Generalised {
    /// New rules: sound, and not derivable from the known rules nor from the
    /// rules kept before them.
    pub rules: Vec<Rule>,
    /// Equalities GREEN did not verify (refuted or inconclusive), with why.
    pub unverified: Vec<Refuted>,
    /// Equalities whose every generalisation the known rules derive.
    pub derivable: usize,
    /// Equalities with no usable generalisation (every one unsound, or
    /// binding no variable on the larger side).
    pub ungeneralisable: usize,
}

/// Each subterm of `expr` as text, by node.
fn subterm_texts(expr: &Expr) -> Vec<String> {
    let mut texts: Vec<String> = Vec::with_capacity(expr.as_ref().len());
    for node in expr.as_ref() {
        let text = match node {
            Math::Num(c) => c.to_string(),
            Math::Symbol(s) => s.to_string(),
            other => {
                let args: Vec<&str> = other
                    .children()
                    .iter()
                    .map(|&c| texts[usize::from(c)].as_str())
                    .collect();
                format!("({} {})", other, args.join(" "))
            }
        };
        texts.push(text);
    }
    texts
}

/// Both sides as patterns, with the subterms `abstract_text` picks (and every
/// symbol) made variables, one per distinct subterm.
fn abstracted(
    lhs: &Expr,
    rhs: &Expr,
    abstract_text: &dyn Fn(&str, &Math) -> bool,
) -> (PatternAst<Math>, PatternAst<Math>) {
    let mut names: HashMap<String, Var> = HashMap::new();
    let mut side = |expr: &Expr| -> PatternAst<Math> {
        let texts = subterm_texts(expr);
        let mut out: PatternAst<Math> = RecExpr::default();
        fn walk(
            expr: &Expr,
            id: Id,
            texts: &[String],
            pick: &dyn Fn(&str, &Math) -> bool,
            names: &mut HashMap<String, Var>,
            out: &mut PatternAst<Math>,
        ) -> Id {
            let node = &expr[id];
            let text = &texts[usize::from(id)];
            if matches!(node, Math::Symbol(_)) || pick(text, node) {
                let n = names.len();
                let var = *names
                    .entry(text.clone())
                    .or_insert_with(|| format!("?g{n}").parse().expect("a ?name is a variable"));
                return out.add(ENodeOrVar::Var(var));
            }
            let node = node.clone().map_children(|c| walk(expr, c, texts, pick, names, out));
            out.add(ENodeOrVar::ENode(node))
        }
        walk(
            expr,
            Id::from(expr.as_ref().len() - 1),
            &texts,
            abstract_text,
            &mut names,
            &mut out,
        );
        out
    };
    (side(lhs), side(rhs))
}

/// The generalisations of `lhs = rhs`, most general first.
fn generalisations(lhs: &Expr, rhs: &Expr) -> Vec<(PatternAst<Math>, PatternAst<Math>)> {
    let shared: BTreeSet<String> = {
        let (l, r): (BTreeSet<String>, BTreeSet<String>) = (
            subterm_texts(lhs).into_iter().collect(),
            subterm_texts(rhs).into_iter().collect(),
        );
        l.intersection(&r).cloned().collect()
    };
    let with_constants = |text: &str, _: &Math| shared.contains(text);
    let compound_only = |text: &str, node: &Math| shared.contains(text) && !node.is_leaf();
    let symbols_only = |_: &str, _: &Math| false;
    let mut out: Vec<(PatternAst<Math>, PatternAst<Math>)> = Vec::new();
    for pick in [
        &with_constants as &dyn Fn(&str, &Math) -> bool,
        &compound_only,
        &symbols_only,
    ] {
        let candidate = abstracted(lhs, rhs, pick);
        if !out.contains(&candidate) {
            out.push(candidate);
        }
    }
    out
}

/// The rule `a = b` says, oriented from the larger side (or the other way
/// when only that binds every variable), normalised; `None` when neither way
/// does or both sides are the same.
fn orient(a: &PatternAst<Math>, b: &PatternAst<Math>) -> Option<NormalForm> {
    if a == b {
        return None;
    }
    let rank = |p: &PatternAst<Math>| (pattern_size(p), p.to_string());
    let (big, small) = if rank(a) >= rank(b) { (a, b) } else { (b, a) };
    NormalForm::new(big, small, &[], &[])
        .or_else(|_| NormalForm::new(small, big, &[], &[]))
        .ok()
}

/// Generalises each equality GREEN verifies into the most general sound rule
/// that `known` and the rules kept before it do not derive (within
/// `iterations`).
pub fn generalise(
    equalities: &[(Expr, Expr)],
    known: &[RuleSpec],
    source: &str,
    iterations: usize,
) -> Result<Generalised, String> {
    if equalities.len() > MAX_EQUALITIES {
        return Err(format!(
            "at most {MAX_EQUALITIES} equalities at once, not {}",
            equalities.len()
        ));
    }
    let known: Vec<ColoredRewrite> = known.iter().map(compile_checked).collect::<Result<_, _>>()?;
    let mut kept: Vec<(Rule, ColoredRewrite)> = Vec::new();
    let mut out = Generalised {
        rules: Vec::new(),
        unverified: Vec::new(),
        derivable: 0,
        ungeneralisable: 0,
    };
    for (lhs, rhs) in equalities {
        let verdict = check_semantically(lhs, rhs);
        if !matches!(verdict, Verdict::Verified { .. }) {
            out.unverified.push(Refuted {
                lhs: lhs.to_string(),
                rhs: rhs.to_string(),
                reason: serde_json::to_string(&verdict).unwrap_or_default(),
            });
            continue;
        }
        let rewrites: Vec<&ColoredRewrite> = known.iter().chain(kept.iter().map(|(_, rw)| rw)).collect();
        let mut derivable = false;
        let mut found = None;
        for (a, b) in generalisations(lhs, rhs) {
            let Some(normal) = orient(&a, &b) else { continue };
            if derives(
                &rewrites,
                &normal,
                iterations,
                20_000,
                std::time::Instant::now() + std::time::Duration::from_secs(10),
            ) {
                derivable = true;
                break;
            }
            let key = normal.key();
            let color = normal.color();
            let rule = normal.into_rule(
                mined_name(color, &key),
                color,
                Provenance {
                    source: source.into(),
                    verified_by: VERIFIER.into(),
                    detail: format!("{lhs} = {rhs}"),
                },
            );
            if let Ok(rewrite) = compile_checked(&rule.spec) {
                found = Some((rule, rewrite));
                break;
            }
        }
        match found {
            Some(found) => kept.push(found),
            None if derivable => out.derivable += 1,
            None => out.ungeneralisable += 1,
        }
    }
    out.rules = kept.into_iter().map(|(rule, _)| rule).collect();
    Ok(out)
}

/// Equalities a replica holds: terms of an e-class (as the replica's
/// equalities merge them) against the class's smallest term, for terms of at
/// most `max_size` nodes, at most `limit` of them, smallest first.
///
/// A class's terms are spelled with other forms of its children, not only
/// the terms the replica names: a replica that holds
/// `r = (+ (+ x x) (+ y y))` and `(+ x x) = (* 2 x)` holds
/// `r = (+ (* 2 x) (* 2 y))` too, though no term of it is written so. All
/// spellings would be as many as associativity and commutativity make, so
/// each child is spelled in at most one form per operator at its head (its
/// smallest), which is the form that differs in kind, not in arrangement.
pub fn replica_equalities(replica: &ReplicaState, max_size: usize, limit: usize) -> Vec<(Expr, Expr)> {
    let materialized = Materialized::build(replica, true);
    let classes = materialized.classes();
    let class_index: HashMap<TermKey, usize> = classes
        .iter()
        .enumerate()
        .flat_map(|(i, keys)| keys.iter().map(move |&k| (k, i)))
        .collect();
    // Each class's e-nodes: a term's operator over the classes of its children.
    let nodes: Vec<Vec<(&Term, Vec<usize>)>> = classes
        .iter()
        .map(|keys| {
            keys.iter()
                .filter_map(|k| replica.term(*k))
                .filter_map(|t| {
                    let children: Option<Vec<usize>> = t.args.iter().map(|a| class_index.get(a).copied()).collect();
                    children.map(|c| (t, c))
                })
                .collect()
        })
        .collect();
    let heads = smallest_by_head(&nodes, max_size);
    let mut pairs: Vec<(Expr, Expr)> = Vec::new();
    for class_nodes in &nodes {
        let mut seen = HashSet::new();
        let mut exprs: Vec<Expr> = Vec::new();
        for (term, children) in class_nodes {
            let forms: Vec<Vec<&Expr>> = children.iter().map(|&c| heads[c].iter().flatten().collect()).collect();
            for args in combinations(&forms) {
                let size = 1 + args.iter().map(|a| a.as_ref().len()).sum::<usize>();
                if size > max_size {
                    continue;
                }
                let expr = spell(term, &args);
                if seen.insert(expr.to_string()) {
                    exprs.push(expr);
                }
            }
        }
        if exprs.len() < 2 {
            continue;
        }
        exprs.sort_by_key(|e| (e.as_ref().len(), e.to_string()));
        let least = exprs[0].clone();
        pairs.extend(exprs.into_iter().skip(1).map(|e| (e, least.clone())));
    }
    pairs.sort_by_key(|(a, b)| (a.as_ref().len() + b.as_ref().len(), a.to_string(), b.to_string()));
    pairs.truncate(limit);
    pairs
}

/// Operators a term can have at its head, as indexes.
const HEADS: usize = 8;

fn head(term: &Term) -> usize {
    match term.op {
        TermOp::Add => 0,
        TermOp::Sub => 1,
        TermOp::Mul => 2,
        TermOp::Div => 3,
        TermOp::Pow => 4,
        TermOp::Neg => 5,
        TermOp::Num(_) => 6,
        TermOp::Sym(_) => 7,
    }
}

/// For each class, its smallest term (of at most `max_size` nodes) with each
/// operator at its head, children spelled smallest: extraction, per head, to
/// a fixpoint.
fn smallest_by_head(nodes: &[Vec<(&Term, Vec<usize>)>], max_size: usize) -> Vec<[Option<Expr>; HEADS]> {
    let rank = |e: &Expr| (e.as_ref().len(), e.to_string());
    let mut best: Vec<[Option<Expr>; HEADS]> = vec![Default::default(); nodes.len()];
    // Each pass can only shrink a form; sizes are bounded, so this ends.
    for _ in 0..=max_size.max(1) * 4 {
        let mut changed = false;
        for (class, class_nodes) in nodes.iter().enumerate() {
            for (term, children) in class_nodes {
                let smallest: Option<Vec<Expr>> = children
                    .iter()
                    .map(|&c| best[c].iter().flatten().min_by_key(|e| rank(e)).cloned())
                    .collect();
                let Some(args) = smallest else { continue };
                if 1 + args.iter().map(|a| a.as_ref().len()).sum::<usize>() > max_size {
                    continue;
                }
                let expr = spell(term, &args.iter().collect::<Vec<_>>());
                let slot = &mut best[class][head(term)];
                if slot.as_ref().is_none_or(|old| rank(&expr) < rank(old)) {
                    *slot = Some(expr);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    best
}

/// Every way to pick one item of each list.
fn combinations<'a>(lists: &[Vec<&'a Expr>]) -> Vec<Vec<&'a Expr>> {
    lists.iter().fold(vec![Vec::new()], |acc, list| {
        acc.iter()
            .flat_map(|prefix| {
                list.iter().map(move |item| {
                    let mut next = prefix.clone();
                    next.push(*item);
                    next
                })
            })
            .collect()
    })
}

/// `term`'s operator over the expressions `args`, as one expression.
fn spell(term: &Term, args: &[&Expr]) -> Expr {
    let mut expr = Expr::default();
    let mut roots = Vec::with_capacity(args.len());
    for arg in args {
        let offset = expr.as_ref().len();
        for node in arg.as_ref() {
            expr.add(node.clone().map_children(|c| Id::from(usize::from(c) + offset)));
        }
        roots.push(Id::from(expr.as_ref().len() - 1));
    }
    // Children by position (two children with one key may be spelled apart).
    let position = std::cell::Cell::new(0);
    let node = term.to_node(|_| {
        let id = roots[position.get()];
        position.set(position.get() + 1);
        id
    });
    expr.add(node);
    expr
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expr(s: &str) -> Expr {
        s.parse().unwrap()
    }

    #[test]
    fn one_instance_of_distributivity_gives_the_law() {
        let found = generalise(&[(expr("(* 2 (+ p q))"), expr("(+ (* 2 p) (* 2 q))"))], &[], "test", 6).unwrap();
        assert_eq!(found.rules.len(), 1, "{found:?}");
        let rule = &found.rules[0].spec;
        assert_eq!(
            (rule.lhs.as_str(), rule.rhs.as_str()),
            ("(+ (* ?a ?b) (* ?a ?c))", "(* ?a (+ ?b ?c))")
        );
    }

    #[test]
    fn an_unsound_generalisation_falls_back_to_a_sound_one() {
        // Abstracting the shared 1 would say (- ?a ?b) = ?b.
        let found = generalise(&[(expr("(- (+ x 2) 1)"), expr("(+ x 1)"))], &[], "test", 6).unwrap();
        assert_eq!(found.rules.len(), 1, "{found:?}");
        let rule = &found.rules[0].spec;
        assert_eq!((rule.lhs.as_str(), rule.rhs.as_str()), ("(- (+ ?a 2) 1)", "(+ ?a 1)"));
    }

    #[test]
    fn false_equalities_are_not_generalised() {
        let found = generalise(&[(expr("(* x y)"), expr("(+ x y)"))], &[], "test", 6).unwrap();
        assert!(found.rules.is_empty());
        assert_eq!(found.unverified.len(), 1);
    }

    #[test]
    fn what_the_known_rules_derive_is_not_proposed_again() {
        let builtin: Vec<RuleSpec> = ramanujan_core::color::Color::ALL
            .into_iter()
            .flat_map(ramanujan_core::rules::default_rules)
            .collect();
        let found = generalise(
            &[(expr("(* 2 (+ p q))"), expr("(+ (* 2 p) (* 2 q))"))],
            &builtin,
            "test",
            6,
        )
        .unwrap();
        assert!(found.rules.is_empty());
        assert_eq!(found.derivable, 1);
    }

    /// The replica names `(+ (+ x x) (+ y y))` and `(+ x x) = (* x 2)`; the
    /// equality mined spells the root with the children's other forms.
    #[test]
    fn equalities_spell_classes_with_every_form_of_their_children() {
        use ramanujan_core::materialize::expr_terms;
        use ramanujan_core::replica::{Equality, Facts, Provenance};
        let mut facts = Facts::default();
        let mut key = |text: &str| expr_terms(&expr(text), &mut facts);
        let root = key("(* (+ x y) 2)");
        let sums = key("(+ (+ x x) (+ y y))");
        let (xx, x2) = (key("(+ x x)"), key("(* x 2)"));
        let (yy, y2) = (key("(+ y y)"), key("(* y 2)"));
        let provenance = Provenance {
            agent: "agent-0".into(),
            rule: "test".into(),
            color: ramanujan_core::Color::Red,
        };
        for (a, b) in [(root, sums), (xx, x2), (yy, y2)] {
            facts.equalities.push(Equality::new(a, b, provenance.clone()).unwrap());
        }
        let mut replica = ReplicaState::new();
        replica.record("agent-0", facts).unwrap();
        let pairs: Vec<(String, String)> = replica_equalities(&replica, 9, 100)
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert!(
            pairs.contains(&("(+ (* x 2) (* y 2))".into(), "(* (+ x y) 2)".into())),
            "{pairs:?}"
        );
        let found = generalise(&replica_equalities(&replica, 9, 100), &[], "test", 6).unwrap();
        assert!(
            found
                .rules
                .iter()
                .any(|r| r.spec.lhs == "(+ (* ?a ?b) (* ?c ?b))" || r.spec.rhs == "(* (+ ?a ?c) ?b)"),
            "{:?}",
            found.rules
        );
    }
}
