//! The broker connection over TLS: a real `nats-server` that requires TLS,
//! verifies client certificates against its own authority and asks for a
//! user and password takes a client that has all three (`NATS_TLS_CA`,
//! `NATS_TLS_CERT` with `NATS_TLS_KEY`, `NATS_USER` with `NATS_PASSWORD`) and
//! no client that lacks one, trusts the wrong authority or holds a
//! certificate from another; a client that requires TLS never speaks in the
//! clear to a broker that does not offer it; a wrong path is a clear error at
//! start-up, not a connection that retries for ever. The certificates are made
//! afresh for each run (`rcgen`).

use ramanujan_network::nats::broker::{BrokerAuth, connect_with};
use ramanujan_network::nats::local_broker::LocalBroker;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

const PASSWORD: &str = "tls-pa55-w0rd-0123";

/// A certificate authority: its certificate's PEM and what signs with it.
fn authority(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

/// A certificate for `names` from `issuer`, for `purpose`, written under
/// `dir` as `{file}.pem` and `{file}.key`; answers both paths.
fn issue(
    dir: &Path,
    file: &str,
    issuer: &Issuer<'_, KeyPair>,
    names: &[&str],
    purpose: ExtendedKeyUsagePurpose,
) -> (PathBuf, PathBuf) {
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![purpose];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    let (cert_path, key_path) = (dir.join(format!("{file}.pem")), dir.join(format!("{file}.key")));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

/// Whether a client with `auth` gets a JetStream answer from `url` within
/// `wait`.
async fn reaches(url: &str, auth: &BrokerAuth, wait: Duration) -> bool {
    let Ok(client) = connect_with(url, "tls-test", auth).await else {
        return false;
    };
    let js = async_nats::jetstream::new(client);
    matches!(tokio::time::timeout(wait, js.query_account()).await, Ok(Ok(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_on_mutual_tls_takes_only_a_client_with_the_right_authority_certificate_and_password() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path();
    let (ca_pem, ca) = authority("ramanujan test authority");
    let ca_path = pki.join("ca.pem");
    std::fs::write(&ca_path, &ca_pem).unwrap();
    let (rogue_pem, rogue) = authority("someone else's authority");
    let rogue_path = pki.join("rogue-ca.pem");
    std::fs::write(&rogue_path, &rogue_pem).unwrap();
    let (server_cert, server_key) = issue(
        pki,
        "server",
        &ca,
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let client = issue(pki, "agent", &ca, &["agent-0"], ExtendedKeyUsagePurpose::ClientAuth);
    let forged = issue(pki, "forged", &rogue, &["agent-0"], ExtendedKeyUsagePurpose::ClientAuth);

    let store = pki.join("broker");
    std::fs::create_dir_all(&store).unwrap();
    let broker = LocalBroker::start_configured(
        &store,
        &format!(
            "tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", verify: true, timeout: 2 }}\n\
             authorization {{ user: agent, password: \"{PASSWORD}\" }}",
            server_cert.display(),
            server_key.display(),
            ca_path.display()
        ),
    )
    .unwrap();
    let url = broker.url();

    let good = BrokerAuth {
        user: Some(("agent".into(), PASSWORD.into())),
        tls: true,
        tls_ca: Some(ca_path.clone()),
        tls_client: Some(client.clone()),
        ..BrokerAuth::default()
    };
    assert!(
        reaches(&url, &good, Duration::from_secs(15)).await,
        "the right authority, certificate and password get a JetStream answer"
    );

    let refused = [
        (
            "the machine's roots instead of the broker's authority",
            BrokerAuth {
                tls_ca: None,
                ..good.clone()
            },
        ),
        (
            "another authority trusted",
            BrokerAuth {
                tls_ca: Some(rogue_path.clone()),
                ..good.clone()
            },
        ),
        (
            "no client certificate",
            BrokerAuth {
                tls_client: None,
                ..good.clone()
            },
        ),
        (
            "a client certificate from another authority",
            BrokerAuth {
                tls_client: Some(forged.clone()),
                ..good.clone()
            },
        ),
        (
            "a wrong password",
            BrokerAuth {
                user: Some(("agent".into(), "not-the-password".into())),
                ..good.clone()
            },
        ),
        (
            "no password",
            BrokerAuth {
                user: None,
                ..good.clone()
            },
        ),
    ];
    let attempts = refused
        .iter()
        .map(|(_, auth)| reaches(&url, auth, Duration::from_secs(4)));
    let answers = futures_util::future::join_all(attempts).await;
    for ((what, _), reached) in refused.iter().zip(answers) {
        assert!(!reached, "{what}: refused");
    }

    // A client that requires TLS does not talk in the clear to a broker
    // without it, even with the right password.
    let plain_store = pki.join("plain");
    std::fs::create_dir_all(&plain_store).unwrap();
    let plain = LocalBroker::start_configured(
        &plain_store,
        &format!("authorization {{ user: agent, password: \"{PASSWORD}\" }}"),
    )
    .unwrap();
    let clear = BrokerAuth {
        tls_client: None,
        ..good.clone()
    };
    assert!(
        !reaches(&plain.url(), &clear, Duration::from_secs(4)).await,
        "TLS required: no plaintext fallback"
    );
    assert!(
        reaches(
            &plain.url(),
            &BrokerAuth {
                user: good.user.clone(),
                ..BrokerAuth::default()
            },
            Duration::from_secs(15)
        )
        .await,
        "the same broker answers a client that does not require TLS (the refusal above is TLS's)"
    );

    // Wrong paths are one clear error at start-up, naming the setting and
    // never the key's contents.
    let missing = pki.join("missing.pem");
    for (setting, auth) in [
        (
            "NATS_TLS_CA",
            BrokerAuth {
                tls_ca: Some(missing.clone()),
                ..good.clone()
            },
        ),
        (
            "NATS_TLS_KEY",
            BrokerAuth {
                tls_client: Some((client.0.clone(), missing.clone())),
                ..good.clone()
            },
        ),
        (
            "NATS_TLS_CERT",
            BrokerAuth {
                tls_client: Some((pki.join("absent-cert.pem"), client.1.clone())),
                ..good.clone()
            },
        ),
    ] {
        let e = tokio::time::timeout(Duration::from_secs(5), connect_with(&url, "bad-path", &auth))
            .await
            .expect("fails at once")
            .expect_err(setting);
        assert!(e.starts_with(setting), "{setting}: {e}");
        assert!(!e.contains(PASSWORD), "{e}");
    }
    let not_pem = pki.join("not.pem");
    std::fs::write(&not_pem, "a key that is not PEM").unwrap();
    let e = connect_with(
        &url,
        "not-pem",
        &BrokerAuth {
            tls_client: Some((client.0.clone(), not_pem)),
            ..good.clone()
        },
    )
    .await
    .expect_err("not PEM");
    assert!(
        e.contains("NATS_TLS_KEY") && e.contains("not a PEM file") && !e.contains("a key that is not"),
        "{e}"
    );
}
