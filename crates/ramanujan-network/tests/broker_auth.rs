//! The broker connection's credentials: a real `nats-server` that asks for a
//! token takes a client that has it and no other; the environment's settings
//! read as documented, and no secret shows in their debug form.

use async_nats::connection::State;
use ramanujan_network::nats::broker::{BrokerAuth, connect_with};
use ramanujan_network::nats::local_broker::LocalBroker;
use std::collections::HashMap;
use std::time::Duration;

const TOKEN: &str = "broker-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_asking_for_a_token_takes_only_a_client_that_has_it() {
    let dir = tempfile::tempdir().unwrap();
    let broker = LocalBroker::start_configured(dir.path(), &format!("authorization {{ token: \"{TOKEN}\" }}")).unwrap();
    let good = BrokerAuth {
        token: Some(TOKEN.into()),
        ..BrokerAuth::default()
    };
    let client = connect_with(&broker.url(), "with-token", &good).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), client.flush())
        .await
        .expect("flushed in time")
        .unwrap();
    // A JetStream round trip through the broker.
    let js = async_nats::jetstream::new(client.clone());
    tokio::time::timeout(Duration::from_secs(10), js.query_account())
        .await
        .expect("answered in time")
        .unwrap();
    assert_eq!(client.connection_state(), State::Connected);

    for (what, auth) in [
        ("no token", BrokerAuth::default()),
        (
            "a wrong token",
            BrokerAuth {
                token: Some("not-the-token-0123".into()),
                ..BrokerAuth::default()
            },
        ),
    ] {
        let client = connect_with(&broker.url(), "without", &auth).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_ne!(client.connection_state(), State::Connected, "{what}");
        let flushed = tokio::time::timeout(Duration::from_millis(500), client.flush()).await;
        assert!(!matches!(flushed, Ok(Ok(()))), "{what}: nothing gets through");
    }
}

#[test]
fn the_environment_reads_as_documented_and_keeps_its_secrets() {
    let read = |pairs: &[(&str, &str)]| {
        let vars: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        BrokerAuth::from_vars(|name| vars.get(name).cloned())
    };
    let auth = read(&[
        ("NATS_USER", "agent"),
        ("NATS_PASSWORD", "pa55-w0rd-secret"),
        ("NATS_TLS", "true"),
    ])
    .unwrap();
    assert_eq!(auth.user, Some(("agent".into(), "pa55-w0rd-secret".into())));
    assert!(auth.tls);
    let shown = format!("{auth:?}");
    assert!(!shown.contains("pa55-w0rd-secret"), "{shown}");
    let auth = read(&[("NATS_TOKEN", TOKEN)]).unwrap();
    assert!(!format!("{auth:?}").contains(TOKEN));
    assert!(!read(&[]).unwrap().tls);
    for (bad, says) in [
        (vec![("NATS_USER", "agent")], "NATS_PASSWORD"),
        (vec![("NATS_TOKEN", TOKEN), ("NATS_CREDS", "/x.creds")], "one of"),
        (vec![("NATS_TLS", "maybe")], "NATS_TLS"),
        (vec![("NATS_TLS_CERT", "/c.pem")], "NATS_TLS_KEY"),
    ] {
        let e = read(&bad).unwrap_err();
        assert!(e.contains(says) && !e.contains(TOKEN), "{bad:?}: {e}");
    }
}
