//! # duck-colors
//!
//! Deterministic colours, the same on every host (native or wasm):
//!
//! - [`palette`]: `GET /colors/palette?n=&seed=` — `n` colours whose hues step by
//!   the golden angle from a start drawn from a [`SplitMix64`] stream seeded with
//!   `seed`, as hex and OKLCH.
//! - [`assign`]: `POST /colors/assign` — RED/BLUE/GREEN for the vertices of a graph
//!   so that neighbours differ: exact when the graph is 3-colourable, DSatur with
//!   the remaining conflicts listed otherwise.
//! - Polarity: `GET /colors/polarity` — RED positive, BLUE negative, GREEN neutral.

pub mod assign;
pub mod palette;
mod routes;
pub mod splitmix;

pub use assign::{Coloring, Method, assign};
pub use palette::{PaletteColor, palette};
pub use routes::{AssignRequest, openapi, router};
pub use splitmix::SplitMix64;
