//! Holds answers to the contract: each JSON answer a test gets is checked
//! against the schema that `/openapi.json` declares for its route, method
//! and status (a status it does not declare fails too), so every test that
//! uses these helpers also checks the API's description against what the
//! host really sends, for the answers schemathesis cannot reach (a
//! submission that exists, an agent's state, a settled network).

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(ramanujan::openapi::document_json)
}

/// The validator of `schema` (with the document's components), compiled
/// once per route, method and status.
fn validator(which: &str, schema: &Value) -> Arc<jsonschema::Validator> {
    static COMPILED: OnceLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = OnceLock::new();
    let mut compiled = COMPILED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    compiled
        .entry(which.to_string())
        .or_insert_with(|| {
            let wrapped = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "components": document()["components"],
                "allOf": [schema],
            });
            Arc::new(
                jsonschema::validator_for(&wrapped)
                    .unwrap_or_else(|e| panic!("{which}: the schema does not compile: {e}")),
            )
        })
        .clone()
}

/// Whether the concrete `path` is an instance of the `template`.
fn instance_of(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}') && !p.is_empty()))
}

/// Panics unless `body`, answered with `status` to `method` on `path`, is
/// as the API's description says.
pub fn conforms(method: &str, path: &str, status: u16, body: &Value) {
    let doc = document();
    let path = path.split('?').next().unwrap_or(path);
    let Some((template, item)) = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(template, _)| instance_of(template, path))
        .min_by_key(|(template, _)| template.matches('{').count())
    else {
        // No such route: the host's fallback, a 404 saying so.
        assert!(
            status == 404 && body["error"].is_string(),
            "{method} {path}: no route of the description, answered {status}: {body}"
        );
        return;
    };
    let operation = &item[method.to_lowercase()];
    assert!(operation.is_object(), "{method} {template}: not described");
    let response = &operation["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {template} answered {status}, which its description does not declare: {body}"
    );
    let Some(schema) = response["content"]
        .as_object()
        .and_then(|c| c.iter().find(|(t, _)| t.starts_with("application/json")))
        .map(|(_, c)| &c["schema"])
    else {
        return;
    };
    let validator = validator(&format!("{method} {template} {status}"), schema);
    let problems: Vec<String> = validator
        .iter_errors(body)
        .take(5)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        problems.is_empty(),
        "{method} {template} answered {status} with a body its description does not allow: {problems:?}\n{body}"
    );
}
