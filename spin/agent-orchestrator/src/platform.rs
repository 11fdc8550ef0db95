//! What the agents need from Spin beyond key-value (`spin_entry::SpinKeyValue`):
//! settings (variables, then environment), and publishing through the NATS
//! bridge (outbound HTTP).

use ramanujan_agent::network::BoxFuture;
use ramanujan_hosted::hosted::Publisher;
use ramanujan_wire::signature::{self, SIGNATURE_HEADER};
use spin_entry::one_thread;
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{FullBody, Method};
use std::collections::HashMap;

/// The settings the component reads (see the crate docs).
const NAMES: &[&str] = &[
    "webhook_secret",
    "bridge_url",
    "agents",
    "topology",
    "num_agents",
    "degree",
    "topology_seed",
    "component_id",
    "step_time_ms",
    "max_terms",
    "goal_nodes",
    "sync_interval_ms",
    "health_timeout_ms",
    "kv_store",
];

/// Settings for one request.
pub struct Settings(HashMap<&'static str, String>);

impl Settings {
    /// Each name's Spin variable, else its upper-cased environment variable.
    pub async fn read() -> Settings {
        let mut values = HashMap::new();
        for &name in NAMES {
            let value = match spin_sdk::variables::get(name).await {
                Ok(value) => Some(value),
                Err(_) => std::env::var(name.to_ascii_uppercase()).ok(),
            };
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                values.insert(name, value);
            }
        }
        Settings(values)
    }

    /// A setting, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// Publishes through the bridge: a signed `POST {bridge_url}/publish/{subject}`.
pub struct BridgePublisher {
    url: Option<String>,
    secret: Option<Vec<u8>>,
}

impl BridgePublisher {
    /// The bridge at `url`, signing with `secret`.
    pub fn new(url: Option<String>, secret: Option<Vec<u8>>) -> Self {
        BridgePublisher {
            url: url.map(|u| u.trim_end_matches('/').to_string()),
            secret,
        }
    }
}

impl Publisher for BridgePublisher {
    fn publish<'a>(
        &'a self,
        subject: &'a str,
        msg_id: Option<&'a str>,
        payload: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), String>> {
        one_thread(async move {
            let url = self.url.as_deref().ok_or("no bridge_url is configured")?;
            let secret = self.secret.as_deref().ok_or("no webhook_secret is configured")?;
            let mut request = spin_sdk::http::Request::builder()
                .method(Method::POST)
                .uri(format!("{url}/publish/{subject}"))
                .header("content-type", "application/octet-stream")
                .header(SIGNATURE_HEADER, signature::sign(secret, subject, &payload));
            if let Some(id) = msg_id {
                request = request.header("nats-msg-id", id);
            }
            let request = request
                .body(FullBody::new(bytes::Bytes::from(payload)))
                .map_err(|e| e.to_string())?;
            let response = spin_sdk::http::send(request)
                .await
                .map_err(|e| format!("POST {url}/publish/{subject}: {e:?}"))?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let body = response.into_body().bytes().await.unwrap_or_default();
            Err(format!(
                "the bridge answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ))
        })
    }
}
