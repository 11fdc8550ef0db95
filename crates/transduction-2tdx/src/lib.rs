//! # transduction-2tdx
//!
//! Not built yet (a later issue); this crate holds the place of the component
//! in the workspace and will serve `/sync/... and /2tdx/...`.
//!
//! What it will do: Rule transduction: translating rule sets and replica deltas between peers' vocabularies (2TDX), and the sync endpoints that carry them.
