//! `deploy/` against `spin.toml` and the real command line: the SpinApp sets
//! only declared variables and every required one, gives every granted
//! key-value store a backend, the bridge's arguments parse as `ramanujan
//! bridge`, and names, ports and secrets agree across the files.

mod common;

use clap::Parser;
use common::root;
use ramanujan::config::{Cli, Command};
use serde_yaml::Value;
use std::collections::BTreeSet;

/// Every document of a multi-document YAML file.
fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(root().join("deploy").join(file)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{file}: {e}")))
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

#[test]
fn the_deployment_agrees_with_spin_toml_and_the_command_line() {
    let manifest: toml::Table = toml::from_str(&std::fs::read_to_string(root().join("spin.toml")).unwrap()).unwrap();
    let declared = manifest["variables"].as_table().unwrap();
    let app_docs = documents("spinapp.yaml");
    let app = of_kind(&app_docs, "SpinApp");
    assert_eq!(app["apiVersion"], "core.spinkube.dev/v1alpha1");

    // Variables: declared, and every required one set.
    let set: BTreeSet<&str> = app["spec"]["variables"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| str_of(&v["name"]))
        .collect();
    for name in &set {
        assert!(
            declared.contains_key(*name),
            "the SpinApp sets `{name}`, which spin.toml does not declare"
        );
    }
    for (name, v) in declared {
        if v.get("required").and_then(toml::Value::as_bool) == Some(true) {
            assert!(set.contains(name.as_str()), "required variable `{name}` is not set");
        }
    }

    // Every key-value store a component is granted has a backend.
    let backends: BTreeSet<&str> = app["spec"]["runtimeConfig"]["keyValueStores"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| str_of(&s["name"]))
        .collect();
    for (name, component) in manifest["component"].as_table().unwrap() {
        for store in component
            .get("key_value_stores")
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
        {
            let store = store.as_str().unwrap();
            assert!(
                backends.contains(store),
                "{name} uses key-value store `{store}`, which has no backend"
            );
        }
    }

    // The bridge: its arguments parse, and what it points at exists.
    let bridge_docs = documents("bridge.yaml");
    let deployment = of_kind(&bridge_docs, "Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mut argv = vec!["ramanujan".to_string()];
    argv.extend(
        container["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| str_of(a).to_string()),
    );
    // The secret comes from the environment in the pod; clap reads it there.
    argv.extend(["--secret".to_string(), "from-the-secret".to_string()]);
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("bridge arguments: {e}"));
    let Some(Command::Bridge(args)) = cli.command else {
        panic!("the bridge container does not run `ramanujan bridge`")
    };
    ramanujan_agent::topology::parse_positions(&args.agents).unwrap();
    let env_secret = container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "WEBHOOK_SECRET")
        .expect("the bridge reads WEBHOOK_SECRET");
    let app_secret = app["spec"]["variables"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "webhook_secret")
        .unwrap();
    assert_eq!(
        env_secret["valueFrom"]["secretKeyRef"], app_secret["valueFrom"]["secretKeyRef"],
        "the bridge and the app sign with the same secret"
    );
    let secret = of_kind(&bridge_docs, "Secret");
    assert_eq!(
        secret["metadata"]["name"],
        env_secret["valueFrom"]["secretKeyRef"]["name"]
    );

    // The app reaches the bridge's Service, the bridge reaches the app's and the broker's.
    let service = of_kind(&bridge_docs, "Service");
    let bridge_url = app["spec"]["variables"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "bridge_url")
        .map(|v| str_of(&v["value"]).to_string())
        .unwrap();
    let expected = format!(
        "http://{}:{}",
        str_of(&service["metadata"]["name"]),
        service["spec"]["ports"][0]["port"].as_u64().unwrap()
    );
    assert_eq!(bridge_url, expected);
    assert_eq!(
        args.listen.port() as u64,
        service["spec"]["ports"][0]["port"].as_u64().unwrap()
    );
    assert_eq!(args.app, format!("http://{}", str_of(&app["metadata"]["name"])));
    let nats_docs = documents("nats.yaml");
    let nats = of_kind(&nats_docs, "Service");
    assert_eq!(
        args.nats,
        format!(
            "nats://{}:{}",
            str_of(&nats["metadata"]["name"]),
            nats["spec"]["ports"][0]["port"].as_u64().unwrap()
        )
    );
    let config = str_of(&of_kind(&nats_docs, "ConfigMap")["data"]["nats.conf"]);
    assert!(config.contains("jetstream"), "the broker runs JetStream");
    assert!(config.contains("max_payload: 8MB"), "the broker takes 8 MiB messages");

    // Three clustered servers, each routed to by name; the bridge keeps its
    // streams on all of them.
    let servers = of_kind(&nats_docs, "StatefulSet");
    let replicas = servers["spec"]["replicas"].as_u64().unwrap();
    assert_eq!(replicas, 3, "a cluster of three");
    let headless = nats_docs
        .iter()
        .find(|d| d["kind"] == "Service" && d["spec"]["clusterIP"] == "None")
        .expect("a headless Service for the routes");
    assert_eq!(servers["spec"]["serviceName"], headless["metadata"]["name"]);
    for i in 0..replicas {
        let route = format!(
            "nats-route://{}-{i}.{}:6222",
            str_of(&servers["metadata"]["name"]),
            str_of(&headless["metadata"]["name"])
        );
        assert!(config.contains(&route), "no route to server {i}: {route}");
    }
    let bridge_replicas = container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "NATS_REPLICAS")
        .map(|e| str_of(&e["value"]).to_string());
    assert_eq!(bridge_replicas, Some(replicas.to_string()));
}
