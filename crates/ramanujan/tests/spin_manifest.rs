//! `spin.toml` against Spin's manifest version 2: every key is one the
//! manifest knows (unknown keys are refused, as Spin refuses them), every
//! trigger names a component that exists, every route is well formed and
//! every component has a build command. And the built components are what the
//! manifest says: each `source` is a WebAssembly component that exports
//! `wasi:http/handler` and imports no Spin interface the manifest does not
//! grant.
//!
//! The schema here is the subset of Spin's `AppManifest` (spin-manifest,
//! `schema/v2.rs`) this project uses, with every other key Spin knows listed
//! as allowed, so a typo is refused rather than ignored.

mod common;

use common::{root, spin_components};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    spin_manifest_version: u32,
    application: Application,
    #[serde(default)]
    variables: BTreeMap<String, Variable>,
    trigger: Triggers,
    component: BTreeMap<String, Component>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Application {
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    authors: Vec<String>,
    #[serde(default)]
    targets: Vec<toml::Value>,
    #[serde(default)]
    trigger: toml::Table,
    #[serde(default)]
    tool: toml::Table,
}

/// An application variable: a default, or required (and maybe secret).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Variable {
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    #[allow(dead_code)]
    secret: bool,
}

/// The application variables a template such as `http://{{ host }}:80` names.
fn template_names(template: &str) -> Vec<String> {
    template
        .split("{{")
        .skip(1)
        .filter_map(|rest| rest.split_once("}}"))
        .map(|(name, _)| name.trim().to_string())
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Triggers {
    http: Vec<HttpTrigger>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct HttpTrigger {
    route: String,
    component: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    executor: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Component {
    source: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    files: Vec<toml::Value>,
    #[serde(default)]
    exclude_files: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    ai_models: Vec<String>,
    build: Build,
    #[serde(default)]
    tool: toml::Table,
    #[serde(default)]
    dependencies_inherit_configuration: bool,
    #[serde(default)]
    dependencies: toml::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Build {
    command: String,
    #[serde(default)]
    workdir: Option<String>,
    #[serde(default)]
    watch: Vec<String>,
}

fn manifest(text: &str) -> Result<Manifest, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

fn is_kebab(id: &str) -> bool {
    !id.is_empty()
        && id
            .split('-')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
}

/// The checks beyond the shape: versions, names, routes, references, builds.
fn check(m: &Manifest) -> Vec<String> {
    let mut problems = Vec::new();
    if m.spin_manifest_version != 2 {
        problems.push(format!("spin_manifest_version is {}, not 2", m.spin_manifest_version));
    }
    if !is_kebab(&m.application.name) {
        problems.push(format!("application name `{}` is not kebab-case", m.application.name));
    }
    for name in m.variables.keys() {
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            problems.push(format!("variable `{name}` is not lower_snake_case"));
        }
    }
    for (name, v) in &m.variables {
        if v.required == v.default.is_some() {
            problems.push(format!(
                "variable `{name}` must have either a default or required = true"
            ));
        }
    }
    for (name, c) in &m.component {
        let templates = c.variables.values().chain(&c.allowed_outbound_hosts);
        for used in templates.flat_map(|t| template_names(t)) {
            if !m.variables.contains_key(&used) {
                problems.push(format!(
                    "component `{name}` uses `{{{{ {used} }}}}`, which [variables] does not declare"
                ));
            }
        }
    }
    let mut routes = std::collections::BTreeSet::new();
    for t in &m.trigger.http {
        if !m.component.contains_key(&t.component) {
            problems.push(format!("route {} names no component `{}`", t.route, t.component));
        }
        let wildcard_inside = t.route.trim_end_matches("/...").contains("...");
        if !t.route.starts_with('/') || wildcard_inside {
            problems.push(format!("route `{}` is not a Spin route", t.route));
        }
        if !routes.insert(t.route.clone()) {
            problems.push(format!("route `{}` appears twice", t.route));
        }
    }
    for (name, c) in &m.component {
        if !is_kebab(name) {
            problems.push(format!("component `{name}` is not kebab-case"));
        }
        if c.build.command.trim().is_empty() {
            problems.push(format!("component `{name}` has no build command"));
        }
        if !m.trigger.http.iter().any(|t| &t.component == name) {
            problems.push(format!("component `{name}` has no route"));
        }
    }
    problems
}

#[test]
fn spin_toml_is_a_valid_version_2_manifest() {
    let text = std::fs::read_to_string(root().join("spin.toml")).unwrap();
    let m = manifest(&text).unwrap_or_else(|e| panic!("spin.toml: {e}"));
    assert_eq!(check(&m), Vec::<String>::new());
    // Every route of a component that is built (the README's table) is served.
    for prefix in [
        "/egraph/",
        "/stream/red",
        "/stream/blue",
        "/stream/green",
        "/crdt/",
        "/colors/",
        "/agents/",
        "/agent/",
        "/nats/webhook/:topic",
    ] {
        assert!(
            m.trigger.http.iter().any(|t| t.route.starts_with(prefix)),
            "no route for {prefix}"
        );
    }
}

#[test]
fn the_checks_refuse_what_spin_refuses() {
    let text = std::fs::read_to_string(root().join("spin.toml")).unwrap();
    // An unknown key, at each level.
    for (from, to) in [
        (
            "spin_manifest_version = 2",
            "spin_manifest_version = 2\nspin_version = \"1\"",
        ),
        (
            "allowed_outbound_hosts = []",
            "allowed_outbound_hosts = []\nallowed_hosts = []",
        ),
        (
            "component = \"crdt-service\"",
            "component = \"crdt-service\"\nmethod = \"GET\"",
        ),
        (
            "[component.crdt-service.build]\n",
            "[component.crdt-service.build]\ncmd = \"make\"\n",
        ),
    ] {
        assert!(text.contains(from), "{from}");
        let broken = text.replacen(from, to, 1);
        let error = manifest(&broken).err().unwrap_or_else(|| panic!("accepted: {to}"));
        assert!(error.contains("unknown field"), "{error}");
    }
    // A dangling component name and a bad route.
    let broken = text
        .replacen("component = \"crdt-service\"", "component = \"crdt\"", 1)
        .replacen("route = \"/colors/...\"", "route = \"/colors/.../x\"", 1);
    let problems = check(&manifest(&broken).unwrap());
    assert!(
        problems.iter().any(|p| p.contains("names no component `crdt`")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("is not a Spin route")),
        "{problems:?}"
    );
    // A template naming an undeclared variable, and a variable with neither default nor required.
    let broken = text
        .replacen("agents = \"{{ agents }}\"", "agents = \"{{ agent_list }}\"", 1)
        .replacen(
            "max_terms = { default = \"200000\" }",
            "max_terms = { secret = true }",
            1,
        );
    let problems = check(&manifest(&broken).unwrap());
    assert!(
        problems.iter().any(|p| p.contains("`{{ agent_list }}`")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("variable `max_terms`")),
        "{problems:?}"
    );
    let wrong_version = text.replacen("spin_manifest_version = 2", "spin_manifest_version = 1", 1);
    assert!(!check(&manifest(&wrong_version).unwrap()).is_empty());
}

/// What a component exports and imports, by interface name.
fn interfaces(wasm: &[u8]) -> (Vec<String>, Vec<String>) {
    use wasmparser::{Parser, Payload};
    let (mut exports, mut imports) = (Vec::new(), Vec::new());
    let mut depth = 0;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.expect("a valid WebAssembly binary") {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) if depth > 0 => depth -= 1,
            Payload::ComponentExportSection(section) if depth == 0 => {
                for export in section {
                    exports.push(export.unwrap().name.0.to_string());
                }
            }
            Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    imports.push(import.unwrap().name.0.to_string());
                }
            }
            _ => {}
        }
    }
    (exports, imports)
}

#[test]
fn every_source_is_a_component_serving_wasi_http() {
    let text = std::fs::read_to_string(root().join("spin.toml")).unwrap();
    let m = manifest(&text).unwrap();
    let built = spin_components();
    for (name, c) in &m.component {
        // `spin build` writes the source path; the test's build writes the same file name.
        let file = Path::new(&c.source).file_name().unwrap();
        assert!(
            c.source.starts_with("spin/target/wasm32-wasip2/release/"),
            "{name}: {}",
            c.source
        );
        let wasm = std::fs::read(built.join(file)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (exports, imports) = interfaces(&wasm);
        assert!(
            exports.iter().any(|e| e.starts_with("wasi:http/handler@0.3")),
            "{name} exports {exports:?}"
        );
        for import in &imports {
            let granted = match import.split('/').next().unwrap_or_default() {
                "spin:key-value" | "fermyon:spin/key-value" => !c.key_value_stores.is_empty(),
                "spin:variables" | "fermyon:spin/variables" => !c.variables.is_empty(),
                spin if spin.starts_with("spin:") || spin.starts_with("fermyon:") => false,
                _ => true,
            };
            assert!(granted, "{name} imports {import}, which spin.toml does not grant");
        }
    }
}

/// The manifest's variable defaults are the network's typed defaults
/// (`ramanujan_agent::defaults`), which the native command line takes too.
#[test]
fn spin_toml_defaults_are_the_typed_defaults() {
    use ramanujan_agent::defaults;
    let text = std::fs::read_to_string(root().join("spin.toml")).unwrap();
    let m = manifest(&text).unwrap();
    for (name, want) in [
        ("topology_seed", defaults::TOPOLOGY_SEED.to_string()),
        ("num_agents", defaults::EXPANDER_AGENTS.to_string()),
        ("degree", defaults::EXPANDER_DEGREE.to_string()),
        ("step_time_ms", defaults::HOSTED_STEP_TIME_MS.to_string()),
        ("max_terms", defaults::MAX_TERMS.to_string()),
        ("goal_nodes", defaults::GOAL_NODES.to_string()),
        ("sync_interval_ms", defaults::SYNC_INTERVAL_MS.to_string()),
        ("health_timeout_ms", defaults::HEALTH_TIMEOUT_MS.to_string()),
    ] {
        let default = m.variables.get(name).and_then(|v| v.default.clone());
        assert_eq!(default.as_deref(), Some(want.as_str()), "spin.toml's `{name}`");
    }
}
