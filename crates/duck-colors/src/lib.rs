//! # duck-colors
//!
//! Not built yet (see issue #3); this crate holds the place of the component
//! in the workspace and will serve `/colors/...`.
//!
//! What it will do: Deterministic colours, identical on every host: golden-angle palettes driven by a SplitMix64 stream from a 64-bit seed (hex and OKLCH), RED/BLUE/GREEN vertex colouring of agent graphs (exact when 3-colourable, DSatur otherwise), and polarity inference.
