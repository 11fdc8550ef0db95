//! Anti-entropy between services (`sync::pull`) over an in-process peer that
//! sends everything through JSON as the HTTP routes do: hosts that learn
//! different examples converge, only missing examples travel, removals
//! propagate, a peer that changes between the two steps or sends a forged
//! example changes nothing.

use futures_util::future::BoxFuture;
use ramanujan_http::Inline;
use ramanujan_http::testing::block_on;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use skill_verification::service::{AnalyzeRequest, NewExample};
use skill_verification::sync::{FetchRequest, Fetched, Membership, Peer, Pulled, pull};
use skill_verification::{PanelConfig, SkillConfig, SkillService};
use std::sync::Arc;

const DIM: usize = 16;

fn service(host: &str) -> Arc<SkillService> {
    let config = SkillConfig {
        panel: PanelConfig {
            dim: DIM,
            ..PanelConfig::default()
        },
        host: host.into(),
        ..SkillConfig::default()
    };
    Arc::new(SkillService::new(config, Arc::new(Inline), None, None))
}

/// Examples around one centre per label.
fn examples(seed: u64, labels: &[&str], per_label: usize) -> Vec<NewExample> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for (l, label) in labels.iter().enumerate() {
        for _ in 0..per_label {
            let mut v: Vec<f32> = (0..DIM).map(|_| 0.2 * rng.random_range(-1.0f32..1.0)).collect();
            v[l] += 1.0;
            out.push(NewExample {
                label: label.to_string(),
                embedding: Some(v),
                image: None,
                source: None,
            });
        }
    }
    out
}

/// A peer in this process, everything through JSON; `drop_from_fetch` keys
/// are left out of fetches (as if removed between the two steps) and
/// `forge` rewrites each fetched example's label.
struct Local {
    service: Arc<SkillService>,
    drop_from_fetch: Vec<String>,
    forge: bool,
}

fn local(service: &Arc<SkillService>) -> Local {
    Local {
        service: service.clone(),
        drop_from_fetch: Vec::new(),
        forge: false,
    }
}

fn through_json<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    serde_json::from_slice(&serde_json::to_vec(value).unwrap()).unwrap()
}

impl Peer for Local {
    fn membership(&self) -> BoxFuture<'_, Result<Membership, String>> {
        Box::pin(async move { Ok(through_json(&self.service.membership())) })
    }
    fn fetch<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<Fetched, String>> {
        Box::pin(async move {
            let request: FetchRequest = through_json(&FetchRequest { keys: keys.to_vec() });
            let mut examples = self.service.examples_for(&request.keys).map_err(|e| e.message)?;
            examples.retain(|k, _| !self.drop_from_fetch.contains(k));
            if self.forge {
                for example in examples.values_mut() {
                    example.label = "forged".into();
                }
            }
            Ok(through_json(&Fetched { examples }))
        })
    }
}

fn keys(s: &SkillService) -> Vec<String> {
    s.state().examples.keys().cloned().collect()
}

#[test]
fn hosts_that_pull_from_each_other_converge_moving_only_what_is_missing() {
    let (a, b) = (service("a"), service("b"));
    let shared = examples(3, &["cat", "dog"], 4);
    block_on(a.add_examples(examples(1, &["cat", "dog", "owl"], 30))).unwrap();
    block_on(b.add_examples(examples(2, &["cat", "dog", "eel"], 30))).unwrap();
    block_on(a.add_examples(shared.clone())).unwrap();
    block_on(b.add_examples(shared)).unwrap();
    // 90 + 8 on each side, 8 of them the same content: 188 in all. The 8
    // shared ones travel too, for the other host's provenance.
    let first = block_on(pull(&a, &local(&b))).unwrap();
    assert_eq!(
        first,
        Pulled::Merged {
            fetched: 98,
            added: 90,
            removed: 0
        }
    );
    let second = block_on(pull(&b, &local(&a))).unwrap();
    assert_eq!(
        second,
        Pulled::Merged {
            fetched: 98,
            added: 90,
            removed: 0
        }
    );
    assert_eq!(a.len(), 188);
    assert_eq!(keys(&a), keys(&b));
    assert_eq!(a.digest(), b.digest());
    assert_eq!(block_on(pull(&a, &local(&b))).unwrap(), Pulled::Same);
    // The shared examples carry both hosts' provenance on both.
    let provenance: Vec<usize> = a.skill("cat").iter().map(|(_, p)| p.len()).collect();
    assert_eq!(provenance.iter().filter(|&&n| n == 2).count(), 4, "{provenance:?}");
    // Three new examples: a pull fetches those three, nothing else.
    block_on(a.add_examples(examples(4, &["owl"], 3))).unwrap();
    assert_eq!(
        block_on(pull(&b, &local(&a))).unwrap(),
        Pulled::Merged {
            fetched: 3,
            added: 3,
            removed: 0
        }
    );
    // A removal travels, and nothing is fetched for it.
    let gone = a.remove_skill("eel").unwrap().unwrap().removed.len();
    assert_eq!(gone, 30);
    assert_eq!(
        block_on(pull(&b, &local(&a))).unwrap(),
        Pulled::Merged {
            fetched: 0,
            added: 0,
            removed: 30
        }
    );
    assert_eq!(keys(&a), keys(&b));
    assert_eq!(block_on(pull(&a, &local(&b))).unwrap(), Pulled::Same);
    // Converged hosts answer alike, byte for byte.
    for (i, e) in examples(5, &["cat", "dog", "owl"], 3).into_iter().enumerate() {
        let request = AnalyzeRequest {
            image_id: format!("probe-{i}"),
            embedding: e.embedding,
            image: None,
            claimed_skill: Some(e.label),
            k: None,
        };
        let (x, _) = block_on(a.analyze(request.clone())).unwrap();
        let (y, _) = block_on(b.analyze(request)).unwrap();
        assert_eq!(serde_json::to_vec(&x).unwrap(), serde_json::to_vec(&y).unwrap());
    }
}

#[test]
fn a_peer_that_changed_between_the_steps_or_forges_an_example_changes_nothing() {
    let (a, b) = (service("a"), service("b"));
    block_on(b.add_examples(examples(1, &["cat", "dog"], 10))).unwrap();
    let before = a.digest();
    let mut racing = local(&b);
    racing.drop_from_fetch = keys(&b)[..2].to_vec();
    let refused = block_on(pull(&a, &racing)).unwrap_err();
    assert!(refused.contains("2 members come without their examples"), "{refused}");
    assert_eq!((a.len(), a.digest()), (0, before.clone()), "nothing half-merged");
    let mut forger = local(&b);
    forger.forge = true;
    let refused = block_on(pull(&a, &forger)).unwrap_err();
    assert!(refused.contains("not the hash of its content"), "{refused}");
    assert_eq!((a.len(), a.digest()), (0, before));
    // The next honest pull converges.
    block_on(pull(&a, &local(&b))).unwrap();
    assert_eq!(keys(&a), keys(&b));
}

#[test]
fn a_fetch_is_bounded() {
    let a = service("a");
    let too_many: Vec<String> = (0..=skill_verification::sync::MAX_FETCH)
        .map(|i| format!("{i:032x}"))
        .collect();
    let refused = a.examples_for(&too_many).unwrap_err();
    assert_eq!(refused.status, 400);
    assert!(refused.message.contains("at most"), "{}", refused.message);
}
