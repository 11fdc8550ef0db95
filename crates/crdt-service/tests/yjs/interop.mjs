// Drives a running /crdt service with the real Yjs, both ways:
// Yjs edits -> /crdt/merge -> back into Yjs, and /crdt/apply -> Yjs.
// Usage: node interop.mjs http://127.0.0.1:PORT   (exits non-zero on the first mismatch)
import * as Y from 'yjs';
import assert from 'node:assert/strict';

const base = process.argv[2];
if (!base) throw new Error('usage: node interop.mjs BASE_URL');

const b64 = (bytes) => Buffer.from(bytes).toString('base64');
const bytes = (text) => new Uint8Array(Buffer.from(text, 'base64'));

async function call(path, body) {
  const response = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const answer = await response.json();
  assert.equal(response.status, 200, `${path}: ${JSON.stringify(answer)}`);
  return answer;
}

function doc(clientID) {
  const d = new Y.Doc();
  d.clientID = clientID;
  return d;
}

// 1. Concurrent edits on two documents, merged by the service, applied back.
{
  const a = doc(11);
  const b = doc(22);
  a.getText('text').insert(0, 'Hello, wörld');
  Y.applyUpdate(b, Y.encodeStateAsUpdate(a));
  a.getText('text').insert(5, ' 😀 from A');
  b.getText('text').delete(0, 1);
  b.getText('text').insert(0, 'Ĥ');
  b.getText('text').insert(b.getText('text').length, '!');
  const merged = await call('/crdt/merge', {
    crdt_type: 'TextCRDT',
    states: [b64(Y.encodeStateAsUpdate(a)), b64(Y.encodeStateAsUpdate(b))],
  });
  Y.applyUpdate(a, bytes(merged.state));
  Y.applyUpdate(b, bytes(merged.state));
  const yjsOwn = doc(33);
  Y.applyUpdate(yjsOwn, Y.encodeStateAsUpdate(a));
  assert.equal(a.getText('text').toString(), b.getText('text').toString());
  assert.equal(merged.value, a.getText('text').toString());
  assert.equal(merged.value, 'Ĥello 😀 from A, wörld!');
  assert.equal(merged.state_vector, b64(Y.encodeStateVector(a)));
  console.log('concurrent text edits: ok');
}

// 2. Many small incremental updates (one per keystroke) merge to the document.
{
  const a = doc(44);
  const updates = [];
  a.on('update', (u) => updates.push(b64(u)));
  const text = a.getText('text');
  for (const ch of 'naïve café — ∑ 😀 done') text.insert(text.length, ch);
  text.delete(0, 2);
  const merged = await call('/crdt/merge', { crdt_type: 'TextCRDT', states: updates });
  assert.equal(merged.value, text.toString());
  console.log(`${updates.length} keystroke updates: ok`);
}

// 3. The other way: the service edits (UTF-16 offsets), Yjs reads and answers.
{
  const made = await call('/crdt/apply', {
    crdt_type: 'TextCRDT',
    actor: '55',
    ops: [
      { op: 'insert', index: 0, text: '😀 ok' },
      { op: 'insert', index: 2, text: ' é' },
    ],
  });
  const y = doc(66);
  Y.applyUpdate(y, bytes(made.state));
  assert.equal(y.getText('text').toString(), '😀 é ok');
  assert.equal(made.value, '😀 é ok');
  // Yjs edits on; the service sends what Yjs lacks of its own newer state.
  const service = await call('/crdt/apply', {
    crdt_type: 'TextCRDT', actor: '77', state: made.state,
    ops: [{ op: 'insert', index: 7, text: '!' }],
  });
  y.getText('text').insert(0, '> ');
  const diff = await call('/crdt/diff', {
    crdt_type: 'TextCRDT', state: service.state, since: b64(Y.encodeStateVector(y)),
  });
  Y.applyUpdate(y, bytes(diff.update));
  assert.equal(y.getText('text').toString(), '> 😀 é ok!');
  console.log('service edits read by Yjs: ok');
}

// 4. Maps (JSON documents) and arrays.
{
  const a = doc(88);
  const b = doc(99);
  a.getMap('map').set('title', 'Ramanujan');
  a.getMap('map').set('meta', { tags: ['crdt', 1729], draft: true });
  b.getMap('map').set('year', 1887);
  a.getArray('array').insert(0, [1, 'two']);
  b.getArray('array').insert(0, [{ three: 3 }]);
  const states = [b64(Y.encodeStateAsUpdate(a)), b64(Y.encodeStateAsUpdate(b))];
  const map = await call('/crdt/merge', { crdt_type: 'Map', root: 'map', states });
  const array = await call('/crdt/merge', { crdt_type: 'Array', root: 'array', states });
  Y.applyUpdate(a, bytes(map.state));
  Y.applyUpdate(b, Y.encodeStateAsUpdate(a));
  assert.deepEqual(map.value, a.getMap('map').toJSON());
  assert.deepEqual(array.value, a.getArray('array').toJSON());
  assert.deepEqual(b.getArray('array').toJSON(), a.getArray('array').toJSON());
  const edited = await call('/crdt/apply', {
    crdt_type: 'Map', root: 'map', actor: '111', state: map.state,
    ops: [{ op: 'set', key: 'meta', value: { draft: false } }, { op: 'remove', key: 'year' }],
  });
  Y.applyUpdate(a, bytes(edited.state));
  assert.deepEqual(a.getMap('map').toJSON(), { title: 'Ramanujan', meta: { draft: false } });
  console.log('maps and arrays: ok');
}
