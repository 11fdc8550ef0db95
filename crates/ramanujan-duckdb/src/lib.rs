//! DuckDB for the components that keep their data in it (the interaction
//! timeline, skill verification): the [`duckdb`] crate, re-exported, linked
//! against DuckDB's official prebuilt `libduckdb.so` (fetched from the npm
//! registry and checksum-verified by this crate's build script), or built from
//! source with the `bundled-duckdb` feature.
//!
//! `cargo run` and `cargo test` find the library by themselves. A program meant
//! to run outside cargo adds an rpath to it in its build script, from
//! `DEP_RAMANUJAN_DUCKDB_LIB_DIR`.

pub use duckdb;

/// The DuckDB version linked, as `SELECT version()` answers it.
pub const DUCKDB_VERSION: &str = "v1.5.6";
