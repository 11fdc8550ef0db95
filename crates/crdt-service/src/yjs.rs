//! The Yjs document types — `TextCRDT`, `Map` and `Array` — on yrs.
//!
//! A state is a Yjs v1 update, base64: what `Y.encodeStateAsUpdate(doc)` gives in
//! JavaScript. Documents count offsets in UTF-16 code units, as Yjs does, so an
//! index means the same here and in a browser.
//!
//! Raw update bytes are not canonical (the same state can be split into blocks
//! differently, carry deleted content or not), so a state's identity is what it
//! contains: the ids of the items it inserted and the ids it deleted, each as
//! sorted, coalesced ranges per client.
//!
//! A document can hold several root types. The one a request reads is named by
//! `root`; without it, the document's only root, or the type's default name
//! (`text`, `map`, `array`) when the document has none.

use crate::clocks::Clocks;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use std::cell::RefCell;
use yrs::branch::{Branch, BranchPtr};
use yrs::encoding::read::Read;
use yrs::types::ToJson;
use yrs::types::text::YChange;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    Any, Array, ArrayRef, ClientID, Doc, GetString, IdSet, In, Map, MapRef, OffsetKind, Options, Out, ReadTxn,
    StateVector, Text, TextRef, Transact, TransactionMut, Update,
};

/// Largest update one state may be, decoded.
pub const MAX_UPDATE_BYTES: usize = 16 * 1024 * 1024;

/// Largest client id Yjs can carry (a JavaScript safe integer).
const MAX_CLIENT_ID: u64 = (1 << 53) - 1;

/// Which shared type a document's root is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `Y.Text`.
    Text,
    /// `Y.Map`.
    Map,
    /// `Y.Array`.
    Array,
}

impl Shape {
    /// The root name used when a document has no root yet and none is named.
    pub fn default_root(self) -> &'static str {
        match self {
            Shape::Text => "text",
            Shape::Map => "map",
            Shape::Array => "array",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Shape::Text => "a text",
            Shape::Map => "a map",
            Shape::Array => "an array",
        }
    }
}

/// One document state: its update bytes, its state vector and its identity,
/// and what was built on the way there, so that no work is done twice: the
/// decoded update (until a merge takes it) and the document it came from.
pub struct YState {
    bytes: Vec<u8>,
    state_vector: StateVector,
    identity: Vec<u8>,
    /// The clocks it inserted (deleted or not), per client.
    clocks: Clocks,
    update: RefCell<Option<Update>>,
    doc: Option<Doc>,
}

/// A document with the offset kind every document here uses.
fn new_doc(client_id: Option<u64>) -> Doc {
    let mut options = Options::default();
    if let Some(id) = client_id {
        options.client_id = ClientID::new(id);
    }
    options.offset_kind = OffsetKind::Utf16;
    Doc::with_options(options)
}

/// Appends clocks as sorted, coalesced ranges per client.
fn write_clocks(clocks: &Clocks, out: &mut Vec<u8>) {
    out.extend((clocks.client_count() as u64).to_le_bytes());
    for (client, ranges) in clocks.clients() {
        out.extend(client.to_le_bytes());
        out.extend((ranges.len() as u64).to_le_bytes());
        for r in ranges {
            out.extend(r.start.to_le_bytes());
            out.extend(r.end.to_le_bytes());
        }
    }
}

/// A state's identity: the clocks it inserted, then the ids it deleted.
fn identity_of(inserted: &Clocks, deleted: &IdSet) -> Vec<u8> {
    let mut out = Vec::new();
    write_clocks(inserted, &mut out);
    write_clocks(&Clocks::of(deleted), &mut out);
    out
}

/// Refuses bytes whose leading count (of clients, in updates and state
/// vectors alike) is more than the bytes left could hold. yrs reserves a hash
/// table of that size before reading on, so a few bytes could make it clear
/// hundreds of megabytes (found by the fuzz target).
fn check_declared_count(bytes: &[u8], what: &str) -> Result<(), String> {
    let (count, read) = leading_count(bytes).ok_or("not a Yjs v1 encoding: it does not start with a count")?;
    let left = (bytes.len() - read) as u64;
    if count <= left {
        Ok(())
    } else {
        Err(format!("declares {count} {what} in {left} bytes"))
    }
}

/// The count bytes start with (a lib0 variable-length unsigned integer, read by
/// yrs' own reader), and how many bytes it takes.
fn leading_count(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut cursor = yrs::encoding::read::Cursor::new(bytes);
    let count: u64 = cursor.read_var().ok()?;
    Some((count, cursor.next))
}

/// Refuses an update that has two sections for one client: yrs appends the
/// second's blocks to the first's, overlapping them, and integrates that into
/// a corrupt document that later reads freed memory (found by the fuzz target:
/// a segfault). Encoders write one section per client with blocks in it, so
/// the sections declared must be the clients that inserted something.
fn check_one_section_per_client(bytes: &[u8], identity: &[u8]) -> Result<(), String> {
    let sections = leading_count(bytes).map_or(0, |(count, _)| count);
    let clients = identity
        .get(..8)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
    if sections == clients {
        Ok(())
    } else {
        Err(format!(
            "not a Yjs v1 update: {sections} client sections for {clients} clients with blocks"
        ))
    }
}

/// Runs `work`, turning a panic inside yrs into this input's error. yrs
/// asserts on some malformed input instead of answering an error (a client id
/// over 53 bits, in builds with debug assertions; found by the fuzz target).
pub(crate) fn guarded<T>(work: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(format!("yrs cannot read it ({why})"))
    })
}

/// Decodes base64 text, naming what is wrong.
fn decode_base64(text: &str, what: &str) -> Result<Vec<u8>, String> {
    if text.len() / 4 * 3 > MAX_UPDATE_BYTES {
        return Err(format!("{what} is over {MAX_UPDATE_BYTES} bytes"));
    }
    BASE64
        .decode(text.trim())
        .map_err(|e| format!("{what} is not valid base64: {e}"))
}

impl YState {
    /// Parses a state: base64 of a Yjs v1 update.
    pub fn parse(state: Value) -> Result<YState, String> {
        let Value::String(text) = state else {
            return Err("a Yjs state is a base64 string (a v1 update)".into());
        };
        YState::from_bytes(decode_base64(&text, "the state")?)
    }

    /// A state from update bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<YState, String> {
        check_declared_count(&bytes, "clients")?;
        let update = Update::decode_v1(&bytes).map_err(|e| format!("not a Yjs v1 update: {e}"))?;
        let clocks = Clocks::of(&update.insertions(true));
        let identity = identity_of(&clocks, update.delete_set());
        check_one_section_per_client(&bytes, &identity)?;
        Ok(YState {
            identity,
            clocks,
            state_vector: update.state_vector(),
            update: RefCell::new(Some(update)),
            bytes,
            doc: None,
        })
    }

    /// The decoded update: kept from parsing the first time, decoded again after.
    fn take_update(&self) -> Result<Update, String> {
        match self.update.borrow_mut().take() {
            Some(update) => Ok(update),
            None => Update::decode_v1(&self.bytes).map_err(|e| format!("not a Yjs v1 update: {e}")),
        }
    }

    /// The empty document.
    pub fn empty() -> YState {
        YState::from_bytes(Update::new().encode_v1()).expect("the empty update decodes")
    }

    /// What the state contains, canonically: inserted and deleted ids.
    pub fn identity(&self) -> &[u8] {
        &self.identity
    }

    /// The state as it travels: base64.
    pub fn encoded(&self) -> String {
        BASE64.encode(&self.bytes)
    }

    /// The state loaded into a new document.
    fn doc(&self, client_id: Option<u64>) -> Result<Doc, String> {
        let doc = new_doc(client_id);
        {
            let mut txn = doc.transact_mut();
            let update = self.take_update()?;
            txn.apply_update(update)
                .map_err(|e| format!("the update does not apply: {e}"))?;
        }
        Ok(doc)
    }

    /// Merges states by applying them all to one document and encoding it
    /// (never `merge_updates`, which grows faster than linearly in the number
    /// of updates); a state that does not apply is blamed by index.
    ///
    /// States are applied gap-free ones first (full states before diffs), in
    /// an order that does not depend on the order given, and none is applied
    /// where yrs would read freed memory (see [`Clocks`]): such a state is
    /// refused, blamed by index.
    pub fn merge_all<'a>(states: impl IntoIterator<Item = &'a YState>) -> Result<YState, (usize, String)> {
        let states: Vec<&YState> = states.into_iter().collect();
        let mut order: Vec<usize> = (0..states.len()).collect();
        order.sort_by_cached_key(|&i| (states[i].clocks.gaps(), states[i].identity()));
        let doc = new_doc(None);
        {
            let mut txn = doc.transact_mut();
            let mut applied = Clocks::default();
            for i in order {
                let state = states[i];
                guarded(|| {
                    check_safe_to_apply(&txn, &applied, &state.clocks)?;
                    let update = state.take_update()?;
                    txn.apply_update(update)
                        .map_err(|e| format!("the update does not apply: {e}"))
                })
                .map_err(|e| (i, e))?;
                applied.add(&state.clocks);
            }
        }
        // Encoding can fail too (yrs cannot re-read some malformed updates it
        // left pending); blame the first state that fails alone.
        guarded(|| YState::of_doc(doc)).map_err(|e| {
            let alone = |s: &&YState| guarded(|| s.doc(None).and_then(YState::of_doc)).is_err();
            (states.iter().position(alone).unwrap_or(0), e)
        })
    }

    /// The state of a document, which it keeps for reading. Without pending
    /// updates, a document's insertions are every client's clocks from 0 to
    /// its state vector's, so its identity needs no decoding.
    fn of_doc(doc: Doc) -> Result<YState, String> {
        let txn = doc.transact();
        // Encoding a document with pending updates re-reads them, and yrs
        // panics (an `unwrap`) on some it cannot read back. Natively
        // `guarded` catches that; on Spin a panic aborts the instance, so
        // it is checked here first.
        if txn.has_missing_updates()
            && let Some(pending) = txn.store().pending_update()
            && let Err(e) = Update::decode_v1(&pending.update.encode_v1())
        {
            return Err(format!(
                "yrs cannot read it: the updates it holds without their history do not read back ({e})"
            ));
        }
        let bytes = txn.encode_state_as_update_v1(&StateVector::default());
        if txn.has_missing_updates() {
            drop(txn);
            let mut state = YState::from_bytes(bytes)?;
            state.doc = Some(doc);
            return Ok(state);
        }
        let snapshot = txn.snapshot();
        let mut insertions = IdSet::new();
        for (client, clock) in snapshot.state_map.iter() {
            if *clock > 0 {
                insertions.insert(yrs::ID::new(*client, 0), *clock);
            }
        }
        let clocks = Clocks::of(&insertions);
        let identity = identity_of(&clocks, &snapshot.delete_set);
        drop(txn);
        Ok(YState {
            bytes,
            state_vector: snapshot.state_map,
            identity,
            clocks,
            update: RefCell::new(None),
            doc: Some(doc),
        })
    }

    /// The readable value of the root `root` read as `shape`: a string, or JSON.
    pub fn value(&self, shape: Shape, root: Option<&str>) -> Result<Value, String> {
        let built;
        let doc = match &self.doc {
            Some(doc) => doc,
            None => {
                built = self.doc(None)?;
                &built
            }
        };
        let name = root_name(doc, shape, root)?;
        let txn = doc.transact();
        let Some(branch) = checked_root(&txn, shape, &name)? else {
            return Ok(match shape {
                Shape::Text => Value::String(String::new()),
                Shape::Map => Value::Object(Default::default()),
                Shape::Array => Value::Array(Vec::new()),
            });
        };
        Ok(match shape {
            Shape::Text => Value::String(TextRef::from(branch).get_string(&txn)),
            Shape::Map => any_to_json(MapRef::from(branch).to_json(&txn)),
            Shape::Array => any_to_json(ArrayRef::from(branch).to_json(&txn)),
        })
    }

    /// What a replica at `since` (a base64 v1 state vector; none: nothing)
    /// lacks of this state, as a base64 v1 update.
    pub fn diff(&self, since: Option<Value>) -> Result<Value, String> {
        let sv = match since {
            None | Some(Value::Null) => StateVector::default(),
            Some(Value::String(text)) => {
                let bytes = decode_base64(&text, "`since`")?;
                check_declared_count(&bytes, "clients").map_err(|e| format!("`since`: {e}"))?;
                StateVector::decode_v1(&bytes).map_err(|e| format!("`since` is not a Yjs v1 state vector: {e}"))?
            }
            Some(_) => return Err("`since` is a base64 Yjs state vector".into()),
        };
        let doc = self.doc(None)?;
        let update = doc.transact().encode_diff_v1(&sv);
        Ok(Value::String(BASE64.encode(update)))
    }

    /// The state vector, base64 v1: what to send as `since` to `/crdt/diff`.
    pub fn state_vector(&self) -> String {
        BASE64.encode(self.state_vector.encode_v1())
    }

    /// Applies `ops` (all or none) as the client `actor` (a decimal client id;
    /// none: a fresh random one, as Yjs picks).
    pub fn apply(
        &self,
        shape: Shape,
        ops: Vec<Value>,
        actor: Option<&str>,
        root: Option<&str>,
    ) -> Result<YState, String> {
        let client_id = match actor {
            None => None,
            Some(a) => match a.parse::<u64>() {
                Ok(id) if id <= MAX_CLIENT_ID => Some(id),
                _ => return Err(format!("`actor` is a Yjs client id, a number up to {MAX_CLIENT_ID}")),
            },
        };
        let doc = self.doc(client_id)?;
        let name = root_name(&doc, shape, root)?;
        checked_root(&doc.transact(), shape, &name)?;
        match shape {
            Shape::Text => {
                let text = doc.get_or_insert_text(name.as_str());
                apply_each::<TextOp>(&doc, ops, |txn, op| op.apply(&text, txn))?;
            }
            Shape::Map => {
                let map = doc.get_or_insert_map(name.as_str());
                apply_each::<MapOp>(&doc, ops, |txn, op| op.apply(&map, txn))?;
            }
            Shape::Array => {
                let array = doc.get_or_insert_array(name.as_str());
                apply_each::<ArrayOp>(&doc, ops, |txn, op| op.apply(&array, txn))?;
            }
        }
        YState::of_doc(doc)
    }
}

/// Refuses an update holding `incoming` clocks where applying it to the
/// document `txn` would make yrs read freed memory (see [`Clocks`]): where a
/// range the document holds resumes after a gap strictly inside the update's
/// clocks; or, while the document keeps pending updates (which yrs applies
/// again after each update), inside a pending one's. `applied` is every clock
/// applied so far; without pending updates it is what the document holds.
fn check_safe_to_apply(txn: &TransactionMut, applied: &Clocks, incoming: &Clocks) -> Result<(), String> {
    let keeps_pending = txn.has_missing_updates();
    let held = if keeps_pending {
        let integrated = Update::decode_v1(&txn.encode_diff_v1(&StateVector::default()))
            .map_err(|e| format!("yrs cannot re-read the merged document: {e}"))?;
        Cow::Owned(Clocks::of(&integrated.insertions(true)))
    } else {
        Cow::Borrowed(applied)
    };
    let refuse = |(client, clock): (u64, u32)| {
        format!(
            "it holds clocks of client {client} around {clock}, where the states before it resume after a gap; \
             yrs cannot merge that safely (the states disagree about client {client}'s history, or fill a gap \
             another state left): merge them in a different grouping"
        )
    };
    if let Some(at) = incoming.straddled_resumption(&held) {
        return Err(refuse(at));
    }
    if keeps_pending {
        let pending = applied.without(&held);
        let mut after = held.into_owned();
        after.add(incoming);
        if let Some(at) = pending.straddled_resumption(&after) {
            return Err(refuse(at));
        }
    }
    Ok(())
}

/// Runs every op in one transaction; the first failing op is named and the
/// document is thrown away by the caller.
fn apply_each<O: for<'de> Deserialize<'de>>(
    doc: &Doc,
    ops: Vec<Value>,
    mut run: impl FnMut(&mut TransactionMut, O) -> Result<(), String>,
) -> Result<(), String> {
    let parsed = crate::kinds::parse_ops::<O>(ops)?;
    let mut txn = doc.transact_mut();
    for (i, op) in parsed.into_iter().enumerate() {
        run(&mut txn, op).map_err(|e| format!("op {i}: {e}"))?;
    }
    Ok(())
}

/// The root a request reads: the named one, the document's only one, or the
/// shape's default name.
fn root_name(doc: &Doc, shape: Shape, root: Option<&str>) -> Result<String, String> {
    if let Some(root) = root {
        return Ok(root.to_string());
    }
    let txn = doc.transact();
    let mut names: Vec<&str> = txn.root_refs().map(|(name, _)| name).collect();
    names.sort_unstable();
    match names.as_slice() {
        [] => Ok(shape.default_root().to_string()),
        [only] => Ok(only.to_string()),
        many => Err(format!(
            "the document has {} roots ({}); name one with `root`",
            many.len(),
            many.join(", ")
        )),
    }
}

/// The root `name`, if the document has it, after checking it holds `shape`.
fn checked_root<T: ReadTxn>(txn: &T, shape: Shape, name: &str) -> Result<Option<BranchPtr>, String> {
    let Some(out) = txn.get(name) else {
        return Ok(None);
    };
    let branch = branch_of(out).ok_or_else(|| format!("root `{name}` is not {}", shape.noun()))?;
    check_shape(txn, shape, name, branch)?;
    Ok(Some(branch))
}

/// The branch behind a root, whatever type it was last read as.
fn branch_of(out: Out) -> Option<BranchPtr> {
    match out {
        Out::UndefinedRef(branch) => Some(branch),
        Out::YText(text) => Some(BranchPtr::from(AsRef::<Branch>::as_ref(&text))),
        Out::YMap(map) => Some(BranchPtr::from(AsRef::<Branch>::as_ref(&map))),
        Out::YArray(array) => Some(BranchPtr::from(AsRef::<Branch>::as_ref(&array))),
        _ => None,
    }
}

/// Whether a root's content is what `shape` holds: map entries for a map,
/// a sequence of characters (and embeds) for text, a sequence of values for an array.
fn check_shape<T: ReadTxn>(txn: &T, shape: Shape, name: &str, branch: BranchPtr) -> Result<(), String> {
    let entries = MapRef::from(branch).len(txn);
    let sequence = TextRef::from(branch).len(txn);
    let text_chunks = TextRef::from(branch).diff(txn, YChange::identity);
    let text_len: u32 = text_chunks
        .iter()
        .map(|chunk| match &chunk.insert {
            Out::Any(Any::String(s)) => s.encode_utf16().count() as u32,
            _ => 1,
        })
        .sum();
    let holds_text = text_chunks
        .iter()
        .any(|chunk| matches!(chunk.insert, Out::Any(Any::String(_))));
    let found = match (entries, sequence) {
        (0, 0) => None,
        (_, 0) => Some(Shape::Map),
        (0, _) if !holds_text => Some(Shape::Array),
        (0, _) if text_len == sequence => Some(Shape::Text),
        (0, _) => return Err(format!("root `{name}` mixes text and array values")),
        _ => return Err(format!("root `{name}` mixes map entries and sequence content")),
    };
    match found {
        Some(found) if found != shape => Err(format!("root `{name}` holds {}, not {}", found.noun(), shape.noun())),
        _ => Ok(()),
    }
}

fn any_to_json(any: Any) -> Value {
    serde_json::to_value(&any).unwrap_or(Value::Null)
}

fn json_to_any(value: Value) -> Result<Any, String> {
    serde_json::from_value(value).map_err(|e| format!("not a value Yjs can hold: {e}"))
}

/// An edit to a `Y.Text`; indices count UTF-16 code units.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum TextOp {
    /// Inserts `text` at `index`.
    Insert { index: u32, text: String },
    /// Deletes `len` units from `index`.
    Delete { index: u32, len: u32 },
}

impl TextOp {
    fn apply(self, text: &TextRef, txn: &mut TransactionMut) -> Result<(), String> {
        let len = text.len(txn);
        match self {
            TextOp::Insert { index, text: s } => {
                within(index, 0, len)?;
                text.insert(txn, index, &s);
            }
            TextOp::Delete { index, len: n } => {
                within(index, n, len)?;
                text.remove_range(txn, index, n);
            }
        }
        Ok(())
    }
}

/// An edit to a `Y.Map`.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum MapOp {
    /// Sets `key` to a JSON `value`.
    Set { key: String, value: Value },
    /// Removes `key`.
    Remove { key: String },
}

impl MapOp {
    fn apply(self, map: &MapRef, txn: &mut TransactionMut) -> Result<(), String> {
        match self {
            MapOp::Set { key, value } => {
                map.insert(txn, key, In::from(json_to_any(value)?));
            }
            MapOp::Remove { key } => {
                map.remove(txn, &key);
            }
        }
        Ok(())
    }
}

/// An edit to a `Y.Array`.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum ArrayOp {
    /// Inserts JSON `values` at `index`.
    Insert { index: u32, values: Vec<Value> },
    /// Appends JSON `values`.
    Push { values: Vec<Value> },
    /// Deletes `len` values from `index`.
    Delete { index: u32, len: u32 },
}

impl ArrayOp {
    fn apply(self, array: &ArrayRef, txn: &mut TransactionMut) -> Result<(), String> {
        let len = array.len(txn);
        match self {
            ArrayOp::Insert { index, values } => {
                within(index, 0, len)?;
                let values = values.into_iter().map(json_to_any).collect::<Result<Vec<_>, _>>()?;
                array.insert_range(txn, index, values);
            }
            ArrayOp::Push { values } => {
                let values = values.into_iter().map(json_to_any).collect::<Result<Vec<_>, _>>()?;
                array.insert_range(txn, len, values);
            }
            ArrayOp::Delete { index, len: n } => {
                within(index, n, len)?;
                array.remove_range(txn, index, n);
            }
        }
        Ok(())
    }
}

/// `index..index + n` must lie within `0..len`.
fn within(index: u32, n: u32, len: u32) -> Result<(), String> {
    match index.checked_add(n) {
        Some(end) if end <= len => Ok(()),
        _ => Err(format!("range {index}..{index}+{n} is outside 0..{len}")),
    }
}
