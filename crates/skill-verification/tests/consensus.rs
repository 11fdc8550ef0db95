//! The panel on a synthetic labelled set: the right consensus on held-out
//! examples, unchanged with 5 faulty verifiers, "no quorum" (never a wrong
//! label) with 6, byte-identical answers from two services, and two services'
//! references converging by merge. Verifiers run on real threads, one per job.

use ramanujan_http::offload::{Job, Offload};
use ramanujan_http::testing::block_on;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use skill_verification::consensus::{Judgement, Outcome};
use skill_verification::service::{AnalyzeRequest, NewExample, Sleep};
use skill_verification::{Fault, PanelConfig, SkillConfig, SkillService};
use std::sync::Arc;
use std::time::Duration;

const DIM: usize = 2048;
const SKILLS: usize = 8;

/// One thread per job.
struct Threads;
impl Offload for Threads {
    fn spawn(&self, job: Job) -> Result<(), String> {
        std::thread::spawn(job);
        Ok(())
    }
}

fn sleep() -> Sleep {
    Arc::new(|d| Box::pin(tokio::time::sleep(d)))
}

fn service(faults: Vec<(usize, Fault)>) -> SkillService {
    let config = SkillConfig {
        panel: PanelConfig {
            dim: DIM,
            ..PanelConfig::default()
        },
        deadline: Duration::from_millis(250),
        ..SkillConfig::default()
    };
    SkillService::new(config, Arc::new(Threads), Some(sleep()), None).with_faults(faults)
}

/// Clusters: a random centre per skill, examples at Gaussian-ish noise around it.
fn synthetic(seed: u64, per_skill: usize) -> Vec<(String, Vec<f32>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut centres_rng = ChaCha8Rng::seed_from_u64(1);
    let centres: Vec<Vec<f32>> = (0..SKILLS)
        .map(|_| (0..DIM).map(|_| centres_rng.random_range(-1.0f32..1.0)).collect())
        .collect();
    let mut out = Vec::new();
    for _ in 0..per_skill {
        for (s, centre) in centres.iter().enumerate() {
            let v = centre
                .iter()
                .map(|c| c + 0.6 * (rng.random_range(-1.0f32..1.0) + rng.random_range(-1.0f32..1.0)))
                .collect();
            out.push((format!("skill-{s}"), v));
        }
    }
    out
}

fn learn(service: &SkillService, examples: &[(String, Vec<f32>)]) {
    let examples = examples
        .iter()
        .map(|(label, v)| NewExample {
            label: label.clone(),
            embedding: Some(v.clone()),
            image: None,
            source: None,
        })
        .collect();
    block_on(service.add_examples(examples)).unwrap();
}

fn request(i: usize, v: &[f32], claimed: Option<&str>) -> AnalyzeRequest {
    AnalyzeRequest {
        image_id: format!("held-out-{i}"),
        embedding: Some(v.to_vec()),
        image: None,
        claimed_skill: claimed.map(str::to_string),
        k: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_agrees_on_held_out_examples_and_survives_five_faulty_verifiers() {
    let train = synthetic(10, 30);
    let held_out = synthetic(20, 5);
    let honest = service(vec![]);
    learn(&honest, &train);
    // Five faulty ones of every kind: random votes, a liar, a crash, a hang.
    let five = service(vec![
        (0, Fault::RandomVote),
        (3, Fault::RandomVote),
        (6, Fault::Lie),
        (9, Fault::Crash),
        (16, Fault::Hang),
    ]);
    learn(&five, &train);
    // Six silenced, or six colluding on one wrong label.
    let six_silent = service(
        (0..6)
            .map(|i| (i * 3, if i % 2 == 0 { Fault::Crash } else { Fault::Hang }))
            .collect(),
    );
    learn(&six_silent, &train);
    let six_liars = service((0..6).map(|i| (i * 2 + 1, Fault::Lie)).collect());
    learn(&six_liars, &train);

    let (mut right, mut unanimous) = (0, 0);
    for (i, (label, v)) in held_out.iter().enumerate() {
        let (a, _) = honest.analyze(request(i, v, Some(label))).await.unwrap();
        assert!(
            a.decision.label.is_none() || a.decision.label.as_ref() == Some(label),
            "a wrong consensus on {i}: {a:?}"
        );
        if a.decision.label.as_ref() == Some(label) {
            right += 1;
            assert_eq!(a.verified, Some(true));
        }
        if a.decision.votes_for_leading == 17 && unanimous < 20 {
            unanimous += 1;
            let (f, _) = five.analyze(request(i, v, None)).await.unwrap();
            assert_eq!(f.decision.label, a.decision.label, "5 faulty changed {i}: {f:?}");
            assert!(f.decision.judgements.contains(&Judgement::Crashed));
            assert!(f.decision.judgements.contains(&Judgement::TimedOut));
            let (s, _) = six_silent.analyze(request(i, v, None)).await.unwrap();
            assert_eq!(s.decision.outcome, Outcome::NoQuorum, "6 silenced: {s:?}");
        }
        let (l, _) = six_liars.analyze(request(i, v, None)).await.unwrap();
        assert!(
            l.decision.label.is_none() || l.decision.label.as_ref() == Some(label),
            "6 liars forged {:?} on {i}",
            l.decision.label
        );
    }
    let n = held_out.len();
    assert!(right * 100 >= n * 95, "consensus right on {right} of {n}");
    assert_eq!(unanimous, 20, "the faulty panels were tried on 20 unanimous cases");
    let stats = honest.stats();
    assert_eq!(stats.analyses, n as u64);
    assert!(stats.agent_consensus_success_rate >= 0.95);
    assert!(stats.score_variance_mean < 0.1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_services_that_learn_differently_converge_and_answer_byte_for_byte_alike() {
    let train = synthetic(30, 12);
    let (first, second) = train.split_at(train.len() / 2);
    let a = service(vec![]);
    let b = service(vec![]);
    learn(&a, first);
    learn(&b, second);
    learn(&b, &first[..8]); // some examples learned on both
    a.merge(b.state()).unwrap();
    b.merge(a.state()).unwrap();
    assert_eq!(a.skills(), b.skills());
    assert_eq!(a.len(), train.len());
    // A removal on one side reaches the other.
    let gone = a.remove_skill("skill-3").unwrap().unwrap();
    assert_eq!(gone.removed.len(), 12);
    b.merge(a.state()).unwrap();
    assert_eq!(a.skills(), b.skills());
    assert!(!b.skills().iter().any(|(l, _)| l == "skill-3"));
    for (i, (_, v)) in synthetic(40, 2).iter().enumerate() {
        let (x, _) = a.analyze(request(i, v, None)).await.unwrap();
        let (y, _) = b.analyze(request(i, v, None)).await.unwrap();
        assert_eq!(serde_json::to_vec(&x).unwrap(), serde_json::to_vec(&y).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_by_name_and_nothing_is_half_stored() {
    let s = service(vec![]);
    let v = vec![0.5f32; DIM];
    let err = s.analyze(request(0, &v, None)).await.unwrap_err();
    assert_eq!(err.status, 409, "no references yet: {err}");
    learn(&s, &synthetic(50, 2));
    let held = s.len();
    let mut bad = vec![NewExample {
        label: "fine".into(),
        embedding: Some(v.clone()),
        image: None,
        source: None,
    }];
    bad.push(NewExample {
        label: "fine".into(),
        embedding: Some(vec![1.0; 3]),
        image: None,
        source: None,
    });
    let err = s.add_examples(bad).await.unwrap_err();
    assert!(
        err.message.contains("examples[1]") && err.message.contains("dimension 2048"),
        "{err}"
    );
    assert_eq!(s.len(), held, "the good example before the bad one was not stored");
    let mut inf = v.clone();
    inf[7] = f32::INFINITY;
    let err = s.analyze(request(0, &inf, None)).await.unwrap_err();
    assert!(err.message.contains("index 7"), "{err}");
    let err = s.analyze(request(0, &v, Some("juggling"))).await.unwrap_err();
    assert_eq!(err.status, 404);
    assert!(err.message.contains("juggling"), "{err}");
    let mut req = request(0, &v, None);
    req.k = Some(0);
    assert_eq!(s.analyze(req).await.unwrap_err().status, 400);
}
