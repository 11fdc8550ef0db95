//! # interaction-timeline
//!
//! Not built yet (a later issue); this crate holds the place of the component
//! in the workspace and will serve `/timeline/...`.
//!
//! What it will do: The interaction timeline: every message, merge and verification recorded in DuckDB, queryable by agent, colour and time.
