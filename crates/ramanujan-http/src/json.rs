//! A JSON body extractor whose rejections are `{"error": ...}` answers.

use crate::error::ApiError;
use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::error::Category;

/// Like [`axum::Json`], but a malformed, mistyped, non-UTF-8 or oversized body is
/// answered with a JSON error (400, 413, 415 or 422) that says what is wrong.
///
/// Decoded with `serde_json` directly: axum's extractor wraps every body type in
/// `serde_path_to_error`, which doubles the decoding code of each type (tens of
/// kilobytes in every Spin component) for the field path in its message;
/// `serde_json`'s own message names the field's line and column instead.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                message: "expected a request body with `Content-Type: application/json`".into(),
            });
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| ApiError {
            status: rejection.status(),
            message: rejection.body_text(),
        })?;
        decode_json(&bytes).map(JsonBody)
    }
}

/// Decodes a JSON body: a syntax error (or trailing data) is a 400, a well-formed
/// body of the wrong shape a 422 whose message starts with the path of the
/// offending field (`limits.nodes: invalid type ...`), as axum's own extractor answers.
///
/// JSON does not tell `2` from `2.0`: where a whole number is expected, a
/// number with no fraction is taken as one. The body is read again only when
/// the first reading failed on a float (so well-typed bodies, and bodies
/// wrong in another way, pay nothing), and never when it has a key twice.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Ok(value),
        Err(error) if failed_on_a_float(&error) => serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|mut value| whole_floats_as_integers(&mut value).then_some(value))
            .and_then(|value| serde_json::to_vec(&value).ok())
            // The same decoder again, on the body with its whole numbers as integers.
            .and_then(|rewritten| serde_json::from_slice(&rewritten).ok())
            .filter(|_| !has_a_key_twice(bytes))
            .ok_or_else(|| json_error(bytes, error)),
        Err(error) => Err(json_error(bytes, error)),
    }
}

/// Whether serde refused a float where it wanted something else (an integer,
/// or one variant of an untagged enum that holds one).
fn failed_on_a_float(error: &serde_json::Error) -> bool {
    if error.classify() != Category::Data {
        return false;
    }
    let message = error.to_string();
    message.contains("floating point") || message.contains("did not match any variant")
}

/// Whether some object in `bytes` has a key twice (serde refuses that; a
/// `Value` would keep the last silently).
fn has_a_key_twice(bytes: &[u8]) -> bool {
    struct Unique;
    impl<'de> serde::Deserialize<'de> for Unique {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Unique;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("JSON")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
                    let mut keys = std::collections::HashSet::new();
                    while let Some(key) = map.next_key::<String>()? {
                        if !keys.insert(key) {
                            return Err(serde::de::Error::custom("a key twice"));
                        }
                        map.next_value::<Unique>()?;
                    }
                    Ok(Unique)
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
                    while seq.next_element::<Unique>()?.is_some() {}
                    Ok(Unique)
                }
                fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
                    Ok(Unique)
                }
                fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
                    Ok(Unique)
                }
                fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
                    Ok(Unique)
                }
                fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
                    Ok(Unique)
                }
                fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
                    Ok(Unique)
                }
                fn visit_unit<E>(self) -> Result<Unique, E> {
                    Ok(Unique)
                }
            }
            d.deserialize_any(Visit)
        }
    }
    serde_json::from_slice::<Unique>(bytes).is_err()
}

/// Writes every number in `value` that is a whole number below 2^53 in
/// magnitude as an integer; whether there was one. Only there is every whole
/// number a float exactly: an integer too large for 64 bits (which serde_json
/// reads as a rounded float) stays a float, and is refused as before.
fn whole_floats_as_integers(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            let whole = f.fract() == 0.0 && f.abs() < EXACT;
            if whole {
                *value = Value::from(f as i64);
            }
            whole
        }
        Value::Array(items) => items.iter_mut().fold(false, |any, v| whole_floats_as_integers(v) | any),
        Value::Object(fields) => fields
            .values_mut()
            .fold(false, |any, v| whole_floats_as_integers(v) | any),
        _ => false,
    }
}

fn json_error(bytes: &[u8], error: serde_json::Error) -> ApiError {
    match error.classify() {
        Category::Data => {
            let path = path_at(bytes, error.line(), error.column());
            let message = if path.is_empty() {
                format!("the JSON body does not fit this route: {error}")
            } else {
                format!("the JSON body does not fit this route: {path}: {error}")
            };
            ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message,
            }
        }
        // JSON allows any number; this reader takes those an f64 can hold.
        Category::Syntax if error.to_string().starts_with("number out of range") => {
            let path = path_at(bytes, error.line(), error.column());
            let at = if path.is_empty() {
                String::new()
            } else {
                format!(" at {path}")
            };
            ApiError {
                status: StatusCode::BAD_REQUEST,
                message: format!("the body holds a number beyond what a 64-bit float holds (±1.8e308){at}: {error}"),
            }
        }
        Category::Syntax | Category::Eof | Category::Io => ApiError {
            status: StatusCode::BAD_REQUEST,
            message: format!("the body is not valid JSON: {error}"),
        },
    }
}

/// One open container on the way to a position in a JSON text.
enum Step {
    /// An object, with the last key read in it.
    Object(Option<String>),
    /// An array, with the index of the current element.
    Array(usize),
}

/// The path (`limits.nodes`, `rules[0].lhs`) of the value at a 1-based line and
/// column of a JSON text, as serde_json reports where a data error was found.
///
/// Only called for data errors, so the text is valid JSON up to that point; on
/// anything else it answers what it has so far and never panics. This stands in
/// for `serde_path_to_error` (what axum's extractor uses), which wraps every body
/// type's decoder and so doubles its code in each Spin component.
fn path_at(text: &[u8], line: usize, column: usize) -> String {
    // serde_json counts lines from 1 and bytes in a line from 1.
    let line_start = if line <= 1 {
        0
    } else {
        text.iter()
            .enumerate()
            .filter(|&(_, &byte)| byte == b'\n')
            .nth(line - 2)
            .map_or(text.len(), |(at, _)| at + 1)
    };
    let end = (line_start + column.saturating_sub(1)).min(text.len());
    let mut stack: Vec<Step> = Vec::new();
    let mut bytes = text[..end].iter().copied();
    let mut expecting_key = false;
    while let Some(byte) = bytes.next() {
        match byte {
            b'{' => {
                stack.push(Step::Object(None));
                expecting_key = true;
            }
            b'[' => stack.push(Step::Array(0)),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Step::Array(index)) => *index += 1,
                Some(Step::Object(_)) => expecting_key = true,
                None => {}
            },
            b'"' => {
                let mut raw = Vec::new();
                let mut escaped = false;
                for byte in bytes.by_ref() {
                    match (escaped, byte) {
                        (false, b'\\') => escaped = true,
                        (false, b'"') => break,
                        _ => {
                            escaped = false;
                            raw.push(byte);
                        }
                    }
                }
                if expecting_key {
                    if let Some(Step::Object(key)) = stack.last_mut() {
                        *key = Some(String::from_utf8_lossy(&raw).into_owned());
                    }
                    expecting_key = false;
                }
            }
            _ => {}
        }
    }
    if text.get(end) == Some(&b'}') {
        // Found at the end of an object (a missing field): the object is the place.
        if let Some(Step::Object(key)) = stack.last_mut() {
            *key = None;
        }
    }
    let mut path = String::new();
    for step in &stack {
        match step {
            Step::Object(Some(key)) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Step::Object(None) => {}
            Step::Array(index) => path.push_str(&format!("[{index}]")),
        }
    }
    path
}

/// `application/json`, or any `application/...+json`, parameters allowed.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence
        .strip_prefix("application/")
        .is_some_and(|subtype| subtype == "json" || subtype.ends_with("+json"))
}

/// Like [`axum::extract::Query`], but a malformed or mistyped query string is
/// answered with a JSON error (400) that says what is wrong.
pub struct QueryParams<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut http::request::Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(QueryParams(value)),
            Err(rejection) => Err(ApiError {
                status: rejection.status(),
                message: rejection.body_text(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Request {
        expression: String,
        #[serde(default)]
        limits: Limits,
        #[serde(default)]
        rules: Vec<Rule>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Limits {
        nodes: Option<u32>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Rule {
        lhs: String,
        rhs: String,
    }

    fn message(body: &str) -> String {
        let error = decode_json::<Request>(body.as_bytes()).unwrap_err();
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", error.message);
        error.message
    }

    #[test]
    fn a_data_error_names_the_field_it_is_in() {
        let cases = [
            (
                r#"{"expression": "x", "limits": {"nodes": "many"}}"#,
                "limits.nodes: invalid type",
            ),
            (r#"{"expression": 42}"#, "expression: invalid type"),
            (
                r#"{"expression": "x", "rules": [{"lhs": "a", "rhs": "b"}, {"lhs": 3, "rhs": "b"}]}"#,
                "rules[1].lhs: invalid type",
            ),
            (
                "{\n  \"expression\": \"x\",\n  \"limits\": {\"nodes\": -1}\n}",
                "limits.nodes: invalid value",
            ),
            (r#"{"expression": "a\"}{[,", "colour": 1}"#, "colour: unknown field"),
            (
                r#"{"expression": "x", "rules": [{"lhs": "a"}]}"#,
                "rules[0]: missing field `rhs`",
            ),
            (r#"[1]"#, "does not fit this route: [0]: invalid type"),
            (r#""x""#, "does not fit this route: invalid type"),
        ];
        for (body, expected) in cases {
            let message = message(body);
            assert!(message.contains(expected), "expected `{expected}` in {message}");
        }
    }

    #[test]
    fn a_whole_number_written_with_a_point_is_a_whole_number() {
        #[derive(Debug, Deserialize, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct Counts {
            n: usize,
            signed: i64,
            list: Vec<u8>,
            ratio: f64,
        }
        #[derive(Debug, Deserialize, PartialEq)]
        #[serde(untagged)]
        enum Id {
            Number(i64),
            Name(String),
        }
        let ids: Vec<Id> = decode_json(br#"[8442233786.0, "a"]"#).unwrap();
        assert_eq!(ids, vec![Id::Number(8_442_233_786), Id::Name("a".into())]);
        // A key twice is refused as before, floats or not.
        let twice = br#"{"n": 2.0, "n": 3, "signed": 0, "list": [], "ratio": 0}"#;
        assert_eq!(
            decode_json::<Counts>(twice).unwrap_err().status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let decoded: Counts = decode_json(br#"{"n": 2.0, "signed": -3.0, "list": [1.0, 2], "ratio": 0.5}"#).unwrap();
        assert_eq!(
            decoded,
            Counts {
                n: 2,
                signed: -3,
                list: vec![1, 2],
                ratio: 0.5
            }
        );
        // A fraction, a number too big for the field, or beyond 64 bits is still refused, naming the field.
        for (body, field) in [
            (r#"{"n": 2.5, "signed": 0, "list": [], "ratio": 0}"#, "n"),
            (r#"{"n": 1, "signed": 0, "list": [256.0], "ratio": 0}"#, "list"),
            (r#"{"n": 1e300, "signed": 0, "list": [], "ratio": 0}"#, "n"),
            // An integer past i64 is not rounded into it.
            (
                r#"{"n": 1, "signed": -9223372036854775809, "list": [], "ratio": 0}"#,
                "signed",
            ),
            (
                r#"{"n": 18446744073709551616, "signed": 0, "list": [], "ratio": 0}"#,
                "n",
            ),
        ] {
            let error = decode_json::<Counts>(body.as_bytes()).unwrap_err();
            assert_eq!(
                error.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{body}: {}",
                error.message
            );
            assert!(error.message.contains(field), "{body}: {}", error.message);
        }
    }

    #[test]
    fn a_syntax_error_is_a_400() {
        for body in [
            &b"{\"expression\": "[..],
            &[0xff, 0xfe, 0],
            b"{\"expression\": \"x\"} {}",
            b"",
        ] {
            let error = decode_json::<Request>(body).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{}", error.message);
            assert!(error.message.contains("not valid JSON"), "{}", error.message);
        }
    }

    #[test]
    fn a_number_too_large_for_a_float_is_named_with_its_path() {
        for (body, path) in [
            (
                &b"{\"expression\": \"x\", \"limits\": {\"nodes\": 1e400}}"[..],
                " at limits.nodes",
            ),
            (
                b"{\"expression\": \"x\", \"rules\": [{\"lhs\": -1e309}]}",
                " at rules[0].lhs",
            ),
            (b"1e999", ""),
        ] {
            let error = decode_json::<Request>(body).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{}", error.message);
            assert!(
                error.message.starts_with(&format!(
                    "the body holds a number beyond what a 64-bit float holds (±1.8e308){path}:"
                )),
                "{}",
                error.message
            );
        }
    }

    #[test]
    fn the_path_scan_never_panics_on_what_it_is_given() {
        let texts: [&[u8]; 6] = [b"", b"\"", b"\"\\", b"}}]]", b"{\"a\":[[[", &[0xff, b'"', 0xfe]];
        for text in texts {
            for column in 0..8 {
                path_at(text, 1, column);
                path_at(text, 2, column);
            }
        }
    }

    #[test]
    fn only_a_json_media_type_is_a_json_body() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, value.parse().unwrap());
            is_json(&headers)
        };
        for accepted in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/cloudevents+json",
        ] {
            assert!(with(accepted), "{accepted}");
        }
        for refused in [
            "text/json",
            "application/jsonx",
            "application/x-www-form-urlencoded",
            "",
        ] {
            assert!(!with(refused), "{refused}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }
}
