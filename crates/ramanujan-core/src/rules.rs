//! Rule sets by colour, as data: pattern strings that users can extend.

use crate::analysis::{ColoredAnalysis, Derivation, EGraph};
use crate::color::Color;
use crate::lang::Math;
use egg::{Applier, Id, Pattern, PatternAst, Rewrite, SearchMatches, Subst, Symbol, Var};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Most rules one request may add.
pub const MAX_CUSTOM_RULES: usize = 256;
/// Longest pattern string accepted, in bytes.
pub const MAX_PATTERN_BYTES: usize = 1024;

/// A rewrite rule as users write it: `lhs => rhs`, coloured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique name, used in provenance and explanations.
    pub name: String,
    /// Pattern to match, e.g. `(+ ?a ?b)`.
    pub lhs: String,
    /// Pattern to add and union, e.g. `(+ ?b ?a)`.
    pub rhs: String,
    /// Which stream applies it.
    pub color: Color,
    /// Also add the reverse rule, named `<name>-rev`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bidirectional: bool,
    /// Variables that must be known non-zero constants for the rule to fire.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nonzero: Vec<String>,
    /// Variables that must be known integer constants for the rule to fire.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub integer: Vec<String>,
}

impl RuleSpec {
    /// The rule `lhs => rhs` named `name` in `color`, one way, without side conditions.
    pub fn new(name: &str, lhs: &str, rhs: &str, color: Color) -> Self {
        RuleSpec {
            name: name.into(),
            lhs: lhs.into(),
            rhs: rhs.into(),
            color,
            bidirectional: false,
            nonzero: Vec::new(),
            integer: Vec::new(),
        }
    }
}

/// The built-in rules of a colour: the arithmetic laws of egg's `tests/math.rs` that
/// fit the language, each in the colour it belongs to. RED expands and canonicalises
/// (commutativity, associativity, distribution, `a - b` as `a + -1·b`), BLUE factors
/// and cleans up (collecting like terms, cancellation, power laws), GREEN applies
/// identity laws. Side conditions keep every rule sound: `nonzero` variables must be
/// known non-zero constants, `integer` variables known integer constants.
pub fn default_rules(color: Color) -> Vec<RuleSpec> {
    // (name, lhs, rhs, nonzero variables, integer variables)
    type Row = (
        &'static str,
        &'static str,
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
    );
    let table: &[Row] = match color {
        Color::Red => &[
            ("comm-add", "(+ ?a ?b)", "(+ ?b ?a)", &[], &[]),
            ("comm-mul", "(* ?a ?b)", "(* ?b ?a)", &[], &[]),
            ("assoc-add", "(+ ?a (+ ?b ?c))", "(+ (+ ?a ?b) ?c)", &[], &[]),
            ("assoc-mul", "(* ?a (* ?b ?c))", "(* (* ?a ?b) ?c)", &[], &[]),
            ("distribute", "(* ?a (+ ?b ?c))", "(+ (* ?a ?b) (* ?a ?c))", &[], &[]),
            (
                "distribute-sub",
                "(* ?a (- ?b ?c))",
                "(- (* ?a ?b) (* ?a ?c))",
                &[],
                &[],
            ),
            ("expand-square", "(pow ?a 2)", "(* ?a ?a)", &[], &[]),
            ("neg-distribute", "(neg (+ ?a ?b))", "(+ (neg ?a) (neg ?b))", &[], &[]),
            ("sub-canon", "(- ?a ?b)", "(+ ?a (* -1 ?b))", &[], &[]),
            ("neg-canon", "(neg ?a)", "(* -1 ?a)", &[], &[]),
            ("div-canon", "(/ ?a ?b)", "(* ?a (pow ?b -1))", &["?b"], &[]),
            ("pow-of-pow", "(pow (pow ?a ?b) ?c)", "(pow ?a (* ?b ?c))", &[], &["?c"]),
        ],
        Color::Blue => &[
            ("factor", "(+ (* ?a ?b) (* ?a ?c))", "(* ?a (+ ?b ?c))", &[], &[]),
            ("factor-sub", "(- (* ?a ?b) (* ?a ?c))", "(* ?a (- ?b ?c))", &[], &[]),
            ("collect", "(+ ?a ?a)", "(* 2 ?a)", &[], &[]),
            ("collect-one", "(+ (* ?a ?b) ?a)", "(* ?a (+ ?b 1))", &[], &[]),
            ("square", "(* ?a ?a)", "(pow ?a 2)", &[], &[]),
            ("cancel-sub", "(- ?a ?a)", "0", &[], &[]),
            ("cancel-div", "(/ ?a ?a)", "1", &["?a"], &[]),
            ("double-neg", "(neg (neg ?a))", "?a", &[], &[]),
            ("add-neg", "(+ ?a (neg ?b))", "(- ?a ?b)", &[], &[]),
            ("canon-sub", "(+ ?a (* -1 ?b))", "(- ?a ?b)", &[], &[]),
            ("canon-neg", "(* -1 ?a)", "(neg ?a)", &[], &[]),
            (
                "pow-mul",
                "(* (pow ?a ?b) (pow ?a ?c))",
                "(pow ?a (+ ?b ?c))",
                &["?a"],
                &[],
            ),
            ("pow-recip", "(pow ?a -1)", "(/ 1 ?a)", &[], &[]),
        ],
        Color::Green => &[
            ("add-zero", "(+ ?a 0)", "?a", &[], &[]),
            ("sub-zero", "(- ?a 0)", "?a", &[], &[]),
            ("zero-sub", "(- 0 ?a)", "(neg ?a)", &[], &[]),
            ("mul-one", "(* ?a 1)", "?a", &[], &[]),
            ("mul-zero", "(* ?a 0)", "0", &[], &[]),
            ("div-one", "(/ ?a 1)", "?a", &[], &[]),
            ("pow-one", "(pow ?a 1)", "?a", &[], &[]),
            ("pow-zero", "(pow ?a 0)", "1", &[], &[]),
            ("neg-zero", "(neg 0)", "0", &[], &[]),
        ],
    };
    let vars = |vs: &[&str]| vs.iter().map(|v| v.to_string()).collect();
    table
        .iter()
        .map(|(name, lhs, rhs, nonzero, integer)| RuleSpec {
            nonzero: vars(nonzero),
            integer: vars(integer),
            ..RuleSpec::new(name, lhs, rhs, color)
        })
        .collect()
}

/// A rule that could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule `{name}`: {message}")]
pub struct RuleError {
    /// The rule's name (or its index, if unnamed).
    pub name: String,
    /// What is wrong.
    pub message: String,
}

/// Applies a pattern and records, for each union it makes, the rule and colour that made it.
#[derive(Debug)]
pub struct ColoredApplier {
    rhs: Pattern<Math>,
    color: Color,
    nonzero: Vec<Var>,
    integer: Vec<Var>,
}

impl ColoredApplier {
    fn allows(&self, egraph: &EGraph, subst: &Subst) -> bool {
        let constant = |v: &Var| egraph[subst[*v]].data.constant.as_ref();
        self.nonzero.iter().all(|v| constant(v).is_some_and(|c| !c.is_zero()))
            && self.integer.iter().all(|v| constant(v).is_some_and(|c| c.is_integer()))
    }

    fn is_conditional(&self) -> bool {
        !(self.nonzero.is_empty() && self.integer.is_empty())
    }
}

impl Applier<Math, ColoredAnalysis> for ColoredApplier {
    fn apply_matches(&self, egraph: &mut EGraph, matches: &[SearchMatches<Math>], rule_name: Symbol) -> Vec<Id> {
        let added = if !self.is_conditional() {
            self.rhs.apply_matches(egraph, matches, rule_name)
        } else {
            let allowed: Vec<SearchMatches<Math>> = matches
                .iter()
                .map(|m| SearchMatches {
                    eclass: m.eclass,
                    substs: m.substs.iter().filter(|s| self.allows(egraph, s)).cloned().collect(),
                    ast: m.ast.clone(),
                })
                .collect();
            self.rhs.apply_matches(egraph, &allowed, rule_name)
        };
        for &id in &added {
            egraph.analysis.derivations.push(Derivation {
                id,
                rule: rule_name,
                color: self.color,
            });
        }
        added
    }

    fn apply_one(
        &self,
        egraph: &mut EGraph,
        eclass: Id,
        subst: &Subst,
        searcher_ast: Option<&PatternAst<Math>>,
        rule_name: Symbol,
    ) -> Vec<Id> {
        if !self.allows(egraph, subst) {
            return Vec::new();
        }
        self.rhs.apply_one(egraph, eclass, subst, searcher_ast, rule_name)
    }

    fn get_pattern_ast(&self) -> Option<&PatternAst<Math>> {
        Some(&self.rhs.ast)
    }

    fn vars(&self) -> Vec<Var> {
        self.rhs.vars()
    }
}

/// A compiled rewrite over the coloured analysis.
pub type ColoredRewrite = Rewrite<Math, ColoredAnalysis>;

fn parse_pattern(name: &str, side: &str, text: &str) -> Result<Pattern<Math>, RuleError> {
    let err = |message: String| RuleError {
        name: name.into(),
        message,
    };
    if text.len() > MAX_PATTERN_BYTES {
        return Err(err(format!("{side} is longer than {MAX_PATTERN_BYTES} bytes")));
    }
    text.parse::<Pattern<Math>>()
        .map_err(|e| err(format!("{side} `{text}`: {e}")))
}

/// Whether compiling a rule checks its soundness first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Random evaluation of both sides ([`crate::soundness::check_rule`]).
    Soundness,
    /// The built-in rules: code, checked by `tests::defaults_compile` in CI
    /// instead of in every process (a fresh Spin instance per request would
    /// otherwise pay milliseconds for it each time).
    BuiltIn,
}

fn compile_one(name: &str, lhs: &str, rhs: &str, spec: &RuleSpec, check: Check) -> Result<ColoredRewrite, RuleError> {
    let err = |message: String| RuleError {
        name: name.into(),
        message,
    };
    let searcher = parse_pattern(name, "lhs", lhs)?;
    let applier = parse_pattern(name, "rhs", rhs)?;
    if searcher.vars().is_empty() && searcher.ast.len() == 1 {
        return Err(err("lhs must not be a single constant or symbol".into()));
    }
    let condition = |field: &str, names: &[String]| -> Result<Vec<Var>, RuleError> {
        names
            .iter()
            .map(|v| {
                let var: Var = v
                    .parse()
                    .map_err(|_| err(format!("`{v}` in {field} is not a ?variable")))?;
                if !searcher.vars().contains(&var) {
                    return Err(err(format!("{field} variable {v} does not occur in lhs")));
                }
                Ok(var)
            })
            .collect()
    };
    // Before the rule may derive anything: both sides over random substitutions.
    if check == Check::Soundness {
        crate::soundness::check_rule(spec, &searcher, &applier).map_err(|e| err(e.to_string()))?;
    }
    let applier = ColoredApplier {
        rhs: applier,
        color: spec.color,
        nonzero: condition("nonzero", &spec.nonzero)?,
        integer: condition("integer", &spec.integer)?,
    };
    Rewrite::new(name, searcher, applier).map_err(err)
}

/// Compiles rule specs into egg rewrites, checking every pattern, that no name
/// repeats or is one of `taken`, and that each rule is sound
/// ([`crate::soundness::check_rule`]: an unsound rule is refused with its
/// counterexample).
pub fn compile(specs: &[RuleSpec], taken: &HashSet<Symbol>) -> Result<Vec<ColoredRewrite>, RuleError> {
    compile_with(specs, taken, Check::Soundness)
}

fn compile_with(specs: &[RuleSpec], taken: &HashSet<Symbol>, check: Check) -> Result<Vec<ColoredRewrite>, RuleError> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let name = spec.name.trim();
        if name.is_empty() || name.len() > 64 {
            return Err(RuleError {
                name: format!("#{i}"),
                message: "name must be 1 to 64 characters".into(),
            });
        }
        let mut variants = vec![(name.to_string(), spec.lhs.as_str(), spec.rhs.as_str())];
        if spec.bidirectional {
            variants.push((format!("{name}-rev"), spec.rhs.as_str(), spec.lhs.as_str()));
        }
        for (name, lhs, rhs) in variants {
            if taken.contains(&Symbol::from(name.as_str())) || !seen.insert(name.clone()) {
                return Err(RuleError {
                    name,
                    message: "duplicate rule name".into(),
                });
            }
            out.push(compile_one(&name, lhs, rhs, spec, check)?);
        }
    }
    Ok(out)
}

/// The built-in rules of every colour, compiled once per process. They are derived
/// from code only, never from a request, so sharing them across requests is safe on
/// hosts that reuse instances. Their soundness is checked by `tests::defaults_compile`,
/// not at run time.
fn builtin() -> &'static [(Color, ColoredRewrite)] {
    static BUILTIN: std::sync::OnceLock<Vec<(Color, ColoredRewrite)>> = std::sync::OnceLock::new();
    BUILTIN.get_or_init(|| {
        let specs: Vec<RuleSpec> = Color::ALL.into_iter().flat_map(default_rules).collect();
        colored(
            &specs,
            compile_with(&specs, &Default::default(), Check::BuiltIn).expect("built-in rules compile"),
        )
    })
}

/// Pairs each compiled rewrite with its spec's colour (`compile` yields one rewrite
/// per spec, two for a bidirectional one, in order).
fn colored(specs: &[RuleSpec], rewrites: Vec<ColoredRewrite>) -> Vec<(Color, ColoredRewrite)> {
    let mut rewrites = rewrites.into_iter();
    specs
        .iter()
        .flat_map(|s| {
            rewrites
                .by_ref()
                .take(1 + usize::from(s.bidirectional))
                .map(|rw| (s.color, rw))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The rule set of a request: the built-in rules (optionally, shared and compiled
/// once per process) plus custom ones, compiled once per request.
#[derive(Debug, Clone, Default)]
pub struct RuleBook {
    builtin: &'static [(Color, ColoredRewrite)],
    custom: Vec<(Color, ColoredRewrite)>,
}

impl RuleBook {
    /// Built-in rules of every colour (when `defaults`) followed by `custom`.
    pub fn new(defaults: bool, custom: &[RuleSpec]) -> Result<Self, RuleError> {
        Self::compiled(defaults, custom, Check::Soundness)
    }

    /// [`RuleBook::new`] for custom rules already checked for soundness when
    /// they entered a rule book (`transduction-2tdx` checks every rule it
    /// takes, whole): compiled without checking them again, as the built-in
    /// rules are, which a host that compiles them per request (Spin) needs.
    /// What does not compile is still refused.
    pub fn trusted(defaults: bool, custom: &[RuleSpec]) -> Result<Self, RuleError> {
        Self::compiled(defaults, custom, Check::BuiltIn)
    }

    fn compiled(defaults: bool, custom: &[RuleSpec], check: Check) -> Result<Self, RuleError> {
        if custom.len() > MAX_CUSTOM_RULES {
            return Err(RuleError {
                name: "rules".into(),
                message: format!("at most {MAX_CUSTOM_RULES} custom rules"),
            });
        }
        let builtin = if defaults { builtin() } else { &[] };
        let taken = builtin.iter().map(|(_, rw)| rw.name).collect();
        let custom = colored(custom, compile_with(custom, &taken, check)?);
        Ok(RuleBook { builtin, custom })
    }

    /// The compiled rewrites of one colour, built-in first.
    pub fn rewrites(&self, color: Color) -> Vec<&ColoredRewrite> {
        self.builtin
            .iter()
            .chain(&self.custom)
            .filter(|(c, _)| *c == color)
            .map(|(_, rw)| rw)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in rules pass the soundness check every custom rule must pass, in
    /// both directions of the bidirectional ones (`builtin()` skips it at run time).
    #[test]
    fn defaults_compile() {
        for color in Color::ALL {
            assert!(!compile(&default_rules(color), &HashSet::new()).unwrap().is_empty());
        }
    }

    #[test]
    fn custom_rules_cannot_shadow_builtin_ones() {
        let shadow = RuleSpec::new("comm-add", "(+ ?a ?b)", "(+ ?b ?a)", Color::Red);
        let err = RuleBook::new(true, std::slice::from_ref(&shadow)).unwrap_err();
        assert!(err.to_string().contains("duplicate"), "{err}");
        let book = RuleBook::new(false, &[shadow]).unwrap();
        assert_eq!(book.rewrites(Color::Red).len(), 1);
        assert!(book.rewrites(Color::Blue).is_empty());
    }

    #[test]
    fn bad_rules_are_named() {
        let bad = |lhs: &str, rhs: &str| {
            compile(&[RuleSpec::new("r", lhs, rhs, Color::Red)], &HashSet::new())
                .unwrap_err()
                .to_string()
        };
        assert!(bad("(sin ?a)", "?a").contains("lhs"));
        assert!(bad("(+ ?a ?b)", "?c").contains("rule `r`"));
        assert!(bad("x", "y").contains("single constant"));
        let dup = RuleSpec::new("r", "(+ ?a ?b)", "(+ ?b ?a)", Color::Red);
        assert!(
            compile(&[dup.clone(), dup], &HashSet::new())
                .unwrap_err()
                .to_string()
                .contains("duplicate")
        );
    }
}
