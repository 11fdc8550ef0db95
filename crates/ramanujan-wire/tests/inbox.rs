//! What every driver does with an inbox message (`inbox::Handled`): the NATS
//! agent, the Spin component and the fuzz target all go through it.

use ramanujan_agent::agent::{Agent, WorkLimits};
use ramanujan_agent::protocol::{Body, Envelope};
use ramanujan_core::Color;
use ramanujan_wire::inbox::Handled;
use ramanujan_wire::wire::{self, Inbound};
use std::collections::HashSet;

fn agent(limits: WorkLimits) -> Agent {
    let known: HashSet<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
    Agent::new("a".into(), Color::Green, vec!["b".into()], known, limits)
}

fn submit(expression: &str) -> Inbound {
    Inbound::Submit {
        request: "r1".into(),
        expression: expression.into(),
    }
}

fn small_envelope(seq: u64) -> Envelope {
    Envelope {
        from: "b".into(),
        to: "a".into(),
        seq,
        body: Body::SyncRequest {
            clock: Default::default(),
            digest: String::new(),
        },
    }
}

#[test]
fn a_batch_larger_than_any_sender_packs_is_refused_whole() {
    let at_most = (0..wire::MAX_ENVELOPES_PER_MESSAGE as u64)
        .map(small_envelope)
        .collect();
    let bytes = wire::encode_inbound(&Inbound::Envelopes(at_most)).unwrap();
    let Ok(inbound) = wire::decode_inbound(&bytes) else {
        panic!("a full batch is taken");
    };
    let mut handled = Handled::default();
    handled.take(&mut agent(WorkLimits::default()), inbound);
    assert_eq!(handled.messages, wire::MAX_ENVELOPES_PER_MESSAGE);

    let too_many = (0..=wire::MAX_ENVELOPES_PER_MESSAGE as u64)
        .map(small_envelope)
        .collect();
    let bytes = wire::encode_inbound(&Inbound::Envelopes(too_many)).unwrap();
    let refused = wire::decode_inbound(&bytes).unwrap_err();
    assert!(refused.contains("at most 1024"), "{refused}");
}

#[test]
fn submissions_are_taken_refused_for_their_content_or_refused_for_now() {
    let mut handled = Handled::default();
    let mut open = agent(WorkLimits::default());
    handled.take(&mut open, submit("(+ x 1)"));
    handled.take(&mut open, submit("(+ x"));
    let mut full = agent(WorkLimits {
        max_terms: 0,
        ..WorkLimits::default()
    });
    handled.take(&mut full, submit("(+ x 1)"));

    assert_eq!(handled.messages, 3);
    let [taken, bad, later] = &handled.acks[..] else {
        panic!("one acknowledgement each: {:?}", handled.acks);
    };
    assert!(taken.root.is_some() && taken.error.is_none());
    assert!(!handled.out.is_empty(), "the taken submission is flooded");
    assert!(bad.root.is_none() && bad.error.is_some() && !bad.unavailable);
    assert!(later.root.is_none() && later.unavailable, "{later:?}");
    assert_eq!(full.replica().term_count(), 0, "a full agent takes nothing");
}
