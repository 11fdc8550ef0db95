//! `spin:key-value` and `spin:variables`, in memory.

use crate::{Ctx, SpinState};
use std::sync::Arc;
use wasmtime::component::{Accessor, HasData, Linker, Resource, ResourceTable};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "spin-imports",
        imports: { default: async | store | trappable },
        with: {
            "spin:key-value/key-value.store": super::OpenStore,
        },
    });
}

use bindings::spin::key_value::key_value;
use bindings::spin::variables::variables;

/// An open store: its label.
pub struct OpenStore {
    label: String,
}

/// What the interfaces see of a request's store data.
pub struct SpinView<'a> {
    table: &'a mut ResourceTable,
    state: &'a Arc<SpinState>,
}

/// Marks the interfaces' implementation.
pub struct Spin;

impl HasData for Spin {
    type Data<'a> = SpinView<'a>;
}

fn view(ctx: &mut Ctx) -> SpinView<'_> {
    SpinView {
        table: &mut ctx.table,
        state: &ctx.spin,
    }
}

/// Adds both interfaces to `linker`.
pub fn add_to_linker(linker: &mut Linker<Ctx>) -> wasmtime::Result<()> {
    key_value::add_to_linker::<Ctx, Spin>(linker, view)?;
    variables::add_to_linker::<Ctx, Spin>(linker, view)?;
    Ok(())
}

fn label_of<T>(store: &Accessor<T, Spin>, handle: &Resource<OpenStore>) -> wasmtime::Result<String> {
    store.with(|mut access| Ok(access.get().table.get(handle)?.label.clone()))
}

fn with_store<T, R>(
    store: &Accessor<T, Spin>,
    handle: &Resource<OpenStore>,
    f: impl FnOnce(&mut std::collections::HashMap<String, Vec<u8>>) -> R,
) -> wasmtime::Result<Result<R, key_value::Error>> {
    let label = label_of(store, handle)?;
    store.with(|mut access| {
        let mut stores = access.get().state.stores.lock().unwrap_or_else(|e| e.into_inner());
        Ok(match stores.get_mut(&label) {
            Some(map) => Ok(f(map)),
            None => Err(key_value::Error::NoSuchStore),
        })
    })
}

impl<T> key_value::HostStoreWithStore<T> for Spin {
    async fn open(
        store: &Accessor<T, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, key_value::Error>> {
        store.with(|mut access| {
            let view = access.get();
            let granted = view
                .state
                .stores
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&label);
            if !granted {
                return Ok(Err(key_value::Error::NoSuchStore));
            }
            Ok(Ok(view.table.push(OpenStore { label })?))
        })
    }

    async fn get(
        store: &Accessor<T, Self>,
        handle: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, key_value::Error>> {
        with_store(store, &handle, |map| map.get(&key).cloned())
    }

    async fn set(
        store: &Accessor<T, Self>,
        handle: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), key_value::Error>> {
        with_store(store, &handle, |map| {
            map.insert(key, value);
        })
    }

    async fn delete(
        store: &Accessor<T, Self>,
        handle: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), key_value::Error>> {
        with_store(store, &handle, |map| {
            map.remove(&key);
        })
    }

    async fn exists(
        store: &Accessor<T, Self>,
        handle: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, key_value::Error>> {
        with_store(store, &handle, |map| map.contains_key(&key))
    }

    async fn drop(store: &Accessor<T, Self>, handle: Resource<OpenStore>) -> wasmtime::Result<()> {
        store.with(|mut access| {
            access.get().table.delete(handle)?;
            Ok(())
        })
    }

    async fn get_keys(
        store: &Accessor<T, Self>,
        handle: Resource<OpenStore>,
    ) -> wasmtime::Result<(
        wasmtime::component::StreamReader<String>,
        wasmtime::component::FutureReader<Result<(), key_value::Error>>,
    )> {
        let keys = with_store(store, &handle, |map| {
            let mut keys: Vec<String> = map.keys().cloned().collect();
            keys.sort();
            keys
        })?;
        store.with(|mut access| {
            let (keys, result) = match keys {
                Ok(keys) => (keys, Ok(())),
                Err(e) => (Vec::new(), Err(e)),
            };
            let stream = wasmtime::component::StreamReader::new(&mut access, keys)?;
            let future =
                wasmtime::component::FutureReader::new(&mut access, async move { wasmtime::Result::<_>::Ok(result) })?;
            Ok((stream, future))
        })
    }
}

impl key_value::HostStore for SpinView<'_> {}

impl key_value::Host for SpinView<'_> {}

impl<T> variables::HostWithStore<T> for Spin {
    async fn get(store: &Accessor<T, Self>, name: String) -> wasmtime::Result<Result<String, variables::Error>> {
        store.with(|mut access| {
            let variables = access.get().state.variables.lock().unwrap_or_else(|e| e.into_inner());
            Ok(variables.get(&name).cloned().ok_or(variables::Error::Undefined(name)))
        })
    }
}

impl variables::Host for SpinView<'_> {}
