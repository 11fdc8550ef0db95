//! The consensus of the verifiers: a label wins when a quorum votes for it.
//!
//! With `n` verifiers the panel tolerates `f = ⌊(n − 1) / 3⌋` faulty ones
//! (5 of 17), whatever they do (vote at random, vote together for a wrong
//! label, crash or time out), and a label needs `q = n − f` votes (12 of 17):
//! - with at most `f` faulty and the others agreeing, the others alone reach `q`;
//! - faulty verifiers alone (at most `f < q`) never carry a label, and a wrong
//!   label needs at least `q − f = n − 2f ≥ f + 1` honest verifiers mistaken;
//! - `q > n / 2`, so at most one label reaches it;
//! - with `f + 1` crashed or silent (6 of 17), only `n − f − 1 < q` remain: the
//!   answer is "no quorum", never a label the survivors could not carry alone.

use crate::panel::Vote;
use serde::Serialize;
use std::collections::BTreeMap;

/// What became of one verifier on one request.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Judgement {
    /// It voted.
    Voted {
        /// Its vote.
        #[serde(flatten)]
        vote: Vote,
    },
    /// It had no references in its view to judge from.
    Abstained,
    /// It failed (panicked) before answering.
    Crashed,
    /// It did not answer before the deadline.
    TimedOut,
}

/// The quorum rule for a panel of `verifiers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Quorum {
    /// Verifiers on the panel.
    pub verifiers: usize,
    /// Faulty verifiers it tolerates: `⌊(n − 1) / 3⌋`.
    pub tolerates: usize,
    /// Votes a label needs: `n − tolerates`.
    pub needed: usize,
}

impl Quorum {
    /// The rule for `n` verifiers.
    pub fn of(n: usize) -> Quorum {
        let tolerates = n.saturating_sub(1) / 3;
        Quorum {
            verifiers: n,
            tolerates,
            needed: n - tolerates,
        }
    }
}

/// Whether the panel agreed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A label reached the quorum.
    Consensus,
    /// None did: the answer is unknown, not any label.
    NoQuorum,
}

/// The panel's decision on one query.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Decision {
    /// `consensus` or `no_quorum`.
    pub outcome: Outcome,
    /// The label that reached the quorum.
    pub label: Option<String>,
    /// The label with most votes (ties: first by name), quorum or not.
    pub leading: Option<String>,
    /// Votes for `leading`.
    pub votes_for_leading: usize,
    /// `votes_for_leading / n`: the share of the whole panel behind it.
    pub agreement: f64,
    /// The rule applied.
    pub quorum: Quorum,
    /// Mean of the scores of the verifiers that voted (0 if none did).
    pub score_mean: f64,
    /// Their population variance.
    pub score_variance: f64,
    /// Verifiers that did not vote for `label` (all of them without a
    /// consensus that voted otherwise or not at all), by index.
    pub dissenters: Vec<usize>,
    /// Each verifier's judgement, by index.
    pub judgements: Vec<Judgement>,
}

/// Decides from every verifier's judgement, in verifier order.
pub fn decide(judgements: Vec<Judgement>) -> Decision {
    let quorum = Quorum::of(judgements.len());
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    let mut scores = Vec::new();
    for j in &judgements {
        if let Judgement::Voted { vote } = j {
            *tally.entry(vote.label.as_str()).or_insert(0) += 1;
            scores.push(f64::from(vote.score));
        }
    }
    let leading = tally.iter().fold(None::<(&str, usize)>, |acc, (&l, &n)| match acc {
        Some((_, bn)) if bn >= n => acc,
        _ => Some((l, n)),
    });
    let (leading, votes_for_leading) = match leading {
        Some((l, n)) => (Some(l.to_string()), n),
        None => (None, 0),
    };
    let label = leading.clone().filter(|_| votes_for_leading >= quorum.needed);
    let n = scores.len() as f64;
    let score_mean = if scores.is_empty() {
        0.0
    } else {
        scores.iter().sum::<f64>() / n
    };
    let score_variance = if scores.is_empty() {
        0.0
    } else {
        scores.iter().map(|s| (s - score_mean) * (s - score_mean)).sum::<f64>() / n
    };
    let dissenters = judgements
        .iter()
        .enumerate()
        .filter(|(_, j)| match (j, &label) {
            (Judgement::Voted { vote }, Some(label)) => vote.label != *label,
            _ => label.is_some() || !matches!(j, Judgement::Voted { .. }),
        })
        .map(|(i, _)| i)
        .collect();
    Decision {
        outcome: if label.is_some() {
            Outcome::Consensus
        } else {
            Outcome::NoQuorum
        },
        label,
        leading,
        votes_for_leading,
        agreement: if judgements.is_empty() {
            0.0
        } else {
            votes_for_leading as f64 / judgements.len() as f64
        },
        quorum,
        score_mean,
        score_variance,
        dissenters,
        judgements,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn voted(label: &str, score: f32) -> Judgement {
        Judgement::Voted {
            vote: Vote {
                label: label.into(),
                score,
            },
        }
    }

    #[test]
    fn seventeen_tolerate_five_and_need_twelve() {
        assert_eq!(
            Quorum::of(17),
            Quorum {
                verifiers: 17,
                tolerates: 5,
                needed: 12
            }
        );
        assert_eq!(Quorum::of(4).needed, 3);
        assert_eq!(Quorum::of(1).needed, 1);
    }

    #[test]
    fn twelve_agreeing_carry_a_label_and_eleven_do_not() {
        let mut js: Vec<Judgement> = (0..12).map(|_| voted("cat", 0.9)).collect();
        js.extend((0..5).map(|_| voted("dog", 0.6)));
        let d = decide(js.clone());
        assert_eq!(d.outcome, Outcome::Consensus);
        assert_eq!(d.label.as_deref(), Some("cat"));
        assert_eq!(d.dissenters, vec![12, 13, 14, 15, 16]);
        assert!((d.agreement - 12.0 / 17.0).abs() < 1e-12);
        js[0] = Judgement::Crashed;
        let d = decide(js);
        assert_eq!(d.outcome, Outcome::NoQuorum);
        assert_eq!(d.label, None);
        assert_eq!(d.leading.as_deref(), Some("cat"));
        assert_eq!(d.dissenters, vec![0], "without a consensus: those that did not vote");
    }

    #[test]
    fn mean_and_variance_are_over_the_votes_cast() {
        let d = decide(vec![voted("a", 1.0), voted("a", 0.5), Judgement::TimedOut]);
        assert!((d.score_mean - 0.75).abs() < 1e-12);
        assert!((d.score_variance - 0.0625).abs() < 1e-12);
    }

    proptest! {
        /// Whatever up to 5 of 17 do, 12 honest verifiers that agree decide;
        /// and 6 faulty ones can stop a consensus but never make a wrong one.
        #[test]
        fn faulty_verifiers_cannot_change_or_forge_the_outcome(
            faulty in proptest::sample::subsequence((0..17usize).collect::<Vec<_>>(), 0..=6),
            behaviour in proptest::collection::vec(0..4u8, 17),
        ) {
            let js: Vec<Judgement> = (0..17)
                .map(|i| {
                    if !faulty.contains(&i) {
                        return voted("right", 0.8);
                    }
                    match behaviour[i] {
                        0 => voted("wrong", 1.0),
                        1 => voted(&format!("random-{i}"), 0.3),
                        2 => Judgement::Crashed,
                        _ => Judgement::TimedOut,
                    }
                })
                .collect();
            let d = decide(js);
            if faulty.len() <= 5 {
                prop_assert_eq!(d.label.as_deref(), Some("right"));
            } else {
                prop_assert_eq!(d.outcome, Outcome::NoQuorum);
            }
            prop_assert_ne!(d.label.as_deref(), Some("wrong"));
        }
    }
}
