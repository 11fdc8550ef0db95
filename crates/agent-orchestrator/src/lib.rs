//! # agent-orchestrator
//!
//! Not built yet (see issue #3); this crate holds the place of the component
//! in the workspace and will serve `/agents/... and /agent/{id}/...`.
//!
//! What it will do: The agent network: topologies (the Sierpiński graph S(2,3), Ramanujan expanders), agent lifecycle (start, heartbeat, suspect, dead, restart), anti-entropy sync rounds and message routing, in process or over NATS JetStream.
