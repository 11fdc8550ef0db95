// Ramanujan's live page. Everything it shows comes from the host's own routes:
// /api/metrics/stream (server-sent events; /api/metrics when the stream fails),
// /agents/submit and /agents/submissions/{id}, /agent/{id}/state and
// /agent/{id}/messages, /timeline/stats and /timeline/query. When the host asks
// for API keys (API_KEYS), the page asks its user for one and sends it as a
// bearer key with every request; see "API key" below.
'use strict';
(() => {
  const SVG = 'http://www.w3.org/2000/svg';
  const $ = (id) => document.getElementById(id);

  const state = {
    refreshMs: 1000,
    nowUs: 0,
    agents: [], // the last update's agents
    agentKey: '', // ids and edges the drawing was made for
    selected: null,
    submission: null, // { id, expression, started, settled }
    convergenceKey: '', // the newest settled submission the chart was drawn with
    families: new Map(), // route family -> { requests, at } for rates
    events: [],
    lastEventUs: 0,
    eventsKey: '',
    busy: { flows: false, events: false, inspector: false },
  };

  // ---------------------------------------------------------------- errors
  function showProblem(message) {
    const box = $('problem');
    box.textContent = message || '';
    box.hidden = !message;
  }
  window.addEventListener('error', (e) => showProblem(`The page hit an error: ${e.message}`));
  window.addEventListener('unhandledrejection', (e) => {
    const reason = e.reason && e.reason.message ? e.reason.message : String(e.reason);
    showProblem(`The page hit an error: ${reason}`);
  });

  // --------------------------------------------------------------- API key
  // The page's shell is open; its data routes need a bearer key when the host
  // sets API_KEYS. The key is asked for on the first 401, kept in this tab's
  // sessionStorage (gone when the tab closes) and sent in the Authorization
  // header, never in a URL. A read key shows everything; submitting needs a
  // write key (the host's 403 says so in the submission's status).
  const KEY_STORE = 'ramanujan-api-key';
  function apiKey() {
    try {
      return sessionStorage.getItem(KEY_STORE) || '';
    } catch {
      return '';
    }
  }
  /** `options` with the stored key added as `Authorization: Bearer`. */
  function withKey(options = {}) {
    const key = apiKey();
    if (!key) return options;
    return { ...options, headers: { ...(options.headers || {}), authorization: `Bearer ${key}` } };
  }
  function showKeyState() {
    $('forget-key').hidden = !apiKey();
  }
  /** Shows the key form with `why` (the host's refusal). */
  function askForKey(why) {
    $('key-note').textContent = apiKey()
      ? `The host refused the key this page holds: ${why}`
      : `This host asks for an API key: ${why}`;
    $('key-form').hidden = false;
    setConnection('key needed', 'enter an API key above');
    stopFeed();
  }
  $('key-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const key = $('api-key').value.trim();
    if (!key) return;
    try {
      sessionStorage.setItem(KEY_STORE, key);
    } catch (e) {
      showProblem(`This browser would not keep the key: ${e.message}`);
      return;
    }
    $('api-key').value = '';
    $('key-form').hidden = true;
    showProblem('');
    showKeyState();
    connect();
  });
  $('forget-key').addEventListener('click', () => {
    try {
      sessionStorage.removeItem(KEY_STORE);
    } catch {
      // nothing kept
    }
    location.reload();
  });
  showKeyState();

  /** Fetches JSON; a non-2xx answer throws an Error carrying the host's `error` text. */
  async function getJson(url, options) {
    let response;
    try {
      response = await fetch(url, withKey(options));
    } catch (e) {
      throw new Error(`the host did not answer ${url} (${e.message})`);
    }
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (!response.ok) {
      const error = new Error(body && body.error ? body.error : `${url} answered HTTP ${response.status}`);
      error.status = response.status;
      if (response.status === 401) askForKey(error.message);
      throw error;
    }
    return body;
  }

  // ---------------------------------------------------------- small helpers
  function el(name, attrs = {}, text) {
    const node = name.startsWith('svg:')
      ? document.createElementNS(SVG, name.slice(4))
      : document.createElement(name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function cell(text, numeric) {
    return el('td', numeric ? { class: 'num' } : {}, text);
  }
  // One number format per precision: making one per call was most of the
  // page's script time.
  const formats = new Map();
  function fmt(x, digits = 1) {
    if (x === null || x === undefined || Number.isNaN(x)) return '–';
    if (!formats.has(digits)) formats.set(digits, new Intl.NumberFormat('en', { maximumFractionDigits: digits }));
    return formats.get(digits).format(Number(x));
  }
  /** Sets an attribute only when it changes (an unchanged page is not laid out or painted again). */
  function setAttr(node, name, value) {
    if (node.getAttribute(name) !== value) node.setAttribute(name, value);
  }
  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }
  function bytes(n) {
    if (n === null || n === undefined) return 'unknown';
    const units = ['B', 'KiB', 'MiB', 'GiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return `${fmt(n, 1)} ${units[i]}`;
  }
  /** Shows `rows` in `table`: cell by cell where the shape is the same, so
   *  only what changed is laid out and painted again. */
  function replaceRows(table, rows) {
    const body = table.tBodies[0];
    const same = body.rows.length === rows.length
      && rows.every((row, i) => row.cells.length === body.rows[i].cells.length
        && row.getAttribute('data-agent') === body.rows[i].getAttribute('data-agent'));
    if (!same) {
      body.replaceChildren(...rows);
      return;
    }
    rows.forEach((row, i) => {
      [...row.cells].forEach((fresh, j) => {
        const old = body.rows[i].cells[j];
        if (old.innerHTML !== fresh.innerHTML) old.replaceChildren(...fresh.childNodes);
      });
    });
  }
  const letter = { RED: 'R', BLUE: 'B', GREEN: 'G' };
  const mark = { alive: '', starting: '…', suspect: '?', dead: '✕' };

  // ------------------------------------------------------------ live feed
  // Server-sent events read with fetch, not EventSource: EventSource cannot
  // send the Authorization header a host with API keys asks for.
  let stream = null; // the open stream's AbortController
  let failures = 0;
  let pollTimer = null;
  let retryTimer = null;
  let pollsBeforeRetry = 0;

  function setConnection(name, detail) {
    const badge = $('connection');
    badge.dataset.state = name;
    badge.textContent = detail ? `${name}: ${detail}` : name;
  }

  /** Stops the stream, the polling and any retry (until `connect`). */
  function stopFeed() {
    if (stream) stream.abort();
    stream = null;
    clearTimeout(pollTimer);
    clearTimeout(retryTimer);
  }

  function connect() {
    stopFeed();
    if (!('ReadableStream' in window) || !('TextDecoderStream' in window)) {
      startPolling();
      return;
    }
    const controller = new AbortController();
    stream = controller;
    readStream(controller).catch((e) => {
      if (!controller.signal.aborted) streamFailed(controller, e.message);
    });
  }

  async function readStream(controller) {
    const response = await fetch('/api/metrics/stream',
      withKey({ signal: controller.signal, headers: { accept: 'text/event-stream' }, cache: 'no-store' }));
    if (response.status === 401) {
      const body = await response.json().catch(() => null);
      askForKey(body && body.error ? body.error : 'HTTP 401');
      return;
    }
    if (!response.ok || !response.body) {
      streamFailed(controller, `HTTP ${response.status}`);
      return;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, '\n');
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
    if (!controller.signal.aborted) streamFailed(controller, 'the host closed the stream');
  }

  /** One server-sent event: its `event:` name and `data:` lines. */
  function dispatch(block) {
    let name = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') name = value;
      else if (field === 'data') data.push(value);
    }
    if (name !== 'update' || data.length === 0) return;
    failures = 0;
    setConnection('live');
    let update;
    try {
      update = JSON.parse(data.join('\n'));
    } catch (e) {
      showProblem(`The metrics stream sent something that is not JSON: ${e.message}`);
      return;
    }
    apply(update);
  }

  /** After three failures in a row, poll; before that, retry in a second. */
  function streamFailed(controller, why) {
    if (stream !== controller) return;
    stream = null;
    failures += 1;
    if (failures >= 3) {
      startPolling();
      return;
    }
    setConnection('reconnecting', why);
    // Meanwhile the page keeps showing the present.
    getJson('/api/metrics').then(apply, () => {});
    retryTimer = setTimeout(connect, 1000);
  }

  function startPolling() {
    clearTimeout(pollTimer);
    pollsBeforeRetry = 10;
    const tick = async () => {
      try {
        apply(await getJson('/api/metrics'));
        setConnection('polling', 'the stream failed; reading /api/metrics');
      } catch (e) {
        if (e.status === 401) return; // the key form is up; it reconnects
        setConnection('offline', e.message);
      }
      pollsBeforeRetry -= 1;
      if (pollsBeforeRetry <= 0) {
        // Try the stream again now and then.
        failures = 0;
        connect();
        return;
      }
      pollTimer = setTimeout(tick, state.refreshMs);
    };
    tick();
  }

  // ---------------------------------------------------------------- update
  function apply(update) {
    if (!update || !update.network || !update.performance) {
      showProblem('The host sent an update without its network or performance.');
      return;
    }
    state.refreshMs = update.refresh_ms || state.refreshMs;
    state.nowUs = update.now_us || Date.now() * 1000;
    const network = update.network;
    state.agents = network.agents || [];
    drawSummary(network);
    const key = JSON.stringify([state.agents.map((a) => a.agent_id), network.edges]);
    if (key !== state.agentKey) {
      state.agentKey = key;
      drawNetwork(network);
      drawHeatmapGrid();
      fillAgentChoices();
    }
    updateAgents();
    drawComponents(update.performance);
    drawConvergence(update.convergence);
    refreshFlows();
    refreshEvents();
    if (state.selected) inspect(state.selected, { quiet: true });
  }

  function drawSummary(network) {
    const counts = { alive: 0, starting: 0, suspect: 0, dead: 0 };
    for (const a of state.agents) counts[a.lifecycle] = (counts[a.lifecycle] || 0) + 1;
    const parts = [
      `${state.agents.length} agents (${network.topology}, ${network.transport})`,
      `${counts.alive} alive` + (counts.starting ? `, ${counts.starting} starting` : '')
        + (counts.suspect ? `, ${counts.suspect} suspect` : '') + (counts.dead ? `, ${counts.dead} dead` : ''),
      `${network.submissions} submissions`,
      network.converged ? 'replicas agree, no rewriting pending' : 'replicas still working',
    ];
    if (network.degraded) parts.push(`degraded: ${network.degraded}`);
    setText($('summary'), parts.join(' · '));
  }

  // --------------------------------------------------------------- network
  /** Where each agent is drawn, in a 0..1 square: S(n,3)'s triangle of
   *  triangles for a Sierpinski topology of 3^n agents, else a circle. */
  function layout(topology, count) {
    const corners = [[0.5, 0], [0, 1], [1, 1]];
    let level = 0;
    for (let n = 1; n < count; n *= 3) level++;
    const positions = [];
    if (topology === 'sierpinski' && 3 ** level === count && level > 0) {
      const scale = 1 / (1 - 2 ** -level);
      for (let i = 0; i < count; i++) {
        let x = 0, y = 0, rest = i;
        const digits = [];
        for (let t = 0; t < level; t++) { digits.unshift(rest % 3); rest = Math.floor(rest / 3); }
        digits.forEach((d, t) => {
          x += corners[d][0] * 2 ** -(t + 1);
          y += corners[d][1] * 2 ** -(t + 1);
        });
        positions.push([x * scale, y * scale]);
      }
    } else {
      for (let i = 0; i < count; i++) {
        const angle = -Math.PI / 2 + (2 * Math.PI * i) / count;
        positions.push([0.5 + 0.5 * Math.cos(angle), 0.5 + 0.5 * Math.sin(angle)]);
      }
    }
    return positions;
  }

  function drawNetwork(network) {
    const svg = $('network');
    const count = state.agents.length;
    const radius = count > 27 ? 9 : 16;
    const [w, h, pad] = [400, 370, radius + 14];
    const at = new Map();
    layout(network.topology, count).forEach(([x, y], i) => {
      at.set(state.agents[i].agent_id, [pad + x * (w - 2 * pad), pad + y * (h - 2 * pad)]);
    });
    const edges = el('svg:g', { class: 'edges' });
    for (const [a, b] of network.edges || []) {
      if (!at.has(a) || !at.has(b)) continue;
      const [x1, y1] = at.get(a);
      const [x2, y2] = at.get(b);
      edges.append(el('svg:line', {
        class: 'edge', x1, y1, x2, y2, 'stroke-width': 1.5, 'data-a': a, 'data-b': b,
      }));
    }
    const nodes = el('svg:g', { class: 'agents' });
    for (const agent of state.agents) {
      const [x, y] = at.get(agent.agent_id);
      const g = el('svg:g', {
        class: 'agent', tabindex: '0', role: 'button', 'data-agent': agent.agent_id,
        transform: `translate(${x.toFixed(1)} ${y.toFixed(1)})`,
      });
      g.append(el('svg:title'));
      g.append(el('svg:circle', { class: 'ring', r: radius + 5 }));
      g.append(el('svg:circle', { class: 'body', r: radius }));
      g.append(el('svg:text', { class: 'letter' }, letter[agent.color] || '?'));
      g.append(el('svg:text', { class: 'mark', x: radius * 0.8, y: -radius * 0.8 }));
      if (count <= 27) g.append(el('svg:text', { class: 'name', y: radius + 12 }, agent.agent_id));
      g.addEventListener('click', () => inspect(agent.agent_id));
      g.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          inspect(agent.agent_id);
        }
      });
      nodes.append(g);
    }
    svg.replaceChildren(edges, nodes);
    // When the network first shows (the first-paint benchmark reads it).
    if (!performance.getEntriesByName('network-drawn').length) performance.mark('network-drawn');
  }

  function updateAgents() {
    for (const agent of state.agents) {
      const g = document.querySelector(`#network g.agent[data-agent="${CSS.escape(agent.agent_id)}"]`);
      if (!g) continue;
      setAttr(g, 'data-color', agent.color);
      setAttr(g, 'data-lifecycle', agent.lifecycle);
      const label = `${agent.agent_id}, ${agent.color}, ${agent.lifecycle}, ${agent.facts} facts`;
      setAttr(g, 'aria-label', label);
      setText(g.querySelector('title'), label);
      setText(g.querySelector('text.mark'), mark[agent.lifecycle] || '');
      if (g.classList.contains('selected') !== (agent.agent_id === state.selected)) g.classList.toggle('selected');
    }
    const rows = state.agents.map((a) => {
      const c = a.counters;
      const row = el('tr');
      const memory = a.memory_bytes_estimate;
      row.append(cell(a.agent_id), cell(fmt(a.facts, 0), true),
        cell(memory === null || memory === undefined ? '–' : `≈ ${bytes(memory)}`, true),
        cell(c ? fmt(c.messages_sent, 0) : '–', true),
        cell(c ? fmt(c.messages_received, 0) : '–', true), cell(c ? fmt(c.rewrite_steps, 0) : '–', true));
      return row;
    });
    replaceRows($('agent-sizes'), rows);
  }

  function fillAgentChoices() {
    for (const select of [$('agent-select'), $('event-agent')]) {
      const keep = select.value;
      const first = select.options[0].cloneNode(true);
      select.replaceChildren(first, ...state.agents.map((a) => el('option', { value: a.agent_id }, a.agent_id)));
      select.value = state.agents.some((a) => a.agent_id === keep) ? keep : '';
    }
  }

  // ------------------------------------------------------- message flows
  async function refreshFlows() {
    if (state.busy.flows) return;
    state.busy.flows = true;
    const until = state.nowUs;
    const since = until - 60e6;
    try {
      const stats = await getJson(`/timeline/stats?since=${since}&until=${until}`);
      const rates = new Map();
      for (const f of stats.flows || []) {
        if (f.from && f.to) rates.set(`${f.from}\u0000${f.to}`, f.messages_per_second);
      }
      paintFlows(rates);
      setText($('heatmap-note'), `${fmt(stats.events, 0)} events in the last minute.`);
    } catch (e) {
      paintFlows(new Map());
      $('heatmap-note').textContent = `No message flows: the timeline did not answer (${e.message}).`;
    } finally {
      state.busy.flows = false;
    }
  }

  function drawHeatmapGrid() {
    const svg = $('heatmap');
    const n = state.agents.length;
    const margin = 48;
    const size = (400 - margin) / Math.max(n, 1);
    const parts = [];
    state.agents.forEach((a, i) => {
      const short = a.agent_id.replace(/^agent-/, '');
      parts.push(el('svg:text', { x: margin - 4, y: margin + (i + 0.5) * size, 'text-anchor': 'end', 'dominant-baseline': 'central' }, short));
      parts.push(el('svg:text', { x: margin + (i + 0.5) * size, y: margin - 6, 'text-anchor': 'middle' }, short));
    });
    parts.push(el('svg:text', { x: 2, y: 10 }, 'from ↓ to →'));
    state.agents.forEach((from, i) => {
      state.agents.forEach((to, j) => {
        const rect = el('svg:rect', {
          class: 'cell', x: margin + j * size, y: margin + i * size, width: size, height: size,
          'data-from': from.agent_id, 'data-to': to.agent_id, fill: '#f0f0f3',
        });
        rect.append(el('svg:title', {}, `${from.agent_id} → ${to.agent_id}: no messages`));
        parts.push(rect);
        if (n <= 12) {
          parts.push(el('svg:text', {
            class: 'value', x: margin + (j + 0.5) * size, y: margin + (i + 0.5) * size,
            'data-from': from.agent_id, 'data-to': to.agent_id,
          }, ''));
        }
      });
    });
    svg.replaceChildren(...parts);
  }

  function paintFlows(rates) {
    let max = 0;
    for (const v of rates.values()) max = Math.max(max, v);
    for (const rect of document.querySelectorAll('#heatmap rect.cell')) {
      const key = `${rect.dataset.from}\u0000${rect.dataset.to}`;
      const rate = rates.get(key) || 0;
      const t = max > 0 ? rate / max : 0;
      // Light to dark blue; the value is also written in the cell and its title.
      const light = Math.round(96 - t * 64);
      setAttr(rect, 'fill', rate > 0 ? `hsl(222 70% ${light}%)` : '#f0f0f3');
      setText(rect.querySelector('title'), `${rect.dataset.from} → ${rect.dataset.to}: ${fmt(rate, 2)} messages/s`);
      const text = document.querySelector(
        `#heatmap text.value[data-from="${CSS.escape(rect.dataset.from)}"][data-to="${CSS.escape(rect.dataset.to)}"]`,
      );
      if (text) {
        setText(text, rate > 0 ? fmt(rate, rate < 1 ? 2 : rate < 10 ? 1 : 0) : '');
        if (text.classList.contains('dark') !== t > 0.5) text.classList.toggle('dark');
      }
    }
    // Link widths follow the traffic both ways along them.
    for (const line of document.querySelectorAll('#network line.edge')) {
      const both = (rates.get(`${line.dataset.a}\u0000${line.dataset.b}`) || 0)
        + (rates.get(`${line.dataset.b}\u0000${line.dataset.a}`) || 0);
      const width = max > 0 ? 1.5 + 6 * Math.min(both / (2 * max), 1) : 1.5;
      setAttr(line, 'stroke-width', width.toFixed(2));
    }
  }

  // ------------------------------------------------------------- inspector
  async function inspect(id, { quiet = false } = {}) {
    const box = $('inspector');
    if (!quiet) {
      state.selected = id;
      box.dataset.agent = id;
      box.dataset.state = 'loading';
      box.textContent = `Reading ${id}…`;
      $('agent-select').value = state.agents.some((a) => a.agent_id === id) ? id : '';
      updateAgents();
      history.replaceState(null, '', `#agent=${encodeURIComponent(id)}`);
    }
    if (state.busy.inspector) return;
    state.busy.inspector = true;
    try {
      const path = `/agent/${encodeURIComponent(id)}`;
      const [agent, log] = await Promise.all([getJson(`${path}/state`), getJson(`${path}/messages`)]);
      if (state.selected !== id) return;
      showAgent(agent, log);
    } catch (e) {
      if (state.selected !== id) return;
      box.dataset.state = 'error';
      box.textContent = e.status === 404 ? `There is no agent “${id}” in this network (${e.message}).`
        : `Could not read ${id}: ${e.message}`;
    } finally {
      state.busy.inspector = false;
    }
  }

  function showAgent(agent, log) {
    const box = $('inspector');
    box.dataset.state = 'shown';
    const c = agent.counters || {};
    const facts = [
      ['agent', agent.agent_id], ['colour', agent.color], ['lifecycle', agent.status],
      ['restarts', agent.restarts], ['terms', agent.egraph_nodes], ['equalities', agent.equalities],
      ['memory (estimate)', agent.memory_bytes_estimate === undefined ? undefined : `≈ ${bytes(agent.memory_bytes_estimate)}`],
      ['refuted equalities', agent.refuted_equalities], ['digest', agent.digest],
      ['neighbours', (agent.neighbors || []).join(', ')], ['uptime', `${fmt(agent.uptime_seconds, 1)} s`],
      ['rewriting steps', c.rewrite_steps], ['verify backlog', agent.verify_backlog],
      ['steps skipped (replica full)', c.rewrite_skipped_at_max_terms],
      ['messages sent', c.messages_sent], ['messages received', c.messages_received],
      ['syncs completed', c.syncs_completed], ['duplicates', c.duplicates],
      ['verified / refuted / inconclusive', `${c.verified ?? '–'} / ${c.refuted ?? '–'} / ${c.inconclusive ?? '–'}`],
      ['rejected (unknown, misaddressed, malformed)',
        `${c.rejected_unknown_sender ?? '–'}, ${c.rejected_misaddressed ?? '–'}, ${c.rejected_malformed ?? '–'}`],
    ];
    const dl = el('dl');
    for (const [k, v] of facts) dl.append(el('dt', {}, k), el('dd', {}, v === undefined || v === null ? '–' : String(v)));
    const messages = ((log && log.messages) || []).slice(-12).reverse();
    const table = el('table', { 'aria-label': `Latest messages of ${agent.agent_id}` });
    table.append(el('thead'), el('tbody'));
    table.tHead.append(el('tr'));
    for (const h of ['ms', 'way', 'peer', 'kind', 'facts']) table.tHead.rows[0].append(el('th', { scope: 'col' }, h));
    for (const m of messages) {
      const row = el('tr');
      row.append(cell(fmt(m.at_ms, 0), true), cell(m.direction === 'out' ? '→ out' : '← in'), cell(m.peer),
        cell(m.kind), cell(fmt(m.facts, 0), true));
      table.tBodies[0].append(row);
    }
    box.replaceChildren(dl, el('h3', { class: 'note' }, 'Latest messages'), messages.length ? table : el('p', { class: 'note' }, 'none yet'));
  }

  $('agent-select').addEventListener('change', (e) => {
    if (e.target.value) inspect(e.target.value);
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && state.selected) {
      state.selected = null;
      $('inspector').dataset.agent = '';
      $('inspector').dataset.state = 'empty';
      $('inspector').textContent = 'Choose an agent to see its counters, facts, neighbours and latest messages.';
      $('agent-select').value = '';
      history.replaceState(null, '', location.pathname);
      updateAgents();
    }
  });

  // ------------------------------------------------------------ submission
  $('submit-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const expression = $('expression').value.trim();
    const status = $('submission-status');
    if (!expression) {
      status.dataset.state = 'error';
      status.textContent = 'Type an expression first, such as (* 0 (+ p q)).';
      return;
    }
    $('submit-button').disabled = true;
    status.dataset.state = 'sending';
    status.textContent = `Submitting ${expression}…`;
    const started = performance.now();
    try {
      const accepted = await getJson('/agents/submit', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ expression }),
      });
      state.submission = { id: accepted.id, expression: accepted.expression, entry: accepted.entry_agent, started };
      follow(state.submission);
    } catch (error) {
      status.dataset.state = 'error';
      status.textContent = `Not submitted: ${error.message}`;
    } finally {
      $('submit-button').disabled = false;
    }
  });

  /** Polls the submission (every 20 ms at first, then less often) until it
   *  is settled, lighting up the agents that hold it. */
  async function follow(submission) {
    const status = $('submission-status');
    status.dataset.state = 'following';
    let wait = 20;
    while (state.submission === submission) {
      let s;
      try {
        s = await getJson(`/agents/submissions/${encodeURIComponent(submission.id)}`);
      } catch (e) {
        if (e.status === 503) {
          status.textContent = `Waiting: ${e.message}`;
        } else {
          status.dataset.state = 'error';
          status.textContent = `Lost the submission: ${e.message}`;
          return;
        }
      }
      if (s) {
        const elapsed = performance.now() - submission.started;
        showHolders(s);
        if (s.settled) {
          const form = (s.canonical && s.canonical[0] && s.canonical[0][1]) || '';
          status.dataset.state = 'settled';
          status.textContent = `Settled: all ${s.agents} agents hold ${submission.expression} as ${form}, `
            + `within ${fmt(elapsed, 0)} ms of submitting (entered at ${submission.entry}).`;
          // The counts in the summary move now, not at the next update.
          getJson('/api/metrics').then(apply, () => {});
          return;
        }
        const rewriting = (s.rewriting || []).map((r) => `${r.color.toLowerCase()} ${r.state}`).join(', ');
        status.textContent = `${s.present_in} of ${s.agents} agents hold it`
          + (s.converged ? ', replicas agree' : '') + (rewriting ? `; rewriting: ${rewriting}` : '')
          + ` (${fmt(elapsed / 1000, 1)} s)`;
      }
      if (performance.now() - submission.started > 2000) wait = 200;
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  function showHolders(s) {
    const forms = new Map(s.canonical || []);
    for (const g of document.querySelectorAll('#network g.agent')) {
      g.classList.toggle('holds', forms.has(g.dataset.agent));
    }
    const rows = state.agents.map((a) => {
      const row = el('tr', { 'data-agent': a.agent_id });
      const form = forms.get(a.agent_id);
      row.append(cell(a.agent_id), cell(form !== undefined ? 'yes' : 'not yet'));
      const code = el('td');
      code.append(el('code', {}, form !== undefined ? form : ''));
      row.append(code);
      return row;
    });
    replaceRows($('forms'), rows);
  }

  // ----------------------------------------------------------- convergence
  let chart = null;
  /** The host's time to settled of every submission it took (this page's or
   *  any other client's), newest last, with its percentiles. */
  function drawConvergence(c) {
    if (!c) return;
    const recent = c.recent || [];
    const pct = (v) => (v === null || v === undefined ? '–' : `${fmt(v, 0)} ms`);
    setText($('convergence-stats'), (c.settled
      ? `${fmt(c.settled, 0)} submissions settled since the host started; over the newest ${fmt(c.over, 0)}: `
        + `p50 ${pct(c.p50_ms)}, p95 ${pct(c.p95_ms)}, p99 ${pct(c.p99_ms)}`
        + ' (from the host taking it to its first poll that saw it settled, known to about 10%)'
      : 'No submission has settled yet.')
      + (c.following ? ` · ${fmt(c.following, 0)} followed now` : '')
      + (c.unfollowed ? ` · ${fmt(c.unfollowed, 0)} not timed (too many at once)` : '')
      + (c.gave_up ? ` · ${fmt(c.gave_up, 0)} not settled within 10 min` : ''));
    const newest = recent.length ? `${recent[recent.length - 1].id}@${recent[recent.length - 1].submitted_us}` : '';
    if (newest === state.convergenceKey || typeof uPlot !== 'function') return;
    state.convergenceKey = newest;
    const data = [recent.map((s) => s.submitted_us / 1e6), recent.map((s) => s.settled_ms)];
    const box = $('convergence-chart');
    if (!chart) {
      chart = new uPlot({
        width: Math.max(240, box.clientWidth || 400),
        height: 180,
        axes: [{ label: 'submitted at' }, { label: 'ms to settled' }],
        series: [{}, { label: 'time to settled (ms)', stroke: '#2d5fc8', width: 0, points: { show: true, size: 7 } }],
      }, data, box);
    } else {
      chart.setData(data);
    }
  }

  // ------------------------------------------------------------ components
  function drawComponents(performance_) {
    const now = performance.now();
    const rows = (performance_.families || []).map((f) => {
      const before = state.families.get(f.route);
      let rate = null;
      if (before && now > before.at) rate = ((f.requests - before.requests) * 1000) / (now - before.at);
      if (!before || now - before.at > 10000) state.families.set(f.route, { requests: f.requests, at: now });
      const errors = f.client_errors + f.server_errors;
      const row = el('tr');
      row.append(cell(f.route), cell(fmt(f.requests, 0), true), cell(rate === null ? '–' : fmt(rate, 1), true),
        cell(fmt(f.p50_ms, 2), true), cell(fmt(f.p99_ms, 2), true),
        cell(errors ? `${fmt((100 * errors) / f.requests, 1)}% (${f.client_errors} 4xx, ${f.server_errors} 5xx)` : '0', true));
      return row;
    });
    replaceRows($('families'), rows);
    const caches = Object.entries(performance_.caches || {}).map(([name, c]) => {
      const row = el('tr');
      row.append(cell(name), cell(c.hits + c.misses ? `${fmt(100 * c.hit_ratio, 1)}%` : '–', true),
        cell(fmt(c.hits, 0), true), cell(fmt(c.misses, 0), true), cell(fmt(c.entries, 0), true), cell(bytes(c.bytes), true));
      return row;
    });
    replaceRows($('caches'), caches);
    const readings = Object.entries(performance_.components || {}).flatMap(([name, list]) => list.map((r) => {
      const row = el('tr');
      row.append(cell(name), cell(r.name), cell(fmt(r.value, Number.isInteger(r.value) ? 0 : 3), true));
      return row;
    }));
    replaceRows($('readings'), readings);
    setText($('memory'), `Process memory (resident): ${bytes(performance_.resident_memory_bytes)}; `
      + `up ${fmt(performance_.uptime_seconds, 0)} s. Per agent (below): facts held, and the heap`
      + ' its replica and e-graphs hold, estimated from their counts (within about a third of what the allocator says).');
  }

  // ---------------------------------------------------------------- events
  async function refreshEvents() {
    if (state.busy.events) return;
    const type = $('event-type').value;
    const agent = $('event-agent').value;
    const key = `${type}|${agent}`;
    if (key !== state.eventsKey) {
      state.eventsKey = key;
      state.events = [];
      state.lastEventUs = 0;
    }
    state.busy.events = true;
    const since = Math.max(state.lastEventUs + 1, state.nowUs - 120e6);
    const params = new URLSearchParams({ since: String(since), limit: '500' });
    if (type) params.set('type', type);
    if (agent) params.set('agent', agent);
    try {
      const answer = await getJson(`/timeline/query?${params}`);
      if (key !== state.eventsKey) return;
      const fresh = answer.events || [];
      for (const e of fresh) state.lastEventUs = Math.max(state.lastEventUs, e.at_us);
      state.events = state.events.concat(fresh).slice(-60);
      setText($('events-note'), fresh.length === 500
        ? 'Many events arrive: showing the newest read, some in between are skipped.' : '');
      if (fresh.length) drawEvents();
    } catch (e) {
      $('events-note').textContent = `The timeline did not answer: ${e.message}`;
    } finally {
      state.busy.events = false;
    }
  }

  function describe(event) {
    const e = event.event || {};
    const { type, ...rest } = e;
    return Object.entries(rest)
      .filter(([, v]) => v !== null && v !== undefined && typeof v !== 'object')
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
  }

  function drawEvents() {
    const rows = state.events.slice().reverse().map((event) => {
      const row = el('tr');
      const time = new Date(event.at_us / 1000);
      const two = (n) => String(n).padStart(2, '0');
      const clock = `${two(time.getHours())}:${two(time.getMinutes())}:${two(time.getSeconds())}`;
      row.append(cell(`${clock}.${String(time.getMilliseconds()).padStart(3, '0')}`),
        cell(event.source), cell((event.event && event.event.type) || ''), cell(describe(event)));
      return row;
    });
    replaceRows($('events'), rows);
  }
  for (const id of ['event-type', 'event-agent']) $(id).addEventListener('change', () => refreshEvents());

  // ----------------------------------------------------------------- start
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('agent');
  if (fromHash) inspect(fromHash);
  connect();
})();
