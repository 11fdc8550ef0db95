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
use ramanujan_core::materialize::{Materialized, term_expr};
use ramanujan_core::replica::ReplicaState;
use ramanujan_core::rules::{ColoredRewrite, RuleSpec};
use ramanujan_core::verify::{Verdict, check_semantically};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

/// Most equalities one request may generalise.
pub const MAX_EQUALITIES: usize = 2_000;

/// What generalising a list of equalities found.
#[derive(Debug, Clone, Serialize)]
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
            if derives(&rewrites, &normal, iterations, 20_000) {
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

/// Equalities a replica holds: each term of an e-class (as the replica's
/// equalities merge them) against the class's smallest term, for terms of at
/// most `max_size` nodes, at most `limit` of them, smallest first.
pub fn replica_equalities(replica: &ReplicaState, max_size: usize, limit: usize) -> Vec<(Expr, Expr)> {
    let materialized = Materialized::build(replica, true);
    let mut pairs: Vec<(Expr, Expr)> = Vec::new();
    for class in materialized.classes() {
        let mut exprs: Vec<Expr> = class
            .iter()
            .filter_map(|&key| term_expr(replica, key))
            .filter(|e| e.as_ref().len() <= max_size)
            .collect();
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
}
