//! # ramanujan-core
//!
//! The replicated, coloured e-graph every Ramanujan component stands on.
//!
//! - [`lang`] and [`parse`]: the expression language and a reader whose errors say where and why.
//! - [`rules`]: RED, BLUE and GREEN rule sets as data.
//! - [`analysis`]: constant folding, colours per e-class, and the derivation log.
//! - [`replica`], [`term`], [`clock`]: the content-addressed CRDT state.
//! - [`materialize`]: from facts to an e-graph and back.
//! - [`extract`]: deterministic canonical forms.
//! - [`verify`] and [`modular`]: GREEN verification: random points modulo random primes, exact counterexamples.
//! - [`soundness`]: user rules checked before use.
//! - [`saturate`]: the colour fixpoint, verification and extraction.
//! - [`stream`]: one colour's rules applied to an expression or a replica, as a delta.
//!
//! Nothing here touches sockets, files or an async runtime, so it builds for
//! `wasm32-wasip2` as well as natively.

pub mod analysis;
pub mod clock;
/// The rule colours (the `ramanujan-color` crate).
pub use ramanujan_color as color;
pub mod congruence;
pub mod constant;
pub mod extract;
pub mod lang;
pub mod limits;
pub mod materialize;
pub mod modular;
mod nearest;
pub mod parse;
pub mod replica;
pub mod rules;
pub mod saturate;
pub mod soundness;
pub mod stop;
pub mod stream;
pub mod term;
pub mod verify;

pub use color::{Color, Polarity, merge_colors};
/// An e-class id, as egg names classes (local to one e-graph: never shipped).
pub use egg::Id as ClassId;
pub use replica::ReplicaState;
