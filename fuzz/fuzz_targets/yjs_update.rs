//! Arbitrary bytes as a Yjs v1 update, through everything the service does
//! with one: decode, read as each shape, merge with a real document, diff and
//! edit. Any of these may refuse the input; none may panic, hang or blow up.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use crdt_service::merge::Merger;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

/// A real text document (client 1, "héllo 😀"), to merge the input with.
const TEXT: &str = "AQEBAAQBBHRleHQLaMOpbGxvIPCfmIAA";

fuzz_target!(|data: &[u8]| {
    // The service turns panics inside yrs into errors (`catch_unwind`);
    // libFuzzer's hook would abort before that, so print one line instead (no
    // backtrace: yrs panics on many inputs). A panic that escapes the service
    // still aborts the run: libfuzzer-sys checks for one.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("caught? {info}"))));
    let merger = Merger::new(4);
    let input = Value::String(BASE64.encode(data));
    for crdt_type in ["TextCRDT", "Map", "Array"] {
        let _ = merger.merge(crdt_type, vec![input.clone(), json!(TEXT)], None);
        let _ = merger.merge(crdt_type, vec![input.clone(), input.clone()], Some("text"));
        let _ = merger.diff(crdt_type, input.clone(), Some(json!(TEXT)));
    }
    // The input as a state vector, too.
    let _ = merger.diff("TextCRDT", json!(TEXT), Some(input.clone()));
    let ops = vec![json!({"op": "insert", "index": 0, "text": "x"})];
    let _ = merger.apply("TextCRDT", Some(input), ops, Some("2"), None);
});
