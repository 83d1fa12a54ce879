// app.js — the grooved page: session state, the protocol, and every edit.
//
// Owns the local copy of the session (S) and speaks the protocol of
// docs/PROTOCOL.md like the reference client: own edits are applied at once
// and sent with a `seq`; any broadcast's clientSeq confirms our pending edit
// of that number; an `error` for one of our edits, a seq gap or two hash
// mismatches fetch a snapshot, which replaces the local state. Unlike the
// reference, echoes are not simply ignored: while our edits of a target (a
// step, a track's volume, the tempo ...) are in flight, others' broadcasts
// of it are folded in as the server will order them, and the echo of our
// last edit applies the server's value, so two players editing the same
// thing at once always end on the same value (settle()).
//
// Every change tells the view exactly what changed (one cell, one control,
// one row); nothing re-renders the whole grid. While the socket is down,
// edits still apply locally and wait in a queue keyed by what they set (a
// step's wanted value, a track's volume, ...); after the reconnect snapshot
// each is re-applied to the fresh state and sent only if it still changes
// something, so a queued toggle can never flip someone else's edit back.
//
// Connection states: connecting → connected ⇄ reconnecting (live countdown);
// full (the upgrade was refused and the session's REST read counts as many
// players as its limit: see "Full sessions" in docs/PROTOCOL.md); offline
// (session gone or closed for good).
import { Engine, withDefaults } from './audio.js';
import { soundName, FM_DEFAULTS, isFM } from './sounds.js';
import { createUI } from './ui.js';

const S = {
  id: null, name: null, tracks: [], tempo: 120, swing: 0, effects: undefined, immutable: false,
  remixedFrom: null, remixedFromName: null, loaded: false,
  playerId: null, players: new Map(), playing: new Set(), snapshotAt: 0,
  conn: 'connecting', retryAt: 0,
};
const MAX_TRACKS = 16;
const engine = new Engine();
let ui = null;

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
const inFlight = new Map(); // target key -> our edits of it the server has not echoed yet
const queue = new Map(); // key -> replay(), edits made while not connected
const localMix = new Map(); // trackId -> {muted, soloed}: never sent, like the reference

const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
const track = (id) => S.tracks.find((t) => t.id === id);

// ---- boot -------------------------------------------------------------

async function boot() {
  const m = location.pathname.match(/^\/s\/([a-f0-9-]{36})$/);
  if (!m) {
    const r = await fetch('/api/sessions', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ state: { tracks: [], tempo: 120, swing: 0, version: 1 } }),
    });
    const b = await r.json().catch(() => ({}));
    if (!r.ok) { document.getElementById('error').textContent = b.error || `Could not create a session (${r.status})`; return; }
    location.replace(b.url);
    return;
  }
  S.id = m[1];
  ui = createUI(S, actions, engine);
  const r = await fetch(`/api/sessions/${S.id}`, { cache: 'no-store' });
  if (r.status === 404) { setConn('offline', 'Not found'); ui.banner('This session does not exist.'); return; }
  if (!r.ok) { setConn('offline', `Error ${r.status}`); return; }
  const rec = await r.json();
  S.name = rec.name;
  S.immutable = rec.immutable;
  S.remixedFrom = rec.remixedFrom;
  S.remixedFromName = rec.remixedFromName;
  S.tracks = rec.state.tracks.map(normaliseTrack);
  Object.assign(S, { tempo: rec.state.tempo, swing: rec.state.swing, effects: rec.state.effects });
  S.loaded = true;
  engine.setEffects(S.effects, S.tempo);
  ui.reconcile();
  connect();
  setInterval(clockSync, 5000);
  setInterval(sendHash, 30000);
  setInterval(checkStale, 30000);
}

function normaliseTrack(t) {
  const pad = (a, n, fill) => { const r = Array.isArray(a) ? a.slice(0, n) : []; while (r.length < n) r.push(fill); return r; };
  const out = {
    ...t, steps: pad(t.steps, 128, false), parameterLocks: pad(t.parameterLocks, 128, null),
    volume: t.volume ?? 1, transpose: t.transpose ?? 0, stepCount: t.stepCount || 16,
    playbackMode: t.playbackMode || 'oneshot', muted: false, soloed: false,
  };
  // Mute and solo are each listener's own: keep ours across resynchronisation.
  Object.assign(out, localMix.get(t.id) || {});
  return out;
}

// ---- connection -------------------------------------------------------

function setConn(state, detail) {
  S.conn = state;
  ui.status(state, detail, queue.size);
}

function connect() {
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  if (S.conn !== 'full') setConn(attempts ? 'reconnecting' : 'connecting');
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const sock = new WebSocket(`${proto}://${location.host}/api/sessions/${S.id}/ws`);
  let opened = false;
  let timedOut = false;
  ws = sock;
  // A socket that neither opens nor fails (a black-holed network) is given up
  // after 10 s, so the countdown and retries go on.
  const openTimer = setTimeout(() => { if (!opened && sock === ws) { timedOut = true; sock.close(); } }, 10000);
  sock.onopen = () => { opened = true; clearTimeout(openTimer); };
  sock.onmessage = (e) => { if (sock === ws) onMessage(e.data); };
  sock.onclose = async (e) => {
    clearTimeout(openTimer);
    if (sock !== ws) return;
    ws = null;
    const was = connected;
    connected = false;
    if (e.code === 1000) { setConn('offline', 'Disconnected'); return; }
    if (was) ui.announce('Connection lost. Reconnecting.');
    // A refused upgrade (the 503 of a full session) reaches a browser only as
    // a close before open. The session's REST read says whether it is full
    // (its player count against the limit); without those headers (another
    // server), a session that can be read was refused for fullness.
    const full = e.code === 1013 || (!opened && !timedOut && await sessionIsFull());
    if (sock !== ws && ws) return;
    if (full && S.conn !== 'full') ui.announce('This session is full: 10 players are already here.');
    if (full) S.conn = 'full';
    else if (S.conn === 'full') { S.conn = 'reconnecting'; attempts = 0; } // a place freed: retry soon
    scheduleReconnect(full);
  };
}

async function sessionIsFull() {
  try {
    const r = await fetch(`/api/sessions/${S.id}`, { cache: 'no-store' });
    if (r.status === 404) { setConn('offline', 'Not found'); return false; }
    const players = r.headers.get('x-grooved-players');
    const limit = r.headers.get('x-grooved-player-limit');
    if (r.ok && players !== null && limit !== null) return Number(players) >= Number(limit);
    return r.ok;
  } catch {
    return false;
  }
}

function scheduleReconnect(full) {
  if (reconnectTimer || S.conn === 'offline') return;
  const base = full ? 5000 : Math.min(30000, 1000 * 2 ** attempts);
  const delay = Math.round(base * (0.75 + Math.random() * 0.5));
  attempts++;
  S.retryAt = Date.now() + delay;
  setConn(full ? 'full' : 'reconnecting');
  reconnectTimer = setTimeout(() => { reconnectTimer = null; connect(); }, delay);
}

function retryNow() {
  if (connected || S.conn === 'offline') return;
  if (ws) return;
  connect();
}

function checkStale() {
  // Clock sync answers every 5 s; a minute of silence means a dead socket.
  if (ws && connected && Date.now() - lastInbound > 60000) {
    const old = ws;
    ws = null;
    connected = false;
    old.close(4000, 'stale');
    scheduleReconnect(false);
  }
}

function send(msg, withSeq = true) {
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  if (cursorPending && msg.type !== 'cursor_move') flushCursor();
  if (withSeq) {
    msg.seq = ++seq;
    msg.ack = Math.max(lastServerSeq, 0);
    pending.set(msg.seq, msg);
    const key = targetOf(msg);
    if (key) inFlight.set(key, (inFlight.get(key) || 0) + 1);
  }
  ws.send(JSON.stringify(msg));
  return true;
}

// What an edit or a broadcast sets, so concurrent edits of the same thing
// converge: the server applies edits in one order, but each page applies
// its own at once and the others' later.
function targetOf(m) {
  const t = m.trackId;
  switch (m.type) {
    case 'toggle_step': case 'step_toggled': return `step:${t}:${m.step}`;
    case 'set_parameter_lock': case 'parameter_lock_set': return `lock:${t}:${m.step}`;
    case 'set_tempo': case 'tempo_changed': return 'tempo';
    case 'set_swing': case 'swing_changed': return 'swing';
    case 'set_session_name': case 'session_name_changed': return 'name';
    case 'set_effects': case 'effects_changed': return 'effects';
    case 'set_track_volume': case 'track_volume_set': return `volume:${t}`;
    case 'set_track_transpose': case 'track_transpose_set': return `transpose:${t}`;
    case 'set_track_playback_mode': case 'track_playback_mode_set': return `mode:${t}`;
    case 'set_track_step_count': case 'track_step_count_set': return `count:${t}`;
    case 'set_track_sample': case 'track_sample_set': return `sample:${t}`;
    case 'set_fm_params': case 'fm_params_changed': return `fm:${t}`;
    default: return null;
  }
}

// A broadcast of something we also have edits of in flight. Ours are
// ordered after it at the server, so: a set keeps our value; a toggle flips
// the server's value once per toggle of ours still to come. Our own echo
// that settles the last of our edits carries the server's value: apply it
// (it may differ, e.g. clamped). Returns true when m should be applied.
function settle(m) {
  const key = targetOf(m);
  const mine = m.playerId && m.playerId === S.playerId;
  if (!key) return !mine;
  const n = inFlight.get(key) || 0;
  if (mine) {
    if (n <= 1) inFlight.delete(key);
    else inFlight.set(key, n - 1);
    return n <= 1;
  }
  if (n === 0) return true;
  if (m.type === 'step_toggled') return applyRemote({ ...m, value: m.value !== (n % 2 === 1) }), false;
  return false;
}

function requestSnapshot() {
  if (Date.now() - snapshotRequested < 2000) return;
  snapshotRequested = Date.now();
  send({ type: 'request_snapshot' });
}

function clockSync() { if (connected) send({ type: 'clock_sync_request', clientTime: Date.now() }, false); }

// The pointer goes out at most once per 50 ms window (the reference
// client's rate) and its last position always does: the first move after a
// send opens a window, and the position at its end goes out then, or
// earlier, just before the next other message this page sends (a click's
// toggle), in the same task; so a burst of clicks can send one per click. A
// WebSocket's first send in a task costs the main thread about 0.2–0.3 ms,
// a second one right after it almost nothing, so a click that follows a
// move pays for one send, not two. `positionOf` reads the layout only when
// the message is built, once per window, not per event.
let cursorPending = null;
let cursorTimer = 0;
function flushCursor() {
  clearTimeout(cursorTimer);
  cursorTimer = 0;
  const positionOf = cursorPending;
  cursorPending = null;
  let position = null;
  try { position = connected && positionOf?.(); } catch { return; } // never in the way of the edit it precedes
  if (!position) return;
  send({ type: 'cursor_move', position }, false);
}

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
      ui.error(m.message || m.code);
      if (m.clientSeq !== undefined) { pending.delete(m.clientSeq); snapshotRequested = 0; requestSnapshot(); }
      return;
    case 'player_joined':
      S.players.set(m.player.id, m.player);
      ui.announce(`${m.player.name} joined`);
      return ui.players();
    case 'player_left': {
      const p = S.players.get(m.playerId);
      S.players.delete(m.playerId);
      S.playing.delete(m.playerId);
      ui.removeCursor(m.playerId);
      if (p) ui.announce(`${p.name} left`);
      return ui.players();
    }
    case 'playback_started': S.playing.add(m.playerId); return ui.players();
    case 'playback_stopped': S.playing.delete(m.playerId); return ui.players();
    case 'cursor_moved': return ui.cursor(m);
    case 'state_mismatch': if (++mismatches >= 2) requestSnapshot(); return;
    case 'state_hash_match': mismatches = 0; return;
    case 'clock_sync_response': return;
    default:
      if (settle(m)) applyRemote(m);
  }
}

function onSnapshot(m) {
  if (m.snapshotTimestamp < S.snapshotAt) return;
  S.snapshotAt = m.snapshotTimestamp;
  S.tracks = m.state.tracks.map(normaliseTrack);
  S.tempo = m.state.tempo;
  S.swing = m.state.swing;
  S.effects = m.state.effects;
  S.immutable = m.immutable;
  S.playerId = m.playerId;
  S.players = new Map(m.players.map((p) => [p.id, p]));
  S.playing = new Set(m.playingPlayerIds);
  pending.clear();
  inFlight.clear();
  mismatches = 0;
  attempts = 0;
  const first = !connected;
  connected = true;
  engine.setEffects(S.effects, S.tempo);
  ui.reconcile();
  if (first) {
    // Edits made while offline, re-applied to the state we now have.
    const replays = [...queue.values()];
    queue.clear();
    for (const replay of replays) replay();
    setConn('connected');
    ui.announce(replays.length ? `Connected. ${replays.length} waiting edits sent.` : 'Connected');
    if (engine.running) send({ type: 'play' });
  }
}

function applyRemote(m) {
  const t = m.trackId ? track(m.trackId) : null;
  const who = S.players.get(m.playerId)?.name || 'Someone';
  switch (m.type) {
    case 'step_toggled': if (t) { t.steps[m.step] = m.value; ui.cell(t, m.step); } return;
    case 'tempo_changed': S.tempo = m.tempo; engine.setEffects(S.effects, S.tempo); return ui.global('tempo');
    case 'swing_changed': S.swing = m.swing; return ui.global('swing');
    case 'track_added':
      if (!track(m.track.id)) { S.tracks.push(normaliseTrack(m.track)); ui.addTrack(track(m.track.id)); }
      return;
    case 'track_deleted':
      if (t) { S.tracks = S.tracks.filter((x) => x !== t); ui.removeTrack(t.id); ui.toast(`${who} deleted ${t.name}`); }
      return;
    case 'track_cleared':
      if (t) { t.steps.fill(false); t.parameterLocks.fill(null); ui.row(t); }
      return;
    case 'track_sample_set': if (t) { t.sampleId = m.sampleId; t.name = m.name ?? t.name; ui.trackField(t, 'sample'); } return;
    case 'track_volume_set': if (t) { t.volume = m.volume; ui.trackField(t, 'volume'); } return;
    case 'track_transpose_set': if (t) { t.transpose = m.transpose; ui.trackField(t, 'transpose'); } return;
    case 'track_step_count_set': if (t) { t.stepCount = m.stepCount; ui.trackField(t, 'stepCount'); } return;
    case 'track_playback_mode_set': if (t) { t.playbackMode = m.playbackMode; ui.trackField(t, 'mode'); } return;
    case 'parameter_lock_set': if (t) { t.parameterLocks[m.step] = m.lock; ui.cell(t, m.step); } return;
    case 'effects_changed': S.effects = m.effects; engine.setEffects(S.effects, S.tempo); return ui.global('effects');
    case 'fm_params_changed': if (t) { t.fmParams = m.fmParams; ui.trackField(t, 'fm'); } return;
    case 'sequence_copied': case 'sequence_moved': {
      const to = track(m.toTrackId);
      const from = track(m.fromTrackId);
      if (to) {
        to.steps = normaliseTrack({ steps: m.steps }).steps;
        to.parameterLocks = normaliseTrack({ parameterLocks: m.parameterLocks }).parameterLocks;
        to.stepCount = m.stepCount || 16;
      }
      if (m.type === 'sequence_moved' && from && from !== to) { from.steps.fill(false); from.parameterLocks.fill(null); }
      if (from && from !== to) ui.row(from);
      if (to) { ui.trackField(to, 'stepCount'); ui.row(to); }
      return;
    }
    case 'session_name_changed': S.name = m.name || null; return ui.global('name');
    default: // track_muted / track_soloed from others: mute and solo stay local
  }
}

// ---- edits ------------------------------------------------------------

// Published sessions are read-only; so is a full session until we are in:
// its edits could wait indefinitely, so they are refused, and the banner says why.
function editable() { return S.loaded && !S.immutable && S.conn !== 'full'; }

// One edit: apply() changes S and the view and says whether there is
// anything to send; msg() builds the message. Not connected: the edit is
// queued under `key` (a later edit of the same thing replaces it) and
// replayed after the reconnect snapshot.
function edit(key, apply, msg) {
  if (!editable()) return false;
  if (!apply()) return false;
  if (!connected || !send(msg())) {
    queue.delete(key);
    queue.set(key, () => { if (apply()) send(msg()); });
    ui.status(S.conn, undefined, queue.size);
  }
  return true;
}

function setStep(t, i, want) {
  const id = t.id;
  return edit(`step:${id}:${i}`, () => {
    const tr = track(id);
    if (!tr || tr.steps[i] === want) return false;
    tr.steps[i] = want;
    ui.cell(tr, i);
    return true;
  }, () => ({ type: 'toggle_step', trackId: id, step: i }));
}

// Sets a field of a track (value already clamped); `field` names the view
// control to refresh.
function setTrackField(t, prop, value, type, wire, field) {
  const id = t.id;
  return edit(`${prop}:${id}`, () => {
    const tr = track(id);
    if (!tr) return false;
    tr[prop] = value;
    ui.trackField(tr, field);
    return true;
  }, () => ({ type, trackId: id, [wire]: value }));
}

function setLock(t, i, lock) {
  const id = t.id;
  return edit(`lock:${id}:${i}`, () => {
    const tr = track(id);
    if (!tr) return false;
    tr.parameterLocks[i] = lock;
    ui.cell(tr, i);
    return true;
  }, () => ({ type: 'set_parameter_lock', trackId: id, step: i, lock }));
}

function newTrack(sampleId) {
  return {
    id: `track-${Date.now()}-${Math.random().toString(36).slice(2, 6)}`, name: soundName(sampleId), sampleId,
    steps: Array(128).fill(false), parameterLocks: Array(128).fill(null), volume: 1,
    muted: false, soloed: false, playbackMode: 'oneshot', transpose: 0, stepCount: 16,
  };
}

function addTrackObject(obj) {
  const copy = () => ({ ...obj, steps: obj.steps.slice(), parameterLocks: obj.parameterLocks.slice(), muted: false, soloed: false });
  return edit(`add:${obj.id}`, () => {
    if (track(obj.id) || S.tracks.length >= MAX_TRACKS) return false;
    S.tracks.push(copy());
    ui.addTrack(track(obj.id));
    return true;
  }, () => ({ type: 'add_track', track: copy() }));
}

function deleteTrack(t) {
  const id = t.id;
  return edit(`del:${id}`, () => {
    const tr = track(id);
    if (!tr) return false;
    S.tracks = S.tracks.filter((x) => x !== tr);
    ui.removeTrack(id);
    return true;
  }, () => ({ type: 'delete_track', trackId: id }));
}

function clearTrack(t) {
  const id = t.id;
  return edit(`clear:${id}`, () => {
    const tr = track(id);
    if (!tr) return false;
    tr.steps.fill(false);
    tr.parameterLocks.fill(null);
    ui.row(tr);
    return true;
  }, () => ({ type: 'clear_track', trackId: id }));
}

async function createCopy(kind) {
  const r = await fetch(`/api/sessions/${S.id}/${kind}`, { method: 'POST' });
  const b = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(b.error || `${kind} failed (${r.status})`);
  return b;
}

// The interface the view calls. Every method checks editability itself.
const actions = {
  editable,
  retryNow,
  toggleStep: (t, i) => setStep(t, i, !t.steps[i]),
  setStep,
  setLock,
  setTempo(v) {
    const tempo = clamp(Number(v) || 120, 60, 180);
    return edit('tempo', () => { S.tempo = tempo; engine.setEffects(S.effects, S.tempo); ui.global('tempo'); return true; },
      () => ({ type: 'set_tempo', tempo }));
  },
  setSwing(v) {
    const swing = clamp(Number(v) || 0, 0, 100);
    return edit('swing', () => { S.swing = swing; ui.global('swing'); return true; }, () => ({ type: 'set_swing', swing }));
  },
  setName(v) {
    const name = String(v).trim().slice(0, 100);
    return edit('name', () => { S.name = name || null; ui.global('name'); return true; },
      () => ({ type: 'set_session_name', name }));
  },
  setEffects(group, key, value) {
    const fx = withDefaults(S.effects);
    fx[group][key] = value;
    return edit('effects', () => { S.effects = fx; engine.setEffects(S.effects, S.tempo); ui.global('effects'); return true; },
      () => ({ type: 'set_effects', effects: fx }));
  },
  addTrack(sampleId) {
    if (S.tracks.length >= MAX_TRACKS) { ui.error('A session holds at most 16 tracks'); return null; }
    const t = newTrack(sampleId);
    return addTrackObject(t) ? t : null;
  },
  deleteTrack(t) {
    const saved = { ...t, steps: t.steps.slice(), parameterLocks: t.parameterLocks.slice() };
    if (!deleteTrack(t)) return;
    ui.toast(`Deleted ${t.name}`, { action: 'Undo', onAction: () => addTrackObject(saved) });
  },
  clearTrack(t) {
    const steps = t.steps.slice();
    const locks = t.parameterLocks.slice();
    if (!clearTrack(t)) return;
    ui.toast(`Cleared ${t.name}`, {
      action: 'Undo',
      onAction: () => {
        const tr = track(t.id);
        if (!tr) return;
        locks.forEach((l, i) => { if (l) setLock(tr, i, l); });
        steps.forEach((on, i) => { if (on) setStep(tr, i, true); });
      },
    });
  },
  setSample(t, sampleId) {
    const id = t.id;
    const name = soundName(sampleId);
    return edit(`sample:${id}`, () => {
      const tr = track(id);
      if (!tr) return false;
      tr.sampleId = sampleId;
      tr.name = name;
      ui.trackField(tr, 'sample');
      return true;
    }, () => ({ type: 'set_track_sample', trackId: id, sampleId, name }));
  },
  setVolume: (t, v) => setTrackField(t, 'volume', clamp(Number(v), 0, 1), 'set_track_volume', 'volume', 'volume'),
  setTranspose: (t, v) => setTrackField(t, 'transpose', clamp(Math.round(Number(v) || 0), -24, 24),
    'set_track_transpose', 'transpose', 'transpose'),
  setMode: (t, mode) => setTrackField(t, 'playbackMode', mode, 'set_track_playback_mode', 'playbackMode', 'mode'),
  setStepCount: (t, n) => setTrackField(t, 'stepCount', n, 'set_track_step_count', 'stepCount', 'stepCount'),
  setFM(t, key, value) {
    const fm = { ...(t.fmParams || FM_DEFAULTS[t.sampleId] || { harmonicity: 3, modulationIndex: 10 }) };
    fm[key] = key === 'harmonicity' ? clamp(value, 0.5, 10) : clamp(value, 0, 20);
    return setTrackField(t, 'fmParams', { harmonicity: fm.harmonicity, modulationIndex: fm.modulationIndex },
      'set_fm_params', 'fmParams', 'fm');
  },
  isFM,
  // Mute and solo are each listener's own, as in the reference client.
  mix(t, key) {
    const mix = { muted: t.muted, soloed: t.soloed, [key]: !t[key] };
    localMix.set(t.id, mix);
    Object.assign(t, mix);
    ui.trackField(t, 'mix');
  },
  async togglePlay() {
    if (engine.running) {
      engine.stop();
      send({ type: 'stop' }, false);
    } else {
      await engine.start(() => S);
      send({ type: 'play' }, false);
    }
    ui.global('play');
  },
  publish: () => createCopy('publish'),
  async remix() {
    const b = await createCopy('remix');
    location.href = b.url;
  },
  cursorMove(positionOf) {
    if (!connected) return;
    cursorPending = positionOf;
    if (!cursorTimer) cursorTimer = setTimeout(flushCursor, 50);
  },
};

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

boot().catch((e) => {
  console.error(e);
  const el = document.getElementById('error');
  if (el) el.textContent = String(e);
});
