//! Arbitrary bytes as a broker message to an agent's inbox, through everything
//! an agent does with one, natively or hosted on Spin: decode the MessagePack
//! `Inbound`, handle each envelope (merge, flood, anti-entropy replies, GREEN
//! verification) and take submissions. Any input may be refused; none may
//! crash, hang or blow up memory.

#![no_main]

use ramanujan_agent::agent::{Agent, WorkLimits};
use ramanujan_wire::inbox::Handled;
use ramanujan_wire::wire;
use libfuzzer_sys::fuzz_target;
use ramanujan_core::Color;
use std::collections::HashSet;

fuzz_target!(|bytes: &[u8]| {
    let Ok(inbound) = wire::decode_inbound(bytes) else {
        return;
    };
    let known: HashSet<String> = (0..9).map(|i| format!("agent-{i}")).collect();
    let neighbors = vec!["agent-3".to_string(), "agent-5".to_string()];
    // GREEN, so that arriving equalities are verified too (it never rewrites here).
    let mut agent = Agent::new("agent-4".into(), Color::Green, neighbors, known, WorkLimits::default());
    // What every driver does with an inbox message.
    Handled::default().take(&mut agent, inbound);
    // What it now holds must round-trip as a snapshot (a Spin agent saves one per request).
    let snapshot = agent.into_snapshot();
    let _ = rmp_serde::to_vec_named(&snapshot);
});
