//! # transduction-2tdx
//!
//! Pattern → rule → code, and rule books synced between sites.
//!
//! - [`mine`]: rules mined from every term of a grammar up to a size (as Ruler
//!   does: terms that agree at random points are candidates, kept when sound
//!   and not derivable from the rules known so far).
//! - [`rule`]: a rule in normal form, its content key, its colour by direction
//!   and its provenance.
//! - [`book`]: a rule book as a CRDT (an observed-remove set of rule keys,
//!   content-addressed bodies, enabled and colour registers), merged whole-checked.
//! - [`codegen`]: a rule book as a Rust module that builds it as egg rewrites,
//!   and such a module read back into rules.
//! - [`enumerate`]: the terms of a grammar with their values at random points.

pub mod book;
pub mod codegen;
pub mod enumerate;
pub mod generalise;
pub mod mine;
pub mod rule;
pub mod service;
pub mod store;
