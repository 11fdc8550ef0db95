//! transduction-2tdx in the real host (issue #20): two sites on loopback with
//! different rule books converge in one `/2tdx/sync` round trip each way;
//! concurrent enable and disable merge as documented (disable wins); a peer
//! that times out or answers garbage leaves the local book untouched and is
//! retried; a wrong or missing key gets 401; bad input gets a 4xx naming the
//! problem; the book survives a restart, and every acknowledged change to it
//! survives `kill -9` in the middle of writes; the agents run the book.

mod common;

use ramanujan::config::ServeArgs;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const KEY: &str = "sync-key-for-tests";

struct Site {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Site {
    async fn start(name: &str, configure: impl FnOnce(&mut ServeArgs)) -> Site {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener, name, configure).await
    }

    async fn start_on(listener: tokio::net::TcpListener, name: &str, configure: impl FnOnce(&mut ServeArgs)) -> Site {
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut args = ServeArgs {
            agent_id: name.into(),
            local_endpoint: Some(name.into()),
            tdx_api_key: Some(KEY.into()),
            // Longer than any test: syncs happen when a test asks for them.
            tdx_sync_ms: 3_600_000,
            ..ServeArgs::default()
        };
        args.network.in_memory = true;
        args.log.log_level = "warn".into();
        configure(&mut args);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(ramanujan::serve_on(listener, args, async {
            let _ = stopped.await;
        }));
        Site {
            base,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// One request; a JSON answer is checked against the API's description.
async fn call(method: reqwest::Method, url: String, key: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let path = reqwest::Url::parse(&url).unwrap().path().to_string();
    let mut request = http().request(method.clone(), url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if json {
        common::contract::conforms(method.as_str(), &path, status, &body);
    }
    (status, body)
}

async fn get(site: &Site, path: &str) -> Value {
    let (status, body) = call(reqwest::Method::GET, format!("{}{path}", site.base), None, None).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn post(site: &Site, path: &str, body: Value) -> (u16, Value) {
    call(
        reqwest::Method::POST,
        format!("{}{path}", site.base),
        Some(KEY),
        Some(body),
    )
    .await
}

fn rule(name: &str, lhs: &str, rhs: &str, color: &str) -> Value {
    json!({"name": name, "lhs": lhs, "rhs": rhs, "color": color})
}

async fn add(site: &Site, rules: Vec<Value>) -> Vec<String> {
    let (status, body) = post(site, "/2tdx/rules", json!({ "rules": rules })).await;
    assert_eq!(status, 200, "{body}");
    body["added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

async fn digest(site: &Site) -> String {
    get(site, "/2tdx/rules").await["digest"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sites_converge_in_one_round_trip_and_concurrent_edits_merge_as_documented() {
    let b = Site::start("site-b", |_| {}).await;
    let peer = b.base.clone();
    let a = Site::start("site-a", move |args| args.peer_endpoint = Some(peer)).await;

    add(&a, vec![rule("zero", "(+ ?x 0)", "?x", "GREEN")]).await;
    let comm = add(
        &b,
        vec![
            rule("one", "(* ?x 1)", "?x", "GREEN"),
            rule("comm", "(+ ?x ?y)", "(+ ?y ?x)", "RED"),
        ],
    )
    .await;
    assert_ne!(digest(&a).await, digest(&b).await);

    // One round trip: a sends its book, b merges and answers what a lacks.
    let (status, body) = post(&a, "/2tdx/sync/peer", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(digest(&a).await, digest(&b).await);
    assert_eq!(get(&a, "/2tdx/rules").await["count"], 3);

    // The other way, by a client posting a's book to b's /sync (the same route under /sync/...).
    let key = comm[1].clone();
    let (status, _) = call(
        reqwest::Method::PATCH,
        format!("{}/2tdx/rules/{key}", b.base),
        Some(KEY),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        reqwest::Method::PATCH,
        format!("{}/2tdx/rules/{key}", a.base),
        Some(KEY),
        Some(json!({"enabled": true, "color": "BLUE"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = post(&a, "/sync/peer", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(digest(&a).await, digest(&b).await);
    let entry = |book: Value| {
        book["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == key.as_str())
            .cloned()
            .unwrap()
    };
    let merged = entry(get(&a, "/2tdx/rules").await);
    assert_eq!(
        merged["enabled"], false,
        "disable wins over a concurrent enable: {merged}"
    );
    assert_eq!(merged["conflict"]["enabled"], json!([false, true]), "{merged}");
    assert_eq!(merged["spec"]["color"], "BLUE", "{merged}");
    // An enable that has seen the disable re-enables, everywhere after a sync.
    call(
        reqwest::Method::PATCH,
        format!("{}/2tdx/rules/{key}", b.base),
        Some(KEY),
        Some(json!({"enabled": true})),
    )
    .await;
    post(&a, "/2tdx/sync/peer", json!({})).await;
    assert_eq!(entry(get(&a, "/2tdx/rules").await)["enabled"], true);
    assert_eq!(digest(&a).await, digest(&b).await);

    // A removal on one site reaches the other.
    let (status, _) = call(
        reqwest::Method::DELETE,
        format!("{}/2tdx/rules/{key}", a.base),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(status, 200);
    post(&a, "/2tdx/sync/peer", json!({})).await;
    assert_eq!(get(&b, "/2tdx/rules").await["count"], 2);

    let health = get(&a, "/2tdx/health").await;
    assert_eq!(health["book"]["peer"]["state"], "in_sync", "{health}");
    // The first sync sent the whole book; every later one only what changed
    // since, beside a summary (and converged all the same).
    assert_eq!(health["book"]["peer"]["whole"], 1, "{health}");
    assert_eq!(health["book"]["peer"]["brief"], 3, "{health}");

    // A peer that lost its book (a new site at the same address) is sent the
    // whole book again: in brief it would never learn the rules both held.
    let address = b.base.trim_start_matches("http://").to_string();
    b.stop().await;
    let listener = tokio::net::TcpListener::bind(&address).await.unwrap();
    let fresh = Site::start_on(listener, "site-b", |_| {}).await;
    assert_eq!(get(&fresh, "/2tdx/rules").await["count"], 0);
    let (status, body) = post(&a, "/2tdx/sync/peer", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(digest(&a).await, digest(&fresh).await);
    assert_eq!(get(&fresh, "/2tdx/rules").await["count"], 2);
    let health = get(&a, "/2tdx/health").await;
    assert_eq!(health["book"]["peer"]["whole"], 2, "{health}");
    a.stop().await;
    fresh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_needs_the_key() {
    let site = Site::start("site", |_| {}).await;
    let book = json!({"members": {"clock": {"dots": {}}, "entries": {}, "deferred": {}}, "rules": {}});
    for key in [None, Some("wrong")] {
        let response = http()
            .post(format!("{}/2tdx/sync", site.base))
            .json(&book)
            .header("authorization", key.map_or(String::new(), |k| format!("Bearer {k}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"2tdx\"");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("Bearer"), "{body}");
        assert!(!body.to_string().contains(KEY));
    }
    let (status, _) = call(
        reqwest::Method::POST,
        format!("{}/sync", site.base),
        Some(KEY),
        Some(book),
    )
    .await;
    assert_eq!(status, 200);
    // Mutating routes too; reading needs no key.
    let (status, _) = call(
        reqwest::Method::POST,
        format!("{}/2tdx/rules", site.base),
        None,
        Some(json!({"rules": [rule("zero", "(+ ?x 0)", "?x", "GREEN")]})),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(get(&site, "/2tdx/health").await["book"]["syncs_refused"], 2);
    site.stop().await;
}

/// On a host that asks for API keys and has a sync key of its own, one API
/// key of write scope changes the book (the host's guard and the route's own
/// check both take it); the sync key alone does not pass the host's guard on
/// the book's routes, a read key is refused, and the sync routes take the
/// sync key as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_write_key_does_on_a_host_that_asks_for_api_keys_and_has_a_sync_key() {
    const WRITE: &str = "host-write-key-0123456789";
    const READ: &str = "host-read-key-0123456789";
    let site = Site::start("both", |args| {
        args.api_keys = Some(format!("write:{WRITE},read:{READ}"));
    })
    .await;
    let rules = json!({"rules": [rule("zero", "(+ ?x 0)", "?x", "GREEN")]});
    let add_with = |key: &'static str| {
        call(
            reqwest::Method::POST,
            format!("{}/2tdx/rules", site.base),
            Some(key),
            Some(rules.clone()),
        )
    };
    let (status, body) = add_with(WRITE).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["added"].as_array().map(Vec::len), Some(1), "{body}");
    for (key, want) in [(KEY, 401), (READ, 403), ("not-a-key-of-this-host", 401)] {
        let (status, body) = add_with(key).await;
        assert_eq!(status, want, "{key}: {body}");
    }
    let book = json!({"members": {"clock": {"dots": {}}, "entries": {}, "deferred": {}}, "rules": {}});
    let (status, _) = call(
        reqwest::Method::POST,
        format!("{}/2tdx/sync", site.base),
        Some(KEY),
        Some(book),
    )
    .await;
    assert_eq!(status, 200, "the sync key still syncs");
    site.stop().await;
}

/// A peer that never answers, and one that answers garbage or a forged book:
/// the local book stays as it was, the failure is reported, and the host
/// keeps retrying on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_peer_leaves_local_rules_untouched_and_is_retried() {
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    // Answers 200 with what is not a rule book, then a book whose rule is
    // filed under a key that is not its hash.
    let garbage = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let garbage_url = format!("http://{}", garbage.local_addr().unwrap());
    let forged = json!({
        "members": {"clock": {"dots": {"x": 1}}, "entries": {"00000000000000000000000000000000": {"dots": {"x": 1}}}, "deferred": {}},
        "rules": {"00000000000000000000000000000000": {
            "key": "00000000000000000000000000000000",
            "spec": {"name": "forged", "lhs": "(* ?a ?b)", "rhs": "(+ ?a ?b)", "color": "RED"},
            "provenance": {"source": "user", "verified_by": "nobody"}
        }}
    });
    let answers = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = answers.clone();
    let app = axum::Router::new().route(
        "/2tdx/sync",
        axum::routing::post(move || {
            let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let forged = forged.clone();
            async move {
                if n.is_multiple_of(2) {
                    "{\"not\": \"a book\"".to_string()
                } else {
                    forged.to_string()
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(garbage, app).await });

    for (peer, expect) in [(silent_url, "did not answer within"), (garbage_url, "")] {
        let site = Site::start("site", |args| {
            args.peer_endpoint = Some(peer);
            args.tdx_sync_ms = 50;
            args.max_latency_ms = 200;
        })
        .await;
        add(&site, vec![rule("zero", "(+ ?x 0)", "?x", "GREEN")]).await;
        let before = get(&site, "/2tdx/rules").await;
        let (status, body) = post(&site, "/2tdx/sync/peer", json!({})).await;
        assert_eq!(status, 502, "{body}");
        assert!(body["error"].as_str().unwrap().contains(expect), "{body}");
        // Retried by the host itself, with backoff, and never merged.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let health = get(&site, "/2tdx/health").await;
            let peer = &health["book"]["peer"];
            assert_eq!(peer["state"], "failing", "{health}");
            assert_eq!(peer["successes"], 0, "{health}");
            if peer["failures"].as_u64().unwrap() >= 4 {
                break;
            }
            assert!(Instant::now() < deadline, "the peer was not retried: {health}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(get(&site, "/2tdx/rules").await, before);
        site.stop().await;
    }
    assert!(answers.load(std::sync::atomic::Ordering::SeqCst) >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_4xx_naming_the_problem() {
    let site = Site::start("site", |_| {}).await;
    let bad_rule = |lhs: &str, rhs: &str| json!({"rules": [rule("r", lhs, rhs, "RED")]});
    for (body, says) in [
        (bad_rule("(+ ?a", "?a"), "lhs"),
        (bad_rule("(sin ?a)", "?a"), "(sin ?a)"),
        (
            bad_rule("(+ ?a 0)", "?b"),
            "?b is on the right side but not on the left",
        ),
        (bad_rule("(* ?a ?b)", "(+ ?a ?b)"), "unsound"),
        (
            json!({"rules": (0..300).map(|i| rule(&format!("r{i}"), "(+ ?a 0)", "?a", "GREEN")).collect::<Vec<_>>()}),
            "at most 256 rules",
        ),
    ] {
        let (status, answer) = post(&site, "/2tdx/rules", body).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{says}: {answer}");
    }
    let (status, answer) = post(&site, "/2tdx/rules", json!({"rules": [{"lhs": "(+ ?a 0)"}]})).await;
    assert_eq!(status, 422, "{answer}");

    let parse = |source: &'static str| http().post(format!("{}/2tdx/parse", site.base)).body(source).send();
    for (source, says) in [
        ("fn main() {}", "no `fn specs`"),
        ("this is not rust", "not Rust"),
        (
            "fn specs() -> Vec<RuleSpec> { Vec::from([rule(\"r\", \"(+ ?a 0)\", \"?b\", Color::Red, &[], &[])]) }",
            "?b is on the right side",
        ),
    ] {
        let response = parse(source).await.unwrap();
        assert_eq!(response.status(), 400);
        let answer: Value = response.json().await.unwrap();
        assert!(answer["error"].as_str().unwrap().contains(says), "{says}: {answer}");
    }
    for (request, says) in [
        (
            json!({"source": "enumeration", "grammar": {"operators": ["sin"], "variables": ["a"], "constants": []}}),
            "unknown operator `sin`",
        ),
        (json!({"source": "enumeration", "options": {"max_size": 9}}), "max_size"),
        (
            json!({"source": "equalities", "equalities": [{"lhs": "(+ a", "rhs": "a"}]}),
            "equality 1: lhs",
        ),
    ] {
        let (status, answer) = post(&site, "/2tdx/mine", request).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{says}: {answer}");
    }
    let (status, answer) = call(
        reqwest::Method::PATCH,
        format!("{}/2tdx/rules/nope", site.base),
        Some(KEY),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(status, 404, "{answer}");
    site.stop().await;
}

/// Rules mined from equalities, written as Rust, read back and added: the
/// book holds them, and they survive a restart of the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mined_rules_go_through_code_into_the_book_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let in_dir = |args: &mut ServeArgs| {
        args.network.in_memory = false;
        args.network.data_dir = data.clone();
    };
    let site = Site::start("site", in_dir).await;
    let (status, mined) = post(
        &site,
        "/2tdx/mine",
        json!({"source": "equalities", "known": "none",
               "equalities": [{"lhs": "(* 3 (+ p q))", "rhs": "(+ (* 3 p) (* 3 q))"}]}),
    )
    .await;
    assert_eq!(status, 200, "{mined}");
    assert_eq!(mined["rules"][0]["spec"]["lhs"], "(+ (* ?a ?b) (* ?a ?c))", "{mined}");
    let specs: Vec<Value> = mined["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["spec"].clone())
        .collect();
    let code = http()
        .post(format!("{}/2tdx/codegen", site.base))
        .json(&json!({ "rules": specs }))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(code.contains("pub fn rule_book()"), "{code}");
    let added: Value = http()
        .post(format!("{}/2tdx/parse?add=true", site.base))
        .bearer_auth(KEY)
        .body(code)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(added["book"]["added"].as_array().unwrap().len(), 1, "{added}");
    let before = get(&site, "/2tdx/rules").await;
    site.stop().await;

    // Started again in this process: what the stopped host held (its files'
    // locks, released by threads that end on their own) may take a moment to
    // go, so a start that fails on it is tried again, saying why.
    let mut tries = 0;
    let site = loop {
        let site = Site::start("site", in_dir).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if !site.task.is_finished() {
            break site;
        }
        let why = site.task.await;
        tries += 1;
        assert!(tries < 25, "the host does not start again: {why:?}");
        eprintln!("the host did not start again yet ({why:?}); trying again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(get(&site, "/2tdx/rules").await, before);
    site.stop().await;
}

/// Waits until the submission `follow` names reads settled; answers its status.
async fn settled(site: &Site, follow: &str) -> Value {
    let started = Instant::now();
    loop {
        let (status, body) = call(reqwest::Method::GET, format!("{}{follow}", site.base), None, None).await;
        assert_eq!(status, 200, "{body}");
        if body["settled"] == true {
            return body;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "not settled: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether `rules` (specs as JSON) derive distributivity in an e-graph.
fn derive_distributivity(rules: &[Value]) -> bool {
    use transduction_2tdx::mine::{compile_checked, derives};
    use transduction_2tdx::rule::NormalForm;
    let specs: Vec<ramanujan_core::rules::RuleSpec> = rules
        .iter()
        .map(|r| serde_json::from_value(r.clone()).unwrap())
        .collect();
    let compiled: Vec<_> = specs.iter().map(|s| compile_checked(s).unwrap()).collect();
    let refs: Vec<_> = compiled.iter().collect();
    let law = ramanujan_core::rules::RuleSpec {
        name: "distribute".into(),
        lhs: "(* ?a (+ ?b ?c))".into(),
        rhs: "(+ (* ?a ?b) (* ?a ?c))".into(),
        color: ramanujan_core::Color::Red,
        bidirectional: false,
        nonzero: Vec::new(),
        integer: Vec::new(),
    };
    derives(
        &refs,
        &NormalForm::of_spec(&law).unwrap(),
        8,
        50_000,
        Instant::now() + Duration::from_secs(10),
    )
}

/// The agents run the book's rules, in their colours, and nothing else
/// (`BUILTIN_RULES=false`); a book without distributivity lets the network
/// derive `(* (+ x y) 2) = (+ (* x 2) (* y 2))` (doubling, then
/// reassociating, then halving), and mining the network's equalities
/// proposes distributivity, verified, which the book alone does not derive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_network_runs_the_book_and_mining_its_equalities_proposes_distributivity() {
    let site = Site::start("site", |args| {
        args.builtin_rules = false;
        args.network.sync_interval = 200;
    })
    .await;
    let book = vec![
        rule("comm-add", "(+ ?a ?b)", "(+ ?b ?a)", "RED"),
        rule("assoc-add", "(+ ?a (+ ?b ?c))", "(+ (+ ?a ?b) ?c)", "RED"),
        rule("assoc-add-rev", "(+ (+ ?a ?b) ?c)", "(+ ?a (+ ?b ?c))", "RED"),
        rule("comm-mul", "(* ?a ?b)", "(* ?b ?a)", "RED"),
        rule("double", "(* ?a 2)", "(+ ?a ?a)", "RED"),
        rule("halve", "(+ ?a ?a)", "(* ?a 2)", "BLUE"),
    ];
    assert_eq!(add(&site, book.clone()).await.len(), book.len());
    let started = Instant::now();
    while get(&site, "/2tdx/health").await["book"]["agents"]["book_rules"] != book.len() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            get(&site, "/2tdx/health").await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = get(&site, "/2tdx/health").await;
    assert_eq!(health["book"]["agents"]["state"], "running", "{health}");
    assert_eq!(health["book"]["agents"]["builtin"], false, "{health}");
    let specs: Vec<Value> = get(&site, "/2tdx/rules").await["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["spec"].clone())
        .collect();
    assert_eq!(specs.len(), book.len());
    assert!(
        !derive_distributivity(&specs),
        "the book alone must not derive distributivity"
    );

    // Without the built-in rules, `(+ a 0)` has no rule to simplify it (the
    // built-in `add-zero` would make it `a`): the agents run the book only.
    let (status, zero) = post(&site, "/agents/submit", json!({"expression": "(+ a 0)"})).await;
    assert_eq!(status, 202, "{zero}");
    let (status, submitted) = post(&site, "/agents/submit", json!({"expression": "(* (+ x y) 2)"})).await;
    assert_eq!(status, 202, "{submitted}");
    let zero = settled(&site, zero["follow"].as_str().unwrap()).await;
    let forms = zero["canonical"].as_array().unwrap();
    assert_eq!(forms.len(), 9, "{zero}");
    assert!(forms.iter().all(|f| f[1] != "a"), "{zero}");
    settled(&site, submitted["follow"].as_str().unwrap()).await;

    // Mined from a GREEN agent's replica; facts may still be on their way to it.
    let started = Instant::now();
    let proposed = loop {
        let (status, mined) = post(
            &site,
            "/2tdx/mine",
            json!({"source": "network", "known": "book", "max_size": 9}),
        )
        .await;
        assert_eq!(status, 200, "{mined}");
        let rules: Vec<Value> = mined["rules"].as_array().unwrap().to_vec();
        let with_book: Vec<Value> = specs
            .iter()
            .cloned()
            .chain(rules.iter().map(|r| r["spec"].clone()))
            .collect();
        if derive_distributivity(&with_book) {
            break rules;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no rule mined from the network gives distributivity: {mined}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for rule in &proposed {
        let provenance = &rule["provenance"];
        assert!(
            provenance["source"].as_str().unwrap().starts_with("network ("),
            "{rule}"
        );
        assert!(!provenance["verified_by"].as_str().unwrap().is_empty(), "{rule}");
    }
    site.stop().await;
}

/// Every change to the rule book the host acknowledged survives `kill -9` of
/// the host while a writer is still adding rules: the rules added, one
/// removed, one disabled.
#[test]
fn acknowledged_rule_book_changes_survive_kill_9_in_the_middle_of_writes() {
    use common::{Host, spawn_printing_url};
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let args = ["up", "--port", "0", "--data-dir", data_dir, "--log-level", "warn"];
    let (process, base) = spawn_printing_url(&args);
    let host = Host::new(base, Duration::from_secs(30));
    let law = |k: usize| {
        rule(
            &format!("comm-{k}"),
            &format!("(+ ?a {k})"),
            &format!("(+ {k} ?a)"),
            "RED",
        )
    };
    let added_key = move |host: &Host, k: usize| {
        let (status, answer) = host.post("/2tdx/rules", json!({ "rules": [law(k)] }));
        (status, answer["added"][0].as_str().map(str::to_string))
    };
    let (status, gone) = added_key(&host, 100_000);
    assert_eq!(status, 200);
    let gone = gone.unwrap();
    let (status, off) = added_key(&host, 100_001);
    assert_eq!(status, 200);
    let off = off.unwrap();
    let removed = host
        .http
        .delete(format!("{}/2tdx/rules/{gone}", host.base))
        .send()
        .unwrap();
    assert_eq!(removed.status().as_u16(), 200);
    let disabled = host
        .http
        .patch(format!("{}/2tdx/rules/{off}", host.base))
        .json(&json!({"enabled": false}))
        .send()
        .unwrap();
    assert_eq!(disabled.status().as_u16(), 200);

    let (acked_tx, acked_rx) = std::sync::mpsc::channel::<()>();
    let writer = {
        let host = Host::new(host.base.clone(), Duration::from_secs(30));
        std::thread::spawn(move || {
            let mut acknowledged = std::collections::BTreeSet::new();
            for k in 0.. {
                let (status, key) = added_key(&host, k);
                if status != 200 {
                    assert_eq!(status, 0, "only a dead host may fail a write");
                    break;
                }
                acknowledged.insert(key.unwrap());
                let _ = acked_tx.send(());
            }
            acknowledged
        })
    };
    for _ in 0..60 {
        acked_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the writer is acknowledged");
    }
    process.kill9();
    let acknowledged = writer.join().unwrap();
    assert!(acknowledged.len() >= 60);

    let (_process, base) = spawn_printing_url(&args);
    let host = Host::new(base, Duration::from_secs(30));
    let (status, book) = host.get("/2tdx/rules");
    assert_eq!(status, 200, "{book}");
    let held: std::collections::BTreeMap<String, bool> = book["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["key"].as_str().unwrap().to_string(), e["enabled"].as_bool().unwrap()))
        .collect();
    let lost: Vec<_> = acknowledged.iter().filter(|k| !held.contains_key(*k)).collect();
    assert!(lost.is_empty(), "acknowledged but lost after kill -9: {lost:?}");
    assert!(!held.contains_key(&gone), "an acknowledged removal came back");
    assert_eq!(held.get(&off), Some(&false), "an acknowledged disable came undone");
    // At most the one request in flight was stored without its answer.
    assert!(
        held.len() <= acknowledged.len() + 2,
        "{} held, {} acknowledged",
        held.len(),
        acknowledged.len()
    );
}

/// A host whose agents are on a broker publishes the book's enabled rules
/// in the bucket the agent processes watch (`nats_agent.rs` shows an agent
/// taking them), again after each change, and says so in `/2tdx/health`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_on_a_broker_publishes_the_book_for_its_agents() {
    use ramanujan_network::nats::LocalBroker;
    use ramanujan_network::nats::broker::{AGENT_RULES_KEY, AgentRuleSet, rules_bucket};
    let dir = tempfile::tempdir().unwrap();
    let broker = LocalBroker::start(dir.path()).expect("nats-server runs (.ci/run installs it)");
    let url = broker.url();
    let site = Site::start("site", move |args| {
        args.nats = Some(url);
        args.builtin_rules = false;
    })
    .await;
    let client = ramanujan_network::nats::broker::connect(&broker.url(), "test")
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let published = || async {
        let bucket = rules_bucket(&js).await.unwrap();
        let value = bucket.get(AGENT_RULES_KEY).await.unwrap();
        value.map(|v| serde_json::from_slice::<AgentRuleSet>(&v).unwrap())
    };
    let wait_for = |want: usize| {
        let published = &published;
        let site = &site;
        async move {
            let started = Instant::now();
            loop {
                // The bucket is written before the health says so: wait
                // for both (the health's state starts as `none`).
                let health = get(site, "/2tdx/health").await;
                if let Some(set) = published().await
                    && set.rules.len() == want
                    && health["book"]["agents"]["book_rules"] == want
                    && health["book"]["agents"]["state"] == "published"
                {
                    return set;
                }
                assert!(started.elapsed() < Duration::from_secs(30), "{health}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let empty = wait_for(0).await;
    assert!(!empty.builtin, "BUILTIN_RULES=false reaches the agents");
    let keys = add(&site, vec![rule("zero", "(+ ?x 0)", "?x", "GREEN")]).await;
    let set = wait_for(1).await;
    assert_eq!(set.rules[0].lhs, "(+ ?a 0)", "{set:?}");
    let (status, body) = call(
        reqwest::Method::PATCH,
        format!("{}/2tdx/rules/{}", site.base, keys[0]),
        Some(KEY),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    wait_for(0).await;
    site.stop().await;
}
