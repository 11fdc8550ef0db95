//! Build script of every Spin component: a release build links with
//! `wasm-ld --compress-relocations`. wasm-ld otherwise writes each call's and
//! each address's target as a 5-byte LEB128 number, padded so a relocation
//! could patch it in place; compressed, each takes the bytes it needs. The
//! code is the same instruction for instruction, 7% smaller (#16).
//! `--strip-debug` goes with it (wasm-ld refuses to compress around debug
//! information) and keeps the function names, for a size analysis of a build
//! with `strip = false`.

fn main() {
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let wasm = std::env::var("TARGET").is_ok_and(|t| t.starts_with("wasm32"));
    if release && wasm {
        println!("cargo::rustc-link-arg-cdylib=--compress-relocations");
        println!("cargo::rustc-link-arg-cdylib=--strip-debug");
    }
}
