//! The host binary links DuckDB (the interaction timeline's store): an rpath
//! to the library `ramanujan-duckdb` fetched lets `target/release/ramanujan`
//! run outside cargo too.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_RAMANUJAN_DUCKDB_LIB_DIR");
    if let Ok(dir) = std::env::var("DEP_RAMANUJAN_DUCKDB_LIB_DIR") {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{dir}");
    }
}
