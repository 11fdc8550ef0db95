//! # spin-test-host
//!
//! Runs a Spin HTTP component (spin-sdk 7: `wasi:http/handler@0.3.0`) the way
//! Spin does, for tests on machines without Spin: a fresh instance per
//! request, `wasi:http` from wasmtime-wasi-http (outbound requests included),
//! and Spin's own interfaces implemented in memory:
//!
//! - `spin:key-value/key-value@3.0.0`: the stores named at creation, each a map
//!   shared by every request (and readable by the test, [`SpinHost::kv_get`]);
//!   other labels get `no-such-store`, as Spin answers for a store the
//!   manifest does not grant;
//! - `spin:variables/variables@3.0.0`: the variables set with
//!   [`SpinHost::set_variable`]; others are `undefined`.
//!
//! The component under test is the same `.wasm` that `spin.toml` deploys.

mod spin_interfaces;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use wasmtime::Result;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::error::Context as _;
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Largest request body the host accepts.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// What every request's instance shares: the key-value stores and the variables.
#[derive(Default)]
pub struct SpinState {
    stores: Mutex<HashMap<String, HashMap<String, Vec<u8>>>>,
    variables: Mutex<HashMap<String, String>>,
}

/// One request's store data.
pub struct Ctx {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    spin: Arc<SpinState>,
}

impl WasiView for Ctx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Ctx {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

/// A component, ready to answer requests.
pub struct SpinHost {
    engine: Engine,
    pre: ServicePre<Ctx>,
    state: Arc<SpinState>,
    environment: Vec<(String, String)>,
}

impl SpinHost {
    /// Loads `wasm`, granting the key-value stores `stores` and the environment
    /// `environment`. A file is compiled once per process (compiling is the
    /// slow part); every host of it gets stores and variables of its own.
    pub fn new(wasm: &Path, stores: &[&str], environment: &[(&str, &str)]) -> Result<SpinHost> {
        let (engine, component) = compiled(wasm)?;
        let mut linker = Linker::<Ctx>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi::p3::add_to_linker(&mut linker)?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
        spin_interfaces::add_to_linker(&mut linker)?;
        let pre = ServicePre::new(linker.instantiate_pre(&component)?)?;
        let state = SpinState::default();
        {
            let mut granted = state.stores.lock().expect("fresh lock");
            for label in stores {
                granted.insert(label.to_string(), HashMap::new());
            }
        }
        Ok(SpinHost {
            engine,
            pre,
            state: Arc::new(state),
            environment: environment
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    }

    /// Sets a Spin variable for every later request.
    pub fn set_variable(&self, name: &str, value: &str) {
        let mut variables = self.state.variables.lock().unwrap_or_else(|e| e.into_inner());
        variables.insert(name.to_string(), value.to_string());
    }

    /// A value in a key-value store, as the component left it.
    pub fn kv_get(&self, label: &str, key: &str) -> Option<Vec<u8>> {
        let stores = self.state.stores.lock().unwrap_or_else(|e| e.into_inner());
        stores.get(label)?.get(key).cloned()
    }

    /// The keys of a key-value store that start with `prefix`, sorted.
    pub fn kv_keys(&self, label: &str, prefix: &str) -> Vec<String> {
        let stores = self.state.stores.lock().unwrap_or_else(|e| e.into_inner());
        let mut keys: Vec<String> = stores
            .get(label)
            .map(|store| store.keys().filter(|k| k.starts_with(prefix)).cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    }

    /// Answers one request with a fresh instance, as Spin does.
    pub async fn handle(&self, request: http::Request<Full<Bytes>>) -> Result<http::Response<Bytes>> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.inherit_stderr();
        for (k, v) in &self.environment {
            wasi.env(k, v);
        }
        let mut store = Store::new(
            &self.engine,
            Ctx {
                table: ResourceTable::new(),
                wasi: wasi.build(),
                http: WasiHttpCtx::new(),
                spin: self.state.clone(),
            },
        );
        let service = self.pre.instantiate_async(&mut store).await?;
        let (request, request_io) = wasmtime_wasi_http::p3::Request::from_http(Default::default(), request);
        store
            .run_concurrent(async |accessor| {
                let respond = async {
                    let response = service.handle(accessor, request).await??;
                    let response = accessor.with(|access| response.into_http(access, async { Ok(()) }))?;
                    let (parts, body) = response.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map_err(|e| wasmtime::format_err!("{e:?}"))?
                        .to_bytes();
                    wasmtime::Result::Ok(http::Response::from_parts(parts, body))
                };
                let (response, ()) = tokio::try_join!(respond, async {
                    request_io.await.map_err(|e| wasmtime::format_err!("{e:?}"))
                })?;
                wasmtime::Result::Ok(response)
            })
            .await?
    }

    /// Serves the component on `addr` (port 0: any free port) until the task is
    /// aborted; answers the address. A request the component fails on (a trap)
    /// gets a 500, and the host goes on.
    pub async fn serve(self: Arc<Self>, addr: SocketAddr) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let host = self.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let host = host.clone();
                        async move { Ok::<_, std::convert::Infallible>(host.answer(request).await) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Ok((addr, task))
    }

    async fn answer(&self, request: http::Request<hyper::body::Incoming>) -> http::Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = match http_body_util::Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(body) => body.to_bytes(),
            Err(e) => return plain(http::StatusCode::PAYLOAD_TOO_LARGE, format!("request body: {e}")),
        };
        let mut request = http::Request::from_parts(parts, Full::new(body));
        // wasi:http wants an absolute URI, as Spin gives it.
        if request.uri().authority().is_none() {
            let host = request
                .headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost")
                .to_string();
            let path = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
            if let Ok(uri) = format!("http://{host}{path}").parse() {
                *request.uri_mut() = uri;
            }
        }
        match self.handle(request).await {
            Ok(response) => response.map(Full::new),
            Err(e) => {
                tracing::warn!(error = %format!("{e:?}"), "the component failed");
                plain(
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the component failed: {e}"),
                )
            }
        }
    }
}

/// The engine and `wasm` compiled, shared by every host of the same file in this process.
fn compiled(wasm: &Path) -> Result<(Engine, Component)> {
    static COMPILED: Mutex<Option<(Engine, HashMap<PathBuf, Component>)>> = Mutex::new(None);
    let mut compiled = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
    if compiled.is_none() {
        let mut config = Config::new();
        config.wasm_component_model_async(true);
        *compiled = Some((Engine::new(&config)?, HashMap::new()));
    }
    let (engine, components) = compiled.as_mut().expect("just set");
    let path = wasm
        .canonicalize()
        .with_context(|| format!("loading {}", wasm.display()))?;
    if !components.contains_key(&path) {
        let component = Component::from_file(engine, &path).with_context(|| format!("loading {}", wasm.display()))?;
        components.insert(path.clone(), component);
    }
    Ok((engine.clone(), components[&path].clone()))
}

fn plain(status: http::StatusCode, message: String) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(Bytes::from(message)));
    *response.status_mut() = status;
    response
}
