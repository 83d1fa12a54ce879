// app.js — the grooved sequencer page.
//
// Owns the local copy of the session and speaks the protocol of
// docs/PROTOCOL.md like the reference client: own edits are applied at once
// and sent with a `seq`; broadcasts carrying our playerId are echoes and
// ignored (echo suppression); any broadcast's clientSeq confirms our pending
// edit of that number; an `error` for one of our edits, a seq gap or two hash
// mismatches fetch a snapshot, which replaces the local state. The socket
// reconnects by itself with exponential backoff and jitter; while it is not
// connected the grid is read-only, so no edit is made that could be lost.
import { Engine, SOUNDS } from './audio.js';

const $ = (id) => document.getElementById(id);
const S = {
  id: null, name: null, tracks: [], tempo: 120, swing: 0, effects: undefined, immutable: false,
  playerId: null, players: new Map(), playing: new Set(), snapshotAt: 0,
};
let ws = null;
let connected = false;
let seq = 0;
let lastServerSeq = -1;
let attempts = 0;
let reconnectTimer = null;
let lastInbound = Date.now();
let mismatches = 0;
let snapshotRequested = 0;
const pending = new Map(); // our seq -> message, until confirmed
const engine = new Engine();
const cursorEls = new Map();

const MAX_TRACKS = 16;
const STEP_COUNTS = [4, 8, 12, 16, 24, 32, 64, 96, 128];

// ---- boot -------------------------------------------------------------

async function boot() {
  const m = location.pathname.match(/^\/s\/([a-f0-9-]{36})$/);
  if (!m) {
    const r = await fetch('/api/sessions', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ state: { tracks: [], tempo: 120, swing: 0, version: 1 } }),
    });
    const b = await r.json().catch(() => ({}));
    if (!r.ok) { showError(b.error || `Could not create a session (${r.status})`); return; }
    location.replace(b.url);
    return;
  }
  S.id = m[1];
  const r = await fetch(`/api/sessions/${S.id}`);
  if (r.status === 404) { setStatus('offline', 'not found'); banner('This session does not exist.'); return; }
  if (!r.ok) { setStatus('offline', `error ${r.status}`); return; }
  const rec = await r.json();
  S.name = rec.name;
  S.immutable = rec.immutable;
  Object.assign(S, { tracks: rec.state.tracks, tempo: rec.state.tempo, swing: rec.state.swing });
  wireControls();
  render();
  connect();
  setInterval(clockSync, 5000);
  setInterval(sendHash, 30000);
  setInterval(checkStale, 30000);
  requestAnimationFrame(drawPlayhead);
}

// ---- connection -------------------------------------------------------

function connect() {
  setStatus(attempts ? 'reconnecting' : 'connecting');
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const sock = new WebSocket(`${proto}://${location.host}/api/sessions/${S.id}/ws`);
  ws = sock;
  sock.onmessage = (e) => { if (sock === ws) onMessage(e.data); };
  sock.onclose = (e) => {
    if (sock !== ws) return;
    ws = null;
    connected = false;
    render();
    if (e.code === 1000) { setStatus('offline', 'disconnected'); return; }
    scheduleReconnect();
  };
}

function scheduleReconnect() {
  if (reconnectTimer) return;
  const base = Math.min(30000, 1000 * 2 ** attempts);
  const delay = Math.round(base * (0.75 + Math.random() * 0.5));
  attempts++;
  setStatus('reconnecting', `reconnecting in ${Math.ceil(delay / 1000)} s`);
  reconnectTimer = setTimeout(() => { reconnectTimer = null; connect(); }, delay);
}

function checkStale() {
  // Clock sync answers every 5 s; a minute of silence means a dead socket.
  if (ws && Date.now() - lastInbound > 60000) {
    const old = ws;
    ws = null;
    connected = false;
    old.close(4000, 'stale');
    scheduleReconnect();
  }
}

function setStatus(state, text) {
  const el = $('status');
  el.dataset.state = state;
  el.textContent = text || state;
}

function send(msg, withSeq = true) {
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  if (withSeq) {
    msg.seq = ++seq;
    msg.ack = Math.max(lastServerSeq, 0);
    pending.set(msg.seq, msg);
  }
  ws.send(JSON.stringify(msg));
  return true;
}

function requestSnapshot() {
  if (Date.now() - snapshotRequested < 2000) return;
  snapshotRequested = Date.now();
  send({ type: 'request_snapshot' });
}

function clockSync() { if (connected) send({ type: 'clock_sync_request', clientTime: Date.now() }, false); }

function sendHash() {
  if (connected && pending.size === 0) send({ type: 'state_hash', hash: stateHash() }, false);
}

// ---- inbound ----------------------------------------------------------

function onMessage(data) {
  lastInbound = Date.now();
  if (data === 'pong') return;
  let m;
  try { m = JSON.parse(data); } catch { return; }
  if (typeof m.seq === 'number') {
    if (lastServerSeq >= 0 && m.seq >= lastServerSeq + 3) requestSnapshot();
    if (m.seq > lastServerSeq) lastServerSeq = m.seq;
  }
  if (m.clientSeq !== undefined) pending.delete(m.clientSeq);
  switch (m.type) {
    case 'snapshot': return onSnapshot(m);
    case 'error':
      showError(m.message || m.code);
      if (m.clientSeq !== undefined) { pending.delete(m.clientSeq); requestSnapshot(); }
      return;
    case 'player_joined': S.players.set(m.player.id, m.player); return renderPlayers();
    case 'player_left':
      S.players.delete(m.playerId); S.playing.delete(m.playerId);
      cursorEls.get(m.playerId)?.remove(); cursorEls.delete(m.playerId);
      return renderPlayers();
    case 'playback_started': S.playing.add(m.playerId); return renderPlayers();
    case 'playback_stopped': S.playing.delete(m.playerId); return renderPlayers();
    case 'cursor_moved': return showCursor(m);
    case 'state_mismatch': if (++mismatches >= 2) requestSnapshot(); return;
    case 'state_hash_match': mismatches = 0; return;
    case 'clock_sync_response': return;
    default:
      if (m.playerId && m.playerId === S.playerId) return; // our own echo
      if (applyRemote(m)) render();
  }
}

function onSnapshot(m) {
  if (m.snapshotTimestamp < S.snapshotAt) return;
  S.snapshotAt = m.snapshotTimestamp;
  S.tracks = m.state.tracks.map((t) => ({ ...t, soloed: !!t.soloed, stepCount: t.stepCount || 16 }));
  // Mute and solo are each listener's own: keep ours across resynchronisation.
  for (const t of S.tracks) {
    const mine = localMix.get(t.id);
    if (mine) Object.assign(t, mine);
  }
  S.tempo = m.state.tempo;
  S.swing = m.state.swing;
  S.effects = m.state.effects;
  S.immutable = m.immutable;
  S.playerId = m.playerId;
  S.players = new Map(m.players.map((p) => [p.id, p]));
  S.playing = new Set(m.playingPlayerIds);
  pending.clear();
  mismatches = 0;
  attempts = 0;
  connected = true;
  setStatus('connected');
  render();
}

function track(id) { return S.tracks.find((t) => t.id === id); }

function applyRemote(m) {
  const t = m.trackId ? track(m.trackId) : null;
  switch (m.type) {
    case 'step_toggled': if (t) t.steps[m.step] = m.value; return true;
    case 'tempo_changed': S.tempo = m.tempo; return true;
    case 'swing_changed': S.swing = m.swing; return true;
    case 'track_added': if (!track(m.track.id)) S.tracks.push(m.track); return true;
    case 'track_deleted': S.tracks = S.tracks.filter((x) => x.id !== m.trackId); return true;
    case 'track_cleared': if (t) { t.steps.fill(false); t.parameterLocks.fill(null); } return true;
    case 'track_sample_set': if (t) { t.sampleId = m.sampleId; t.name = m.name; } return true;
    case 'track_volume_set': if (t) t.volume = m.volume; return true;
    case 'track_transpose_set': if (t) t.transpose = m.transpose; return true;
    case 'track_step_count_set': if (t) t.stepCount = m.stepCount; return true;
    case 'track_playback_mode_set': if (t) t.playbackMode = m.playbackMode; return true;
    case 'parameter_lock_set': if (t) t.parameterLocks[m.step] = m.lock; return true;
    case 'effects_changed': S.effects = m.effects; return true;
    case 'fm_params_changed': if (t) t.fmParams = m.fmParams; return true;
    case 'sequence_copied': case 'sequence_moved': {
      const to = track(m.toTrackId);
      if (to) { to.steps = m.steps; to.parameterLocks = m.parameterLocks; to.stepCount = m.stepCount || 16; }
      const from = track(m.fromTrackId);
      if (m.type === 'sequence_moved' && from && from !== to) {
        from.steps.fill(false); from.parameterLocks.fill(null);
      }
      return true;
    }
    case 'session_name_changed': S.name = m.name || null; return true;
    default: return false; // track_muted / track_soloed from others: mute and solo stay local
  }
}

// ---- local edits ------------------------------------------------------

const localMix = new Map(); // trackId -> {muted, soloed}: never sent, like the reference

function editable() { return connected && !S.immutable; }

function toggleStep(t, i) {
  if (!editable()) return;
  t.steps[i] = !t.steps[i];
  send({ type: 'toggle_step', trackId: t.id, step: i });
  render();
}

function addTrack() {
  if (!editable() || S.tracks.length >= MAX_TRACKS) return;
  const sampleId = $('sample').value;
  const label = SOUNDS.find(([k]) => k === sampleId)?.[1] || sampleId;
  const t = {
    id: `track-${Date.now()}`, name: label, sampleId,
    steps: Array(128).fill(false), parameterLocks: Array(128).fill(null), volume: 1,
    muted: false, soloed: false, playbackMode: 'oneshot', transpose: 0, stepCount: 16,
  };
  S.tracks.push(t);
  send({ type: 'add_track', track: t });
  render();
}

function wireControls() {
  const sel = $('sample');
  for (const [k, label] of SOUNDS) sel.add(new Option(label, k));
  $('add-track').onclick = addTrack;
  $('play').onclick = async () => {
    if (engine.running) {
      engine.stop();
      send({ type: 'stop' });
    } else {
      await engine.start(() => ({ tempo: S.tempo, swing: S.swing, tracks: S.tracks }));
      send({ type: 'play' });
    }
    $('play').setAttribute('aria-pressed', String(engine.running));
    $('play').textContent = engine.running ? '■ Stop' : '▶ Play';
  };
  $('tempo').onchange = (e) => {
    if (!editable()) return;
    const v = Math.max(60, Math.min(180, Number(e.target.value) || 120));
    S.tempo = v;
    send({ type: 'set_tempo', tempo: v });
    render();
  };
  $('swing').oninput = (e) => { $('swing-out').textContent = e.target.value; };
  $('swing').onchange = (e) => {
    if (!editable()) return;
    S.swing = Number(e.target.value);
    send({ type: 'set_swing', swing: S.swing });
  };
  $('name').onchange = async (e) => {
    const name = e.target.value.trim();
    if (connected) {
      send({ type: 'set_session_name', name });
    } else {
      const r = await fetch(`/api/sessions/${S.id}`, {
        method: 'PATCH', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name }),
      });
      if (!r.ok) showError((await r.json().catch(() => ({}))).error || 'Rename failed');
    }
  };
  $('publish').onclick = () => copyTo('publish');
  $('remix').onclick = () => copyTo('remix');
  $('copy-link').onclick = () => navigator.clipboard?.writeText(location.href);
  $('grid-wrap').addEventListener('mousemove', onMouseMove);
}

async function copyTo(kind) {
  const r = await fetch(`/api/sessions/${S.id}/${kind}`, { method: 'POST' });
  const b = await r.json().catch(() => ({}));
  if (!r.ok) { showError(b.error || `${kind} failed`); return; }
  location.href = b.url;
}

let lastCursorAt = 0;
function onMouseMove(e) {
  if (!connected || Date.now() - lastCursorAt < 50) return;
  const box = $('grid-wrap').getBoundingClientRect();
  const x = ((e.clientX - box.left) / box.width) * 100;
  const y = ((e.clientY - box.top) / box.height) * 100;
  if (x < 0 || x > 100 || y < 0 || y > 100) return;
  lastCursorAt = Date.now();
  send({ type: 'cursor_move', position: { x, y } }, false);
}

function showCursor(m) {
  let el = cursorEls.get(m.playerId);
  if (!el) {
    el = document.createElement('div');
    el.className = 'cursor';
    $('cursors').append(el);
    cursorEls.set(m.playerId, el);
  }
  el.textContent = m.name;
  el.style.background = m.color;
  el.style.left = `${m.position?.x ?? 0}%`;
  el.style.top = `${m.position?.y ?? 0}%`;
}

// ---- parameter locks ----------------------------------------------------

// A small editor for one step's lock: pitch in semitones and volume. Locks
// go out as set_parameter_lock; the server clamps and stores them.
function openLockEditor(t, i, anchor) {
  if (!editable()) return;
  closeLockEditor();
  const lock = t.parameterLocks[i] || {};
  const box = document.createElement('div');
  box.id = 'lock-editor';
  box.className = 'lock-editor';
  box.innerHTML = `<strong>${t.name} · step ${i + 1}</strong>
    <label>Pitch <input name="pitch" type="number" min="-24" max="24" step="1" value="${lock.pitch ?? 0}"></label>
    <label>Volume <input name="volume" type="range" min="0" max="1" step="0.05" value="${lock.volume ?? 1}"></label>
    <span><button name="set">Set</button> <button name="clear">Clear</button> <button name="close">✕</button></span>`;
  const send_ = (value) => {
    t.parameterLocks[i] = value;
    send({ type: 'set_parameter_lock', trackId: t.id, step: i, lock: value });
    closeLockEditor();
    render();
  };
  box.querySelector('[name=set]').onclick = () => send_({
    pitch: Math.max(-24, Math.min(24, Number(box.querySelector('[name=pitch]').value) || 0)),
    volume: Math.max(0, Math.min(1, Number(box.querySelector('[name=volume]').value))),
  });
  box.querySelector('[name=clear]').onclick = () => send_(null);
  box.querySelector('[name=close]').onclick = closeLockEditor;
  const r = anchor.getBoundingClientRect();
  box.style.left = `${r.left + window.scrollX}px`;
  box.style.top = `${r.bottom + window.scrollY + 4}px`;
  document.body.append(box);
}

function closeLockEditor() { document.getElementById('lock-editor')?.remove(); }

// ---- rendering --------------------------------------------------------

function showError(text) {
  $('error').textContent = text;
  clearTimeout(showError.t);
  showError.t = setTimeout(() => { $('error').textContent = ''; }, 5000);
}

function banner(text) {
  $('banner').hidden = !text;
  $('banner').textContent = text || '';
}

function renderPlayers() {
  const ul = $('players');
  ul.replaceChildren(...[...S.players.values()].map((p) => {
    const li = document.createElement('li');
    li.textContent = (S.playing.has(p.id) ? '♪ ' : '') + p.name;
    li.style.background = p.color;
    li.dataset.playerId = p.id;
    if (p.id === S.playerId) li.className = 'me';
    return li;
  }));
}

function button(text, title, onclick, cls) {
  const b = document.createElement('button');
  b.textContent = text;
  b.title = title;
  b.onclick = onclick;
  if (cls) b.className = cls;
  return b;
}

function render() {
  const ro = !editable();
  $('name').value = S.name || '';
  $('name').disabled = S.immutable;
  if (document.activeElement !== $('tempo')) $('tempo').value = S.tempo;
  $('tempo').disabled = ro;
  $('swing').value = S.swing;
  $('swing-out').textContent = String(Math.round(S.swing));
  $('swing').disabled = ro;
  $('add-track').disabled = ro || S.tracks.length >= MAX_TRACKS;
  $('publish').hidden = S.immutable;
  $('remix').hidden = !S.immutable;
  banner(S.immutable ? 'This session is published and read-only. Remix it to make your own copy.' : '');
  document.body.classList.toggle('readonly', ro);

  const rows = S.tracks.map((t) => {
    const row = document.createElement('div');
    row.className = 'track';
    row.dataset.trackId = t.id;
    const info = document.createElement('div');
    info.className = 'info';
    const name = document.createElement('span');
    name.className = 'tname';
    name.textContent = t.name;
    name.title = t.sampleId;
    const mix = localMix.get(t.id) || { muted: false, soloed: false };
    const mute = button('M', 'Mute (only for you)', () => {
      localMix.set(t.id, { ...mix, muted: !mix.muted }); t.muted = !mix.muted; render();
    }, mix.muted ? 'muted' : '');
    const solo = button('S', 'Solo (only for you)', () => {
      localMix.set(t.id, { ...mix, soloed: !mix.soloed }); t.soloed = !mix.soloed; render();
    }, mix.soloed ? 'soloed' : '');
    const vol = document.createElement('input');
    vol.type = 'range'; vol.min = '0'; vol.max = '1'; vol.step = '0.01'; vol.value = String(t.volume);
    vol.title = 'Volume';
    vol.disabled = ro;
    vol.onchange = () => { t.volume = Number(vol.value); send({ type: 'set_track_volume', trackId: t.id, volume: t.volume }); };
    const count = document.createElement('select');
    count.title = 'Steps';
    count.disabled = ro;
    for (const n of STEP_COUNTS) count.add(new Option(String(n), String(n), false, n === t.stepCount));
    count.onchange = () => {
      t.stepCount = Number(count.value);
      send({ type: 'set_track_step_count', trackId: t.id, stepCount: t.stepCount });
      render();
    };
    const clear = button('Clear', 'Clear this track', () => {
      if (!editable()) return;
      t.steps.fill(false); t.parameterLocks.fill(null);
      send({ type: 'clear_track', trackId: t.id }); render();
    });
    const del = button('✕', 'Delete this track', () => {
      if (!editable()) return;
      S.tracks = S.tracks.filter((x) => x !== t);
      send({ type: 'delete_track', trackId: t.id }); render();
    });
    clear.disabled = del.disabled = ro;
    const tr = document.createElement('input');
    tr.type = 'number'; tr.min = '-24'; tr.max = '24'; tr.step = '1'; tr.value = String(t.transpose);
    tr.title = 'Transpose (semitones)';
    tr.className = 'transpose';
    tr.disabled = ro;
    tr.onchange = () => {
      t.transpose = Math.max(-24, Math.min(24, Math.round(Number(tr.value) || 0)));
      send({ type: 'set_track_transpose', trackId: t.id, transpose: t.transpose });
      render();
    };
    const mode = button(t.playbackMode === 'gate' ? 'Gate' : 'Shot',
      'Playback: one-shot, or gate (notes last one step)', () => {
        if (!editable()) return;
        t.playbackMode = t.playbackMode === 'gate' ? 'oneshot' : 'gate';
        send({ type: 'set_track_playback_mode', trackId: t.id, playbackMode: t.playbackMode });
        render();
      }, 'mode');
    mode.disabled = ro;
    info.append(name, mute, solo, vol, tr, mode, count, clear, del);
    const steps = document.createElement('div');
    steps.className = 'steps';
    for (let i = 0; i < (t.stepCount || 16); i++) {
      const b = document.createElement('button');
      b.className = 'step' + (i % 4 === 0 ? ' beat' : '') + (t.steps[i] ? ' on' : '')
        + (t.parameterLocks?.[i] ? ' locked' : '');
      b.dataset.step = String(i);
      b.setAttribute('aria-pressed', String(!!t.steps[i]));
      b.setAttribute('aria-label', `${t.name} step ${i + 1}`);
      b.disabled = ro;
      b.onclick = (e) => (e.shiftKey ? openLockEditor(t, i, b) : toggleStep(t, i));
      b.oncontextmenu = (e) => { e.preventDefault(); openLockEditor(t, i, b); };
      const lk = t.parameterLocks?.[i];
      if (lk) b.title = `pitch ${lk.pitch ?? 0}, volume ${lk.volume ?? 1}`;
      steps.append(b);
    }
    row.append(info, steps);
    return row;
  });
  $('grid').replaceChildren(...rows);
  renderPlayers();
  lastPlayhead = -2;
}

let lastPlayhead = -1;
function drawPlayhead() {
  const cur = engine.currentStep();
  if (cur !== lastPlayhead) {
    for (const el of document.querySelectorAll('.step.playhead')) el.classList.remove('playhead');
    if (cur >= 0) {
      for (const t of S.tracks) {
        const row = document.querySelector(`.track[data-track-id="${CSS.escape(t.id)}"]`);
        row?.querySelector(`.step[data-step="${cur % (t.stepCount || 16)}"]`)?.classList.add('playhead');
      }
    }
    lastPlayhead = cur;
  }
  requestAnimationFrame(drawPlayhead);
}

// ---- state hash (the reference's §3.7) ---------------------------------

function stateHash() {
  const canon = {
    tracks: S.tracks.map((t) => {
      const n = t.stepCount ?? 16;
      const fit = (a, fill) => { const r = (a || []).slice(0, n); while (r.length < n) r.push(fill); return r; };
      return {
        id: t.id, name: t.name, sampleId: t.sampleId, steps: fit(t.steps, false),
        parameterLocks: fit(t.parameterLocks, null), volume: t.volume,
        playbackMode: t.playbackMode, transpose: t.transpose, stepCount: n,
      };
    }),
    tempo: S.tempo, swing: S.swing,
  };
  const s = JSON.stringify(canon);
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
  return (h >>> 0).toString(16).padStart(8, '0');
}

boot().catch((e) => { setStatus('offline', 'error'); showError(String(e)); });
