//! The component's state: the rule book (kept in a [`BookStore`] before any
//! change is answered), the site's name, the sync key, and how syncing with
//! the configured peer went.

use crate::book::{BadState, BookEntry, BookState, Changed};
use crate::brief::{self, BriefAnswer, BriefSync, Summary};
use crate::rule::Rule;
use crate::store::BookStore;
use futures_util::future::BoxFuture;
use ramanujan_core::color::Color;
use ramanujan_http::Offload;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// How a site is set up.
#[derive(Clone)]
pub struct TdxConfig {
    /// This site's name: the actor of its edits to the book, unless `actor`.
    pub site: String,
    /// The actor of this process's edits, when it is not `site`: where
    /// several short-lived instances edit one site's book at once (Spin),
    /// each must be an actor of its own ([`crate::kv_book::instance_actor`]),
    /// or two concurrent edits would carry the same dot and drop each other.
    pub actor: Option<String>,
    /// The bearer key `/2tdx/sync` asks of callers and sends to the peer
    /// (`TDX_API_KEY`); `None`: sync is open (the embedded quick start).
    pub api_key: Option<String>,
    /// The host's API keys (`API_KEYS`), when it asks for them: a key of
    /// write scope is taken wherever the sync key is, so that on a host that
    /// asks for both one key does (the host's guard wants an API key on the
    /// book's mutating routes, and they check the sync key too).
    pub host_keys: Option<ramanujan_http::access::ApiKeys>,
    /// The peer's base URL (`PEER_ENDPOINT`, or `VERS_ENDPOINT`), if any.
    pub peer: Option<String>,
    /// Each sync attempt's bound (`MAX_LATENCY_MS`, 100).
    pub max_latency: Duration,
    /// Whether the host's agents run the core's built-in rules beside the
    /// book's (`BUILTIN_RULES`): what a mined rule must not already follow
    /// from, with `"known": "book"`.
    pub builtin_rules: bool,
    /// The host's request timeout (`TIMEOUT_SECONDS`): a mining run's budget
    /// is kept to four fifths of it, so what it found is answered in time
    /// and no run outlives its request.
    pub time_ceiling: Duration,
}

impl Default for TdxConfig {
    fn default() -> Self {
        TdxConfig {
            site: "local".into(),
            actor: None,
            api_key: None,
            host_keys: None,
            peer: None,
            max_latency: Duration::from_millis(100),
            builtin_rules: true,
            time_ceiling: Duration::from_millis(crate::mine::MAX_TIME_MS),
        }
    }
}

/// The peer, as the host reaches it.
pub trait Peer: Send + Sync {
    /// Sends this site's book to the peer's `POST /2tdx/sync` and answers
    /// what the peer sent back (what this site lacks), within `bound`.
    fn sync<'a>(&'a self, book: &'a BookState, bound: Duration) -> BoxFuture<'a, Result<BookState, String>>;

    /// Sends a sync in brief to the peer's `POST /2tdx/sync/brief` and answers
    /// its answer, within `bound`; `Ok(None)` if the peer does not sync in
    /// brief (then the whole book is sent).
    fn sync_brief<'a>(
        &'a self,
        brief: &'a BriefSync,
        bound: Duration,
    ) -> BoxFuture<'a, Result<Option<BriefAnswer>, String>> {
        let _ = (brief, bound);
        Box::pin(async { Ok(None) })
    }
}

/// Every this many syncs with the peer, one sends the whole book even when
/// one in brief would do: a safety net should the peer have gone back to an
/// older state (restored from a backup) without losing a key.
pub const WHOLE_SYNC_EVERY: u64 = 12;

/// How syncing with the peer has gone.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct PeerStatus {
    /// The peer's base URL.
    pub endpoint: Option<String>,
    /// `unknown` (not tried yet), `in_sync` (the last attempt merged), or
    /// `failing` (the last attempt failed; local rules untouched).
    pub state: &'static str,
    /// Attempts that merged.
    pub successes: u64,
    /// Attempts that failed (timed out, refused, or answered what does not merge).
    pub failures: u64,
    /// Failures since the last success.
    pub consecutive_failures: u64,
    /// Of the successes, syncs in brief (what changed since, beside a
    /// summary) and syncs of the whole book.
    pub brief: u64,
    /// See `brief`.
    pub whole: u64,
    /// Why the last failed attempt failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// What the host's agents were given of the book.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct AgentsStatus {
    /// `none` (no agent network takes rules from this book), `running` (the
    /// in-process agents run the book's enabled rules but those `left_out`),
    /// `published` (written to the broker's bucket `RAMANUJAN_RULES`, which
    /// agents on the broker watch and take as they read it), or `failing`
    /// (the last change did not reach them: they keep the rules they run).
    pub state: &'static str,
    /// Whether they also run the core's built-in rules.
    pub builtin: bool,
    /// How many of the book's rules they run.
    pub book_rules: usize,
    /// Enabled rules they do not run, by key, with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<(String, String)>,
    /// Why, when they run none of the book's rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Why a change could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// The input (a state, a rule) is refused.
    #[error("{0}")]
    Bad(String),
    /// No such rule in the book.
    #[error("no rule {0} in the book")]
    NotFound(String),
    /// The store failed; nothing changed.
    #[error("the rule book could not be stored: {0}")]
    Store(String),
}

impl From<BadState> for ChangeError {
    fn from(e: BadState) -> Self {
        ChangeError::Bad(e.0)
    }
}

/// The transduction component of one site.
pub struct TdxService {
    config: TdxConfig,
    book: RwLock<BookState>,
    /// The book in brief, kept with each change (see [`brief`]).
    summary: RwLock<Summary>,
    /// What this site and its peer held when they last synced (`None`: not
    /// since start, or the last attempt failed: the next sends the whole book).
    peer_base: Mutex<Option<Summary>>,
    /// Whether the peer syncs in brief (`false` once it answered 404).
    peer_brief: std::sync::atomic::AtomicBool,
    store: Option<Arc<dyn BookStore>>,
    /// Where mining runs (CPU-heavy: seconds).
    pub offload: Arc<dyn Offload>,
    peer: Option<Arc<dyn Peer>>,
    peer_status: Mutex<PeerStatus>,
    syncs_served: AtomicU64,
    syncs_refused: AtomicU64,
    /// Serialises changes, so each is stored in order before the next.
    writing: Mutex<()>,
    /// Called after each change (see [`TdxService::on_change`]).
    listeners: Mutex<Vec<Box<dyn Fn() + Send + Sync>>>,
    agents: Mutex<AgentsStatus>,
}

/// Counters for `/2tdx/health`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TdxStats {
    /// Rules in the book.
    pub rules: usize,
    /// Of them, enabled.
    pub enabled: usize,
    /// What the book reads, as a digest (equal on two sites that read the same book).
    pub digest: String,
    /// `POST /2tdx/sync` requests merged.
    pub syncs_served: u64,
    /// `POST /2tdx/sync` requests refused (bad key, or a state that does not merge).
    pub syncs_refused: u64,
    /// The configured peer.
    pub peer: PeerStatus,
    /// What the host's agents run of the book.
    pub agents: AgentsStatus,
}

impl TdxService {
    /// A site with an empty book in memory.
    pub fn new(config: TdxConfig, offload: Arc<dyn Offload>) -> Self {
        let peer_status = PeerStatus {
            endpoint: config.peer.clone(),
            state: "unknown",
            ..Default::default()
        };
        TdxService {
            config,
            book: RwLock::new(BookState::default()),
            summary: RwLock::new(Summary::of(&BookState::default())),
            peer_base: Mutex::new(None),
            peer_brief: std::sync::atomic::AtomicBool::new(true),
            store: None,
            offload,
            peer: None,
            peer_status: Mutex::new(peer_status),
            syncs_served: AtomicU64::new(0),
            syncs_refused: AtomicU64::new(0),
            writing: Mutex::new(()),
            listeners: Mutex::new(Vec::new()),
            agents: Mutex::new(AgentsStatus {
                state: "none",
                ..Default::default()
            }),
        }
    }

    /// Keeps the book in `store`, starting from what it holds (checked as a
    /// state from elsewhere would be).
    pub fn with_store(self, store: Arc<dyn BookStore>) -> Result<Self, String> {
        self.with_store_checked(store, true)
    }

    /// [`TdxService::with_store`] for a host that loads the book for each
    /// request from a store only this component writes (Spin's key-value):
    /// what it holds was checked whole when it entered, so it is not again.
    pub fn with_own_store(self, store: Arc<dyn BookStore>) -> Result<Self, String> {
        self.with_store_checked(store, false)
    }

    fn with_store_checked(mut self, store: Arc<dyn BookStore>, check: bool) -> Result<Self, String> {
        if let Some(saved) = store.load().map_err(|e| e.0)? {
            if check {
                BookState::default()
                    .check_incoming(&saved)
                    .map_err(|e| format!("the stored rule book does not check: {e}"))?;
            }
            *self.summary.get_mut().expect("not shared yet") = Summary::of(&saved);
            *self.book.get_mut().expect("not shared yet") = saved;
        }
        self.store = Some(store);
        Ok(self)
    }

    /// Syncs with `peer` (the one `config.peer` names).
    pub fn with_peer(mut self, peer: Arc<dyn Peer>) -> Self {
        self.peer = Some(peer);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &TdxConfig {
        &self.config
    }

    /// The book as it stands.
    pub fn book(&self) -> BookState {
        self.book.read().expect("book lock").clone()
    }

    /// Every rule in the book.
    pub fn entries(&self) -> Vec<BookEntry> {
        self.book.read().expect("book lock").entries()
    }

    /// The enabled rules: what agents run.
    pub fn enabled_rules(&self) -> Vec<Rule> {
        self.book.read().expect("book lock").enabled_rules()
    }

    /// Makes a change on a copy of the book, stores the copy, and only then
    /// makes it the book: a change the store refuses changes nothing.
    /// The edit answers what it changed, which is all the store writes and
    /// the summary hashes again.
    fn change<T>(
        &self,
        edit: impl FnOnce(&mut BookState) -> Result<(T, Changed), ChangeError>,
    ) -> Result<T, ChangeError> {
        let _writing = self.writing.lock().expect("writing lock");
        let mut next = self.book.read().expect("book lock").clone();
        let (out, changed) = edit(&mut next)?;
        if changed.is_empty() {
            // Nothing changed (a sync with a peer in step): nothing to store.
            return Ok(out);
        }
        if let Some(store) = &self.store {
            store.save(&next, &changed).map_err(|e| ChangeError::Store(e.0))?;
        }
        let mut summary = self.summary.read().expect("summary lock").clone();
        summary.update(&next, &changed);
        // Both under the book's lock, so that a reader holding it reads the
        // summary of the book it reads (locks taken book first, as everywhere).
        let mut book = self.book.write().expect("book lock");
        *self.summary.write().expect("summary lock") = summary;
        let before = std::mem::replace(&mut *book, next);
        drop(book);
        // Dropped with no lock held: readers do not wait for it.
        drop(before);
        for listener in self.listeners.lock().expect("listeners lock").iter() {
            listener();
        }
        Ok(out)
    }

    /// Calls `listener` after each change to the book (an edit, a sync that
    /// merged), under the lock that orders changes: it should only note
    /// that one happened (wake a task, say).
    pub fn on_change(&self, listener: impl Fn() + Send + Sync + 'static) {
        self.listeners.lock().expect("listeners lock").push(Box::new(listener));
    }

    /// Notes what the host's agents run of the book (for `/2tdx/health`).
    pub fn note_agents(&self, status: AgentsStatus) {
        *self.agents.lock().expect("agents lock") = status;
    }

    /// Adds checked rules; answers the keys added and those already in the book.
    pub fn add(&self, rules: Vec<Rule>) -> Result<(Vec<String>, Vec<String>), ChangeError> {
        let site = self.config.actor.clone().unwrap_or_else(|| self.config.site.clone());
        self.change(|book| {
            if book.rules.len() + rules.len() > crate::book::MAX_BOOK_RULES {
                return Err(ChangeError::Bad(format!(
                    "the book would hold more than {} rules",
                    crate::book::MAX_BOOK_RULES
                )));
            }
            let (mut added, mut already) = (Vec::new(), Vec::new());
            let mut changed = Changed::default();
            for rule in rules {
                if book.contains(&rule.key) {
                    already.push(rule.key);
                } else {
                    added.push(rule.key.clone());
                    changed = changed.and(Changed::of_key(&rule.key, true));
                    book.add(rule, &site);
                }
            }
            Ok(((added, already), changed))
        })
    }

    /// Removes the rule `key`.
    pub fn remove(&self, key: &str) -> Result<(), ChangeError> {
        self.change(|book| {
            if book.remove(key) {
                Ok(((), Changed::of_key(key, true)))
            } else {
                Err(ChangeError::NotFound(key.into()))
            }
        })
    }

    /// Enables or disables the rule `key`, or sets its colour.
    pub fn update(&self, key: &str, enabled: Option<bool>, color: Option<Color>) -> Result<BookEntry, ChangeError> {
        let site = self.config.actor.clone().unwrap_or_else(|| self.config.site.clone());
        self.change(|book| {
            if !book.contains(key) {
                return Err(ChangeError::NotFound(key.into()));
            }
            if let Some(enabled) = enabled {
                book.set_enabled(key, enabled, &site);
            }
            if let Some(color) = color {
                book.set_color(key, color, &site);
            }
            let entry = book.entry(key).ok_or_else(|| ChangeError::NotFound(key.into()))?;
            let changed = if enabled.is_some() || color.is_some() {
                Changed::of_key(key, false)
            } else {
                Changed::default()
            };
            Ok((entry, changed))
        })
    }

    /// Serves a peer's `POST /2tdx/sync`: checks its state whole, merges it,
    /// and answers what the peer lacks.
    pub fn serve_sync(&self, theirs: BookState) -> Result<BookState, ChangeError> {
        if *self.book.read().expect("book lock") == theirs {
            // In step: nothing to check, merge or answer.
            self.syncs_served.fetch_add(1, Ordering::Relaxed);
            return Ok(BookState::default());
        }
        // Checked under a read lock released before the change takes the write lock.
        let checked = self.book.read().expect("book lock").check_incoming(&theirs);
        let answer = checked.map_err(ChangeError::from).and_then(|()| {
            self.change(|book| {
                // What they lack, read before the merge: what the merge would
                // add to it, they hold already.
                let answer = book.lacked_by(&theirs);
                let changed = book.merge(theirs);
                Ok((answer, changed))
            })
        });
        let counter = if answer.is_ok() {
            &self.syncs_served
        } else {
            &self.syncs_refused
        };
        counter.fetch_add(1, Ordering::Relaxed);
        answer
    }

    /// Serves a peer's `POST /2tdx/sync/brief`: checks and merges what it
    /// changed since they last synced, and answers what differs from its
    /// summary; if it holds keys this site does not have (and did not send),
    /// merges nothing and answers which (see [`brief`]).
    pub fn serve_brief(&self, theirs: BriefSync) -> Result<BriefAnswer, ChangeError> {
        let prepared = {
            let book = self.book.read().expect("book lock");
            if *self.summary.read().expect("summary lock") == theirs.summary && theirs.changes == BookState::default() {
                // In step: nothing to check, merge or answer.
                self.syncs_served.fetch_add(1, Ordering::Relaxed);
                return Ok(BriefAnswer::default());
            }
            let wanted = brief::missing(&book, &theirs);
            if wanted.is_empty() {
                book.check_incoming(&theirs.changes).map_err(ChangeError::from)
            } else {
                self.syncs_served.fetch_add(1, Ordering::Relaxed);
                return Ok(BriefAnswer {
                    wanted,
                    ..BriefAnswer::default()
                });
            }
        };
        let merged = prepared.and_then(|()| {
            if theirs.changes == BookState::default() {
                return Ok(());
            }
            self.change(|book| Ok(((), book.merge(theirs.changes))))
        });
        let counter = if merged.is_ok() {
            &self.syncs_served
        } else {
            &self.syncs_refused
        };
        counter.fetch_add(1, Ordering::Relaxed);
        merged?;
        let book = self.book.read().expect("book lock");
        let summary = self.summary.read().expect("summary lock");
        Ok(brief::answer(&book, &summary, &theirs.summary))
    }

    /// Counts a sync refused before its state was read (a bad key).
    pub fn count_refused_sync(&self) {
        self.syncs_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// One sync with the configured peer: in brief when they synced before
    /// (what changed since, beside a summary), else the whole book; checks the
    /// answer whole and merges it. A peer that fails, times out or answers
    /// what does not check leaves the book untouched. `Ok(false)`: no peer
    /// configured.
    pub async fn sync_with_peer(&self) -> Result<bool, String> {
        let Some(peer) = &self.peer else {
            return Ok(false);
        };
        let base = self.peer_base.lock().expect("peer base lock").take();
        let whole_due = {
            let status = self.peer_status.lock().expect("peer status lock");
            status.successes % WHOLE_SYNC_EVERY == WHOLE_SYNC_EVERY - 1
        };
        let (ours, summary) = {
            let book = self.book.read().expect("book lock");
            let summary = self.summary.read().expect("summary lock").clone();
            (book.clone(), summary)
        };
        let mut brief_answer = None;
        if let Some(base) = base.filter(|_| !whole_due && self.peer_brief.load(Ordering::Relaxed)) {
            let brief = BriefSync {
                changes: brief::changes_since(&ours, &summary, &base),
                summary: summary.clone(),
            };
            match peer.sync_brief(&brief, self.config.max_latency).await {
                // Answered: merged below, unless it wants the whole book.
                Ok(Some(answer)) if answer.wanted.is_empty() => brief_answer = Some(answer.lacked),
                Ok(Some(_)) => {}
                Ok(None) => self.peer_brief.store(false, Ordering::Relaxed),
                Err(e) => return Err(self.note_peer_failure(e)),
            }
        }
        let in_brief = brief_answer.is_some();
        let answer = match brief_answer {
            Some(answer) => Ok(answer),
            None => peer.sync(&ours, self.config.max_latency).await,
        };
        let outcome = answer.and_then(|answer| {
            let checked = self.book.read().expect("book lock").check_incoming(&answer);
            checked.map_err(|e| format!("the peer's answer does not merge: {e}"))?;
            // What both held once this sync is done: what was sent, and the
            // answer (changes made here meanwhile stay changes for the next).
            let mut agreed = ours;
            let mut agreed_summary = summary;
            let changed = agreed.merge(answer.clone());
            agreed_summary.update(&agreed, &changed);
            self.change(|book| Ok(((), book.merge(answer))))
                .map_err(|e| e.to_string())?;
            *self.peer_base.lock().expect("peer base lock") = Some(agreed_summary);
            Ok(())
        });
        let Err(e) = outcome else {
            let mut status = self.peer_status.lock().expect("peer status lock");
            status.state = "in_sync";
            status.successes += 1;
            status.consecutive_failures = 0;
            if in_brief {
                status.brief += 1;
            } else {
                status.whole += 1;
            }
            return Ok(true);
        };
        Err(self.note_peer_failure(e))
    }

    /// Notes a failed sync with the peer; answers the reason.
    fn note_peer_failure(&self, e: String) -> String {
        let mut status = self.peer_status.lock().expect("peer status lock");
        status.state = "failing";
        status.failures += 1;
        status.consecutive_failures += 1;
        status.last_error = Some(e.clone());
        e
    }

    /// The counters.
    pub fn stats(&self) -> TdxStats {
        let book = self.book.read().expect("book lock");
        let entries = book.entries();
        TdxStats {
            rules: entries.len(),
            enabled: entries.iter().filter(|e| e.enabled).count(),
            digest: book.digest(),
            syncs_served: self.syncs_served.load(Ordering::Relaxed),
            syncs_refused: self.syncs_refused.load(Ordering::Relaxed),
            peer: self.peer_status.lock().expect("peer status lock").clone(),
            agents: self.agents.lock().expect("agents lock").clone(),
        }
    }

    /// Whether `authorization` (the request's header) carries the sync key;
    /// always true when none is configured. Compared as BLAKE3 digests, so
    /// the time taken says nothing about how much of a guess was right.
    pub fn authorised(&self, authorization: Option<&str>) -> bool {
        let Some(key) = &self.config.api_key else {
            return true;
        };
        let Some(given) = authorization.and_then(|h| h.strip_prefix("Bearer ")).map(str::trim) else {
            return false;
        };
        blake3::hash(given.as_bytes()) == blake3::hash(key.as_bytes())
            || self
                .config
                .host_keys
                .as_ref()
                .and_then(|keys| keys.find(given))
                .is_some_and(|(scope, _)| scope == ramanujan_http::access::Scope::Write)
    }
}
