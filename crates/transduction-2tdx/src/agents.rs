//! The rules a network's agents run from a book: its enabled rules, each in
//! the colour the book gives it, as the core compiles them.
//!
//! Every rule in a book passed the soundness check when it entered (added
//! here, or checked whole when a sync brought it), so agents take them as
//! they are; only what the core's rule set cannot hold is left out, and
//! named: a name the built-in rules (or an earlier rule) already use is made
//! unique with the rule's key, and past [`MAX_CUSTOM_RULES`] rules (in key
//! order) the rest wait.

use crate::rule::Rule;
use ramanujan_core::Color;
use ramanujan_core::rules::{MAX_CUSTOM_RULES, RuleSpec, compile, default_rules};
use serde::Serialize;
use std::collections::HashSet;

/// What agents run from a book, and what they do not, with why.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentRules {
    /// The rules, compiled by the core as one set (with the built-in ones
    /// when `builtin`).
    pub specs: Vec<RuleSpec>,
    /// Keys of enabled rules left out, with why.
    pub left_out: Vec<(String, String)>,
}

/// The enabled `rules` (as [`crate::book::BookState::enabled_rules`] lists
/// them) as agents run them, beside the built-in rules when `builtin`.
pub fn agent_rules(rules: &[Rule], builtin: bool) -> AgentRules {
    let mut taken: HashSet<String> = if builtin {
        Color::ALL
            .into_iter()
            .flat_map(default_rules)
            .flat_map(|spec| [format!("{}-rev", spec.name), spec.name])
            .collect()
    } else {
        HashSet::new()
    };
    let mut out = AgentRules::default();
    for rule in rules {
        if out.specs.len() == MAX_CUSTOM_RULES {
            out.left_out.push((
                rule.key.clone(),
                format!("agents run at most {MAX_CUSTOM_RULES} book rules"),
            ));
            continue;
        }
        let mut spec = rule.spec.clone();
        // Names are at most 64 characters: the base is cut to leave room.
        let unique = |name: &str| {
            let mut cut = name.len().min(55);
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            format!("{}-{}", &name[..cut], &rule.key[..rule.key.len().min(8)])
        };
        let clashes = |spec: &RuleSpec, taken: &HashSet<String>| {
            taken.contains(&spec.name) || (spec.bidirectional && taken.contains(&format!("{}-rev", spec.name)))
        };
        if clashes(&spec, &taken) {
            spec.name = unique(&spec.name);
        }
        let symbols = taken.iter().map(|n| egg::Symbol::from(n.as_str())).collect();
        match compile(std::slice::from_ref(&spec), &symbols) {
            Ok(_) => {
                if spec.bidirectional {
                    taken.insert(format!("{}-rev", spec.name));
                }
                taken.insert(spec.name.clone());
                out.specs.push(spec);
            }
            Err(e) => out.left_out.push((rule.key.clone(), e.to_string())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::{NormalForm, Provenance};
    use ramanujan_core::rules::RuleBook;

    fn rule(name: &str, lhs: &str, rhs: &str, color: Color) -> Rule {
        let spec = RuleSpec::new(name, lhs, rhs, color);
        let key = NormalForm::of_spec(&spec).unwrap().key();
        Rule {
            key,
            spec,
            provenance: Provenance {
                source: "test".into(),
                verified_by: "test".into(),
                detail: String::new(),
            },
        }
    }

    #[test]
    fn a_name_the_builtin_rules_use_is_made_unique_and_the_set_compiles() {
        let rules = vec![
            rule("comm-add", "(+ ?a ?b)", "(+ ?b ?a)", Color::Red),
            rule("double", "(* ?a 2)", "(+ ?a ?a)", Color::Red),
            rule("double", "(+ ?a ?a)", "(* ?a 2)", Color::Blue),
        ];
        let with_builtin = agent_rules(&rules, true);
        assert!(with_builtin.left_out.is_empty(), "{with_builtin:?}");
        let names: Vec<&str> = with_builtin.specs.iter().map(|s| s.name.as_str()).collect();
        assert!(names[0].starts_with("comm-add-") && names[1] == "double" && names[2].starts_with("double-"));
        let book = RuleBook::new(true, &with_builtin.specs).unwrap();
        assert_eq!(
            book.rewrites(Color::Blue).len(),
            RuleBook::new(true, &[]).unwrap().rewrites(Color::Blue).len() + 1
        );
        // Alone, the book's own names stand.
        let alone = agent_rules(&rules, false);
        assert_eq!(alone.specs[0].name, "comm-add");
        RuleBook::new(false, &alone.specs).unwrap();
    }

    #[test]
    fn a_long_name_that_clashes_is_cut_to_fit_not_left_out() {
        let long = "x".repeat(64);
        let rules = vec![
            rule(&long, "(+ ?a 7)", "(+ 7 ?a)", Color::Red),
            rule(&long, "(+ ?a 8)", "(+ 8 ?a)", Color::Red),
        ];
        let set = agent_rules(&rules, false);
        assert!(set.left_out.is_empty(), "{set:?}");
        assert!(set.specs[1].name.len() <= 64, "{}", set.specs[1].name);
        RuleBook::new(false, &set.specs).unwrap();
    }

    #[test]
    fn past_the_core_limit_the_rest_are_named_not_dropped_silently() {
        let rules: Vec<Rule> = (0..MAX_CUSTOM_RULES + 3)
            .map(|i| {
                rule(
                    &format!("r{i}"),
                    &format!("(+ ?a {i})"),
                    &format!("(+ {i} ?a)"),
                    Color::Red,
                )
            })
            .collect();
        let set = agent_rules(&rules, true);
        assert_eq!(set.specs.len(), MAX_CUSTOM_RULES);
        assert_eq!(set.left_out.len(), 3);
        assert!(set.left_out[0].1.contains("at most"));
        RuleBook::new(true, &set.specs).unwrap();
    }
}
