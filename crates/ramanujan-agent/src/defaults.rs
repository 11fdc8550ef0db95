//! The network's configuration defaults, one typed source for every host: the
//! native command line (`ramanujan up`, `agent`, `bridge`) and the Spin
//! component's variables take their defaults from here.

/// Seed of the expander topology (every host of a network must agree).
pub const TOPOLOGY_SEED: u64 = 1069;
/// Agents of the expander topology (`--topology ramanujan`).
pub const EXPANDER_AGENTS: usize = 48;
/// Degree of the expander topology.
pub const EXPANDER_DEGREE: usize = 4;
/// Milliseconds between an agent's anti-entropy rounds (the bridge ticks Spin agents at this rate).
pub const SYNC_INTERVAL_MS: u64 = 5_000;
/// Milliseconds without a heartbeat before an agent is suspect (twice that: dead).
pub const HEALTH_TIMEOUT_MS: u64 = 15_000;
/// Terms beyond which an agent takes no new submission and stops rewriting.
pub const MAX_TERMS: usize = 200_000;
/// Terms one submission's rewriting may add, per colour.
pub const GOAL_NODES: usize = 2_000;
/// Rewriting steps one submission may take, per colour.
pub const GOAL_ITERATIONS: usize = 60;
/// Milliseconds of one rewriting step of an agent kept in a key-value store
/// (one per request on Spin; agents kept in memory step for up to 2 s).
pub const HOSTED_STEP_TIME_MS: u64 = 500;
