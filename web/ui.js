// ui.js — the page's view: board, track rows, controls, pop-ups and dialogs.
//
// Owns the DOM under #board and the transport. It is told what changed
// (one cell, one track field, one row added or removed) and touches only
// that; reconcile() (snapshots) compares and updates in place, so the grid is
// never rebuilt and focus, scroll and half-done gestures survive every edit.
//
// A bound control never overwrites an element the user is in the middle of
// using: a text, number or select field while it has focus, a slider while
// it is being dragged. A remote value for such a control waits (the element
// gets data-stale) and is shown when the gesture ends (blur, pointer up).
//
// The board is one CSS grid: the ruler, then per track its head (name and
// controls, sticky on the left), its row of steps, a drawer and a piano
// roll, each placed by the track's index (--i). In the DOM the step rows
// come first, inside the role=grid element, so the pattern is one Tab stop
// (roving tabindex, arrow keys) reached right after the transport.
import { SOUNDS, CATEGORIES, isMelodic, isFM, FM_DEFAULTS, noteName, baseNote, knownSound } from './sounds.js';
import { DELAY_BEATS, withDefaults } from './audio.js';

const STEP_COUNTS = [4, 8, 12, 16, 24, 32, 64, 96, 128];
const LONG_PRESS_MS = 450;
const $ = (id) => document.getElementById(id);
const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
const phone = window.matchMedia('(max-width: 600px)');

// h('button', {class: 'x', 'aria-label': 'y'}, 'text'): attributes only;
// event handlers are attached by the caller.
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  if (attrs) for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined && v !== false) el.setAttribute(k, v === true ? '' : String(v));
  for (const k of kids) if (k !== null && k !== undefined) el.append(k);
  return el;
}

function soundOptions(select) {
  for (const [cat, label] of CATEGORIES) {
    const g = h('optgroup', { label });
    for (const [id, name, c] of SOUNDS) if (c === cat) g.append(new Option(name, id));
    select.append(g);
  }
}

// Copies text: the clipboard API where the page may use it, else the old
// selection + execCommand path (plain HTTP off localhost has no
// navigator.clipboard). Returns true when the text reached the clipboard.
export async function copyText(text, input) {
  if (navigator.clipboard && window.isSecureContext) {
    try { await navigator.clipboard.writeText(text); return true; } catch { /* fall through */ }
  }
  if (input) { input.focus(); input.select(); input.setSelectionRange(0, text.length); }
  try { return document.execCommand('copy'); } catch { return false; }
}

export function createUI(S, A, engine) {
  const board = $('board');
  const grid = $('grid');
  const heads = $('heads');
  const views = new Map(); // trackId -> view of one track
  const track = (id) => S.tracks.find((t) => t.id === id);
  let active = { id: null, step: 0 }; // the grid's one tabbable cell
  let dragging = null;
  let rulerSteps = -1;
  let longPress = null;
  let suppress = null;
  let lock = null; // the open lock editor {box, anchor}
  let uid = 0;

  // ---- bound controls ----------------------------------------------------

  const busy = (el) => el === dragging
    || (el.type !== 'range' && el.type !== 'checkbox' && el.tagName !== 'BUTTON' && document.activeElement === el);

  // show() puts the model's value into el unless the user is using it.
  function bind(el, get, put = (e, v) => { e.value = String(v); }) {
    const show = () => {
      if (busy(el)) { el.dataset.stale = '1'; return; }
      if (el.dataset.stale) delete el.dataset.stale;
      put(el, get());
    };
    el._show = show;
    if (el.type === 'range') el.addEventListener('pointerdown', () => startDrag(el));
    el.addEventListener('blur', () => setTimeout(show, 0));
    if (el.tagName === 'INPUT' && el.type !== 'range') {
      el.addEventListener('keydown', (e) => {
        if (e.key === 'Escape') { e.stopPropagation(); el.value = String(get()); delete el.dataset.stale; }
        if (e.key === 'Enter' && el.type === 'text') el.blur();
      });
    }
    return show;
  }

  // The end of a drag is listened for only while one lasts: a listener on
  // the document runs (and costs) on every click anywhere.
  function startDrag(el) {
    dragging = el;
    document.addEventListener('pointerup', endDrag, true);
    document.addEventListener('pointercancel', endDrag, true);
  }
  function endDrag() {
    const el = dragging;
    document.removeEventListener('pointerup', endDrag, true);
    document.removeEventListener('pointercancel', endDrag, true);
    if (!el) return;
    dragging = null;
    setTimeout(() => el._show?.(), 0);
  }

  // ---- transport and header ------------------------------------------------

  const showName = bind($('name'), () => S.name || '');
  const showTempo = bind($('tempo'), () => S.tempo);
  const showSwing = bind($('swing'), () => S.swing, (e, v) => { e.value = String(v); $('swing-out').textContent = String(Math.round(v)); });
  $('name').addEventListener('change', (e) => A.setName(e.target.value));
  $('tempo').addEventListener('change', (e) => A.setTempo(e.target.value));
  $('swing').addEventListener('input', (e) => {
    $('swing-out').textContent = e.target.value;
    if (A.editable()) S.swing = Number(e.target.value); // heard while dragging; sent on release
  });
  $('sample').addEventListener('change', (e) => engine.preview({ sampleId: e.target.value, volume: 1 }, 0));
  $('swing').addEventListener('change', (e) => A.setSwing(e.target.value));
  $('play').addEventListener('click', () => A.togglePlay());
  $('retry').addEventListener('click', () => A.retryNow());
  $('add-track').addEventListener('click', () => {
    const t = A.addTrack($('sample').value);
    if (t) announce(`Added ${t.name}`);
  });
  soundOptions($('sample'));
  const follow = $('follow');
  follow.checked = localStorage.getItem('grooved.follow') !== '0';
  follow.addEventListener('change', () => localStorage.setItem('grooved.follow', follow.checked ? '1' : '0'));
  $('copy-link').addEventListener('click', (e) => shareDialog(e.currentTarget));
  $('publish').addEventListener('click', (e) => publishDialog(e.currentTarget));
  $('remix').addEventListener('click', async (e) => {
    const b = e.currentTarget;
    b.disabled = true;
    b.textContent = 'Remixing…';
    try { await A.remix(); } catch (err) { error(err.message); b.disabled = false; b.textContent = 'Remix'; }
  });

  // ---- effects panel ---------------------------------------------------------

  const fxShows = [];
  const fxPanel = $('fx-panel');
  const fxToggle = $('fx-toggle');
  {
    const groups = [
      ['reverb', 'Reverb', [['decay', 'Decay', 0.1, 10, 0.1, (v) => `${v.toFixed(1)} s`], ['wet', 'Mix', 0, 1, 0.01]]],
      ['delay', 'Delay', [['time', 'Time'], ['feedback', 'Feedback', 0, 0.95, 0.01], ['wet', 'Mix', 0, 1, 0.01]]],
      ['chorus', 'Chorus', [['frequency', 'Rate', 0.1, 10, 0.1, (v) => `${v.toFixed(1)} Hz`], ['depth', 'Depth', 0, 1, 0.01], ['wet', 'Mix', 0, 1, 0.01]]],
      ['distortion', 'Distortion', [['amount', 'Drive', 0, 1, 0.01], ['wet', 'Mix', 0, 1, 0.01]]],
    ];
    const pct = (v) => `${Math.round(v * 100)}%`;
    for (const [group, title, fields] of groups) {
      const fs = h('fieldset', { class: 'fx-group', 'data-group': group }, h('legend', null, title));
      for (const [key, label, min, max, step, fmt = pct] of fields) {
        const get = () => withDefaults(S.effects)[group][key];
        let el;
        if (key === 'time') {
          el = h('select', { name: `${group}-${key}`, 'aria-label': `${title} ${label}` });
          for (const k of Object.keys(DELAY_BEATS)) el.add(new Option(k, k));
          el.addEventListener('change', () => A.setEffects(group, key, el.value));
          fs.append(h('label', null, `${label} `, el));
          fxShows.push(bind(el, get));
        } else {
          el = h('input', { type: 'range', name: `${group}-${key}`, min, max, step, 'aria-label': `${title} ${label.toLowerCase()}` });
          const out = h('output', null);
          el.addEventListener('input', () => {
            out.textContent = fmt(Number(el.value));
            const fx = withDefaults(S.effects); // heard while dragging; sent on release
            fx[group][key] = Number(el.value);
            engine.setEffects(fx, S.tempo);
          });
          el.addEventListener('change', () => A.setEffects(group, key, Number(el.value)));
          fs.append(h('label', null, `${label} `, el, out));
          fxShows.push(bind(el, get, (e, v) => { e.value = String(v); out.textContent = fmt(Number(v)); }));
        }
      }
      fxPanel.append(fs);
    }
    const close = h('button', { type: 'button', class: 'close', 'aria-label': 'Close effects' }, '✕');
    close.addEventListener('click', () => closeFx(true));
    fxPanel.prepend(h('div', { class: 'panel-title' }, h('strong', null, 'Effects'), h('span', { class: 'hint' }, ' shared by everyone in the session'), close));
    fxToggle.addEventListener('click', () => (fxPanel.hidden ? openFx() : closeFx(true)));
  }
  function openFx() {
    fxPanel.hidden = false;
    fxToggle.setAttribute('aria-expanded', 'true');
    watchOutside();
    fxPanel.querySelector('input, select')?.focus();
  }
  function closeFx(returnFocus) {
    if (fxPanel.hidden) return false;
    fxPanel.hidden = true;
    fxToggle.setAttribute('aria-expanded', 'false');
    watchOutside();
    if (returnFocus) fxToggle.focus();
    return true;
  }
  function showEffects() {
    for (const show of fxShows) show();
    const fx = withDefaults(S.effects);
    const on = ['reverb', 'delay', 'chorus', 'distortion'].filter((k) => fx[k].wet > 0);
    fxToggle.classList.toggle('active', on.length > 0);
    fxToggle.setAttribute('aria-label', on.length ? `Effects (on: ${on.join(', ')})` : 'Effects');
  }

  // ---- track views -----------------------------------------------------------

  function makeView(t) {
    const v = { id: t.id, cells: [], segs: [], ph: -1, open: false, rollOpen: false, rollLo: null, name: null };
    v.t = () => track(v.id);
    const n = ++uid;
    v.row = h('div', { class: 'row', role: 'row', 'data-track-id': t.id });
    v.rowhead = h('div', { class: 'rowhead', role: 'rowheader' });
    v.row.append(v.rowhead);

    v.nameEl = h('span', { class: 'tname' });
    v.mute = h('button', { type: 'button', class: 'mute', 'aria-pressed': 'false' }, 'M');
    v.solo = h('button', { type: 'button', class: 'solo', 'aria-pressed': 'false' }, 'S');
    v.vol = h('input', { type: 'range', class: 'vol', min: 0, max: 1, step: 0.01 });
    v.tr = h('input', { type: 'number', class: 'transpose', min: -24, max: 24, step: 1 });
    v.mode = h('button', { type: 'button', class: 'mode' });
    v.count = h('select', { class: 'count' });
    for (const c of STEP_COUNTS) v.count.add(new Option(String(c), String(c)));
    v.pitch = h('button', { type: 'button', class: 'pitch', 'aria-expanded': 'false', 'aria-controls': `roll-${n}` }, '♪');
    v.more = h('button', { type: 'button', class: 'more', 'aria-expanded': 'false', 'aria-controls': `drawer-${n}` }, '⋯');
    v.ctrls = h('div', { class: 'ctrls' }, v.vol, v.tr, v.mode, v.count);
    v.head = h('div', { class: 'head', 'data-track-id': t.id }, v.nameEl, v.mute, v.solo, v.ctrls, v.pitch, v.more);

    v.sound = h('select', { class: 'sound' });
    soundOptions(v.sound);
    v.fmH = h('input', { type: 'range', class: 'fm-h', min: 0.5, max: 10, step: 0.01 });
    v.fmI = h('input', { type: 'range', class: 'fm-i', min: 0, max: 20, step: 0.1 });
    v.fmHOut = h('output', null);
    v.fmIOut = h('output', null);
    v.fm = h('div', { class: 'fm' },
      h('label', null, 'Harmonicity ', v.fmH, v.fmHOut), h('label', null, 'Mod index ', v.fmI, v.fmIOut));
    v.clear = h('button', { type: 'button', class: 'clear' }, 'Clear');
    v.del = h('button', { type: 'button', class: 'delete' }, 'Delete');
    v.drawer = h('div', { class: 'drawer', id: `drawer-${n}`, hidden: true },
      h('label', null, 'Sound ', v.sound), v.fm, h('span', { class: 'spacer' }), v.clear, v.del);
    v.roll = h('div', { class: 'roll', id: `roll-${n}`, hidden: true });

    v.mute.addEventListener('click', () => A.mix(v.t(), 'muted'));
    v.solo.addEventListener('click', () => A.mix(v.t(), 'soloed'));
    v.vol.addEventListener('input', () => { if (A.editable()) v.t().volume = Number(v.vol.value); });
    v.vol.addEventListener('change', () => A.setVolume(v.t(), v.vol.value));
    v.tr.addEventListener('change', () => A.setTranspose(v.t(), v.tr.value));
    v.mode.addEventListener('click', () => { const tr = v.t(); A.setMode(tr, tr.playbackMode === 'gate' ? 'oneshot' : 'gate'); });
    v.count.addEventListener('change', () => A.setStepCount(v.t(), Number(v.count.value)));
    v.pitch.addEventListener('click', () => toggleRoll(v));
    v.more.addEventListener('click', () => toggleDrawer(v));
    v.sound.addEventListener('change', () => { A.setSample(v.t(), v.sound.value); engine.preview(v.t(), v.t().transpose); });
    v.fmH.addEventListener('input', () => { v.fmHOut.textContent = Number(v.fmH.value).toFixed(2); });
    v.fmI.addEventListener('input', () => { v.fmIOut.textContent = Number(v.fmI.value).toFixed(1); });
    v.fmH.addEventListener('change', () => { A.setFM(v.t(), 'harmonicity', Number(v.fmH.value)); engine.preview(v.t(), v.t().transpose); });
    v.fmI.addEventListener('change', () => { A.setFM(v.t(), 'modulationIndex', Number(v.fmI.value)); engine.preview(v.t(), v.t().transpose); });
    v.clear.addEventListener('click', () => A.clearTrack(v.t()));
    v.del.addEventListener('click', () => A.deleteTrack(v.t()));

    v.showVol = bind(v.vol, () => v.t().volume);
    v.showTr = bind(v.tr, () => v.t().transpose);
    v.showCount = bind(v.count, () => v.t().stepCount);
    v.showSound = bind(v.sound, () => v.t().sampleId, (e, id) => {
      if (!knownSound(id) && ![...e.options].some((o) => o.value === id)) e.add(new Option(`Other: ${id}`, id), 0);
      e.value = id;
    });
    const fm = () => v.t().fmParams || FM_DEFAULTS[v.t().sampleId] || { harmonicity: 3, modulationIndex: 10 };
    v.showFmH = bind(v.fmH, () => fm().harmonicity, (e, x) => { e.value = String(x); v.fmHOut.textContent = Number(x).toFixed(2); });
    v.showFmI = bind(v.fmI, () => fm().modulationIndex, (e, x) => { e.value = String(x); v.fmIOut.textContent = Number(x).toFixed(1); });
    return v;
  }

  // Names and accessible names follow the track's name (its sound).
  function labels(v, t) {
    if (v.name === t.name) return;
    v.name = t.name;
    const n = t.name;
    v.nameEl.textContent = n;
    v.nameEl.title = t.sampleId;
    v.rowhead.textContent = n;
    v.mute.setAttribute('aria-label', `Mute ${n}`);
    v.solo.setAttribute('aria-label', `Solo ${n}`);
    v.vol.setAttribute('aria-label', `Volume, ${n}`);
    v.tr.setAttribute('aria-label', `Transpose, ${n} (semitones)`);
    v.count.setAttribute('aria-label', `Steps, ${n}`);
    v.pitch.setAttribute('aria-label', `Pitch view, ${n}`);
    v.more.setAttribute('aria-label', `More for ${n}: sound, clear, delete`);
    v.sound.setAttribute('aria-label', `Sound, ${n}`);
    v.fmH.setAttribute('aria-label', `FM harmonicity, ${n}`);
    v.fmI.setAttribute('aria-label', `FM modulation index, ${n}`);
    v.clear.setAttribute('aria-label', `Clear ${n}`);
    v.del.setAttribute('aria-label', `Delete ${n}`);
    v.mute.title = 'Mute (only for you)';
    v.solo.title = 'Solo (only for you)';
    v.cells.forEach((b, i) => b.setAttribute('aria-label', `${n}, step ${i + 1}`));
    if (v.rollOpen) buildRoll(v);
  }

  function showMode(v, t) {
    const gate = t.playbackMode === 'gate';
    v.mode.textContent = gate ? 'Gate' : 'Shot';
    v.mode.setAttribute('aria-label', `Playback mode, ${t.name}: ${gate ? 'gate (notes last one step)' : 'one-shot'}`);
  }

  function showMix(v, t) {
    v.mute.setAttribute('aria-pressed', String(!!t.muted));
    v.solo.setAttribute('aria-pressed', String(!!t.soloed));
    v.row.classList.toggle('muted', !!t.muted);
  }

  function showKind(v, t) {
    const melodic = isMelodic(t.sampleId);
    v.pitch.hidden = !melodic;
    if (!melodic && v.rollOpen) toggleRoll(v);
    v.fm.hidden = !isFM(t.sampleId);
    v.head.dataset.kind = melodic ? 'melodic' : 'drums';
  }

  // Adds or removes step cells to match the track's step count. Cells sit
  // in one segment per bar, each its own paint container, so a toggle or
  // the moving playhead repaints 16 cells rather than the whole row. A step
  // is a div with role=button, not a <button>: Chromium invalidates a
  // <button>'s style when it becomes :active and again when it stops,
  // which cost each mouse click one more style pass (the press's; the
  // release's shares the toggle's) for no visible change: the page has no
  // :active rule. Enter toggles it (the grid's keydown); Space stays
  // play/stop.
  function setCells(v, t) {
    const n = t.stepCount || 16;
    if (v.cells.length === n) return;
    while (v.cells.length < n) {
      const i = v.cells.length;
      const b = h('div', { role: 'button', class: 'step', tabindex: '-1', 'data-step': i, 'aria-pressed': 'false', 'aria-label': `${t.name}, step ${i + 1}` });
      b._on = false;
      b._lock = '';
      const cls = `cell${i % 4 === 0 ? ' beat' : ''}${i % 16 === 0 && i > 0 ? ' bar' : ''}`;
      if (i % 16 === 0) v.row.append(v.segs[v.segs.push(h('div', { class: 'seg' })) - 1]);
      v.segs[v.segs.length - 1].append(h('div', { class: cls, role: 'gridcell' }, b));
      v.cells.push(b);
      showCell(v, t, i);
    }
    while (v.cells.length > n) {
      const b = v.cells.pop();
      if (v.ph >= v.cells.length) v.ph = -1;
      b.parentElement.remove();
      if (v.cells.length % 16 === 0) v.segs.pop().remove();
    }
    if (active.id === v.id && active.step >= n) setActive(v.id, n - 1, document.activeElement?.classList?.contains('step'));
    if (v.rollOpen) buildRoll(v);
  }

  function showCell(v, t, i) {
    const b = v.cells[i];
    if (b) {
      const on = !!t.steps[i];
      if (b._on !== on) {
        b._on = on;
        b.classList.toggle('on', on);
        b.setAttribute('aria-pressed', String(on));
      }
      const lk = t.parameterLocks[i];
      const key = lk ? `${lk.pitch ?? ''}/${lk.volume ?? ''}` : '';
      if (b._lock !== key) {
        b._lock = key;
        b.classList.toggle('locked', !!lk);
        if (lk) {
          b.title = `pitch ${lk.pitch ?? 0}, volume ${lk.volume ?? 1}`;
          b.textContent = lk.pitch ? `${lk.pitch > 0 ? '+' : ''}${lk.pitch}` : '';
        } else {
          b.removeAttribute('title');
          b.textContent = '';
        }
      }
    }
    if (v.rollOpen) rollColumn(v, t, i);
  }

  function place(v, i) {
    for (const el of [v.row, v.head, v.drawer, v.roll]) el.style.setProperty('--i', String(i));
  }

  function readonly(v) {
    const ro = !A.editable();
    for (const el of [v.vol, v.tr, v.mode, v.count, v.sound, v.fmH, v.fmI, v.clear, v.del]) el.disabled = ro;
  }

  function refresh(v, t) {
    labels(v, t);
    setCells(v, t);
    for (let i = 0; i < v.cells.length; i++) showCell(v, t, i);
    v.showVol(); v.showTr(); v.showCount(); v.showSound(); v.showFmH(); v.showFmI();
    showMode(v, t);
    showMix(v, t);
    showKind(v, t);
    readonly(v);
  }

  function insertView(t) {
    const v = makeView(t);
    views.set(t.id, v);
    grid.append(v.row);
    heads.append(v.head, v.drawer, v.roll);
    refresh(v, t);
    return v;
  }

  // Puts rows in track order (moving only rows that are out of place) and
  // gives every element its track index.
  function order() {
    S.tracks.forEach((t, i) => {
      const v = views.get(t.id);
      if (grid.children[i] !== v.row) grid.insertBefore(v.row, grid.children[i] || null);
      place(v, i);
    });
    grid.setAttribute('aria-rowcount', String(S.tracks.length));
    $('empty').hidden = S.tracks.length > 0;
    $('add-track').disabled = !A.editable() || S.tracks.length >= 16;
    showRuler();
    if (!views.has(active.id)) setActive(S.tracks[0]?.id, 0, false);
    else setActive(active.id, active.step, false);
    placeCursors();
  }

  function showRuler() {
    const n = Math.max(0, ...S.tracks.map((t) => t.stepCount || 16));
    if (n === rulerSteps) return;
    rulerSteps = n;
    const ruler = $('ruler');
    ruler.replaceChildren();
    for (let i = 0; i < n; i++) {
      const cls = `cell${i % 4 === 0 ? ' beat' : ''}${i % 16 === 0 && i > 0 ? ' bar' : ''}`;
      ruler.append(h('div', { class: cls }, i % 16 === 0 ? `${i / 16 + 1}` : i % 4 === 0 ? '·' : ''));
    }
  }

  // ---- grid keyboard, mouse and touch -----------------------------------------

  function activeCell() { return views.get(active.id)?.cells[active.step] || null; }

  function setActive(id, step, focus) {
    const v = views.get(id);
    if (!v || !v.cells.length) { active = { id: null, step: 0 }; return; }
    const i = clamp(step, 0, v.cells.length - 1);
    const prev = activeCell();
    const next = v.cells[i];
    // Only real changes: setting tabindex on the focused element makes the
    // browser recompute its style at once (is it still focusable?).
    if (prev && prev !== next) prev.tabIndex = -1;
    if (next.tabIndex !== 0) next.tabIndex = 0;
    active = { id, step: i };
    if (focus) next.focus();
  }

  const cellOf = (el) => el?.closest?.('.step');
  const viewOfRow = (b) => views.get(b.closest('.row').dataset.trackId);

  grid.addEventListener('focusin', (e) => {
    const b = cellOf(e.target);
    if (b) setActive(viewOfRow(b).id, Number(b.dataset.step), false);
  });

  // A mouse press on a step does not move focus there (the browser's
  // default; Safari and Firefox on macOS never do it for buttons): moving
  // focus costs a style pass over both steps and the press's selection
  // handling. The click makes the step the grid's tab stop unless a step
  // has the focus: then the keyboard keeps its place, the focused step
  // stays the tab stop and arrows go on from there. Focus elsewhere is
  // released, so a half-typed field commits as on any other click.
  grid.addEventListener('mousedown', (e) => {
    if (!cellOf(e.target)) return;
    e.preventDefault();
    const f = document.activeElement;
    if (f && f !== document.body && !grid.contains(f)) f.blur();
  });

  grid.addEventListener('click', (e) => {
    const b = cellOf(e.target);
    if (!b) return;
    const v = viewOfRow(b);
    const i = Number(b.dataset.step);
    if (!cellOf(document.activeElement)) setActive(v.id, i, false);
    if (suppress && suppress.b === b && Date.now() < suppress.until) { suppress = null; return; }
    if (e.shiftKey) openLock(v, i, b);
    else A.toggleStep(v.t(), i);
  });

  grid.addEventListener('contextmenu', (e) => {
    const b = cellOf(e.target);
    if (!b) return;
    e.preventDefault();
    if (lock?.anchor === b) return; // a long press already opened it
    openLock(viewOfRow(b), Number(b.dataset.step), b);
  });

  // Long press (touch, pen) opens the lock editor, as Shift-click does.
  grid.addEventListener('pointerdown', (e) => {
    const b = cellOf(e.target);
    if (!b || e.pointerType === 'mouse') return;
    clearTimeout(longPress?.timer);
    grid.addEventListener('pointermove', pressMove);
    grid.addEventListener('pointerup', endPress);
    grid.addEventListener('pointercancel', endPress);
    longPress = {
      b, x: e.clientX, y: e.clientY, fired: false,
      timer: setTimeout(() => {
        longPress.fired = true;
        navigator.vibrate?.(15);
        openLock(viewOfRow(b), Number(b.dataset.step), b);
      }, LONG_PRESS_MS),
    };
  });
  // Listened for only while a touch or pen press lasts.
  function pressMove(e) {
    if (longPress && Math.hypot(e.clientX - longPress.x, e.clientY - longPress.y) > 10) endPress(null);
  }
  function endPress(e) {
    grid.removeEventListener('pointermove', pressMove);
    grid.removeEventListener('pointerup', endPress);
    grid.removeEventListener('pointercancel', endPress);
    if (!longPress) return;
    clearTimeout(longPress.timer);
    if (e && longPress.fired) suppress = { b: longPress.b, until: Date.now() + 600 };
    longPress = null;
  }

  grid.addEventListener('keydown', (e) => {
    const b = cellOf(e.target);
    if (!b) return;
    const v = viewOfRow(b);
    const i = Number(b.dataset.step);
    const idx = S.tracks.findIndex((t) => t.id === v.id);
    const go = (ti, step) => { const t = S.tracks[clamp(ti, 0, S.tracks.length - 1)]; if (t) setActive(t.id, step, true); };
    const keys = {
      ArrowRight: () => go(idx, i + 1), ArrowLeft: () => go(idx, i - 1),
      ArrowUp: () => go(idx - 1, i), ArrowDown: () => go(idx + 1, i),
      Home: () => go(e.ctrlKey ? 0 : idx, 0), End: () => go(e.ctrlKey ? S.tracks.length - 1 : idx, 1e9),
      PageUp: () => go(idx, i - 16), PageDown: () => go(idx, i + 16),
    };
    if (keys[e.key]) { e.preventDefault(); keys[e.key](); return; }
    if (e.key === 'Enter' && e.shiftKey) { e.preventDefault(); openLock(v, i, b); }
    else if (e.key === 'Enter') { e.preventDefault(); b.click(); } // what a <button> would do
  });

  // ---- parameter-lock editor ----------------------------------------------------

  function openLock(v, i, anchor) {
    if (!A.editable()) return;
    closeLock(false);
    const t = v.t();
    const lk = t.parameterLocks[i] || {};
    const pitch = h('input', { name: 'pitch', type: 'number', min: -24, max: 24, step: 1, value: lk.pitch ?? 0, 'aria-label': 'Pitch (semitones)' });
    const note = h('output', { class: 'note' });
    const vol = h('input', { name: 'volume', type: 'range', min: 0, max: 1, step: 0.05, value: lk.volume ?? 1, 'aria-label': 'Step volume' });
    const showNote = () => {
      const semis = Number(pitch.value || 0);
      note.textContent = isMelodic(t.sampleId) ? noteName(baseNote(t.sampleId) + t.transpose + semis) : 'semitones';
    };
    showNote();
    const btn = (name, text, label) => h('button', { type: 'button', name, 'aria-label': label || text }, text);
    const play = btn('preview', '▶', 'Preview');
    const set = btn('set', 'Set', 'Set lock');
    const clr = btn('clear', 'Clear', 'Clear lock');
    const close = btn('close', '✕', 'Close');
    const box = h('div', { id: 'lock-editor', class: 'lock-editor', role: 'dialog', 'aria-label': `Lock for ${t.name}, step ${i + 1}` },
      h('strong', null, `${t.name} · step ${i + 1}`),
      h('label', null, 'Pitch ', pitch, note), h('label', null, 'Volume ', vol),
      h('span', { class: 'buttons' }, play, set, clr, close));
    const commit = (value) => { A.setLock(v.t(), i, value); closeLock(true); };
    pitch.addEventListener('input', showNote);
    play.addEventListener('click', () => engine.preview(v.t(), v.t().transpose + clamp(Math.round(Number(pitch.value) || 0), -24, 24)));
    set.addEventListener('click', () => commit({
      pitch: clamp(Number(pitch.value) || 0, -24, 24),
      volume: clamp(Number(vol.value), 0, 1),
    }));
    clr.addEventListener('click', () => commit(null));
    close.addEventListener('click', () => closeLock(true));
    box.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && e.target === pitch) { e.preventDefault(); set.click(); }
    });
    if (!phone.matches) {
      const r = anchor.getBoundingClientRect();
      box.style.left = `${Math.min(r.left + window.scrollX, window.scrollX + document.documentElement.clientWidth - 240)}px`;
      box.style.top = `${r.bottom + window.scrollY + 6}px`;
    }
    document.body.append(box);
    lock = { box, anchor };
    watchOutside();
    pitch.focus();
    pitch.select();
  }

  function closeLock(returnFocus) {
    if (!lock) return false;
    const { box, anchor } = lock;
    lock = null;
    box.remove();
    watchOutside();
    if (returnFocus && anchor.isConnected) anchor.focus();
    return true;
  }

  // A press outside the open lock editor or effects panel closes it; the
  // document is listened to only while one is open.
  function outsidePress(e) {
    if (lock && !lock.box.contains(e.target) && e.target !== lock.anchor) closeLock(false);
    if (!fxPanel.hidden && !fxPanel.contains(e.target) && !fxToggle.contains(e.target)) closeFx(false);
  }
  function watchOutside() {
    if (lock || !fxPanel.hidden) document.addEventListener('pointerdown', outsidePress);
    else document.removeEventListener('pointerdown', outsidePress);
  }

  // ---- drawer and piano roll ------------------------------------------------------

  function toggleDrawer(v) {
    v.open = !v.open;
    v.drawer.hidden = !v.open;
    v.head.classList.toggle('open', v.open);
    v.more.setAttribute('aria-expanded', String(v.open));
  }

  function toggleRoll(v) {
    v.rollOpen = !v.rollOpen;
    v.pitch.setAttribute('aria-expanded', String(v.rollOpen));
    v.roll.hidden = !v.rollOpen;
    if (v.rollOpen) buildRoll(v);
    else { v.roll.replaceChildren(); v.rollNotes = null; }
  }

  // A small piano roll of the track's pitch locks: one row per semitone of a
  // two-octave window (one octave on phones), one column per step.
  function buildRoll(v) {
    const t = v.t();
    const span = phone.matches ? 12 : 24;
    if (v.rollLo === null) v.rollLo = -span / 2;
    v.rollLo = clamp(v.rollLo, -24, 24 - span);
    const lo = v.rollLo;
    const base = baseNote(t.sampleId) + t.transpose;
    const up = h('button', { type: 'button', class: 'oct-up', 'aria-label': 'Octave up' }, '▲');
    const down = h('button', { type: 'button', class: 'oct-down', 'aria-label': 'Octave down' }, '▼');
    up.disabled = lo + span >= 24;
    down.disabled = lo <= -24;
    up.addEventListener('click', () => { v.rollLo += 12; buildRoll(v); });
    down.addEventListener('click', () => { v.rollLo -= 12; buildRoll(v); });
    const body = h('div', { class: 'rollgrid', role: 'grid', tabindex: 0, 'aria-label': `Pitch view of ${t.name}: arrows move, Enter places or removes a note` });
    v.rollRows = new Map();
    for (let p = lo + span; p >= lo; p--) {
      const name = noteName(base + p);
      const black = name.includes('♯');
      const row = h('div', { class: `rrow${black ? ' black' : ''}${p === 0 ? ' zero' : ''}`, role: 'row', 'data-pitch': p },
        h('div', { class: 'rlabel', role: 'rowheader' }, `${name}${p === 0 ? ' ·0' : ''}`));
      const cells = [];
      for (let i = 0; i < v.cells.length; i++) {
        const c = h('div', { class: `rc${i % 4 === 0 ? ' beat' : ''}${i % 16 === 0 && i > 0 ? ' bar' : ''}`, role: 'gridcell', 'data-step': i, 'aria-label': `Step ${i + 1}, ${name}`, 'aria-selected': 'false' });
        cells.push(c);
        row.append(c);
      }
      v.rollRows.set(p, cells);
      body.append(row);
    }
    v.rollNotes = [];
    v.rollCur = v.rollCur || { i: 0, p: 0 };
    body.addEventListener('click', (e) => {
      const c = e.target.closest('.rc');
      if (!c) return;
      rollPlace(v, Number(c.dataset.step), Number(c.parentElement.dataset.pitch));
    });
    body.addEventListener('keydown', (e) => rollKey(v, e));
    v.roll.replaceChildren(
      h('div', { class: 'roll-head' }, h('strong', null, `${t.name} — pitch`), up, down,
        h('span', { class: 'hint' }, 'Click a cell to place a note (and hear it); click a note to remove it.')),
      body);
    for (let i = 0; i < v.cells.length; i++) rollColumn(v, t, i);
    rollCursor(v, false);
  }

  function rollColumn(v, t, i) {
    if (!v.rollNotes) return;
    const p = t.parameterLocks[i]?.pitch ?? 0;
    const lo = v.rollLo;
    const span = v.rollRows.size - 1;
    let c = null;
    if (t.steps[i]) c = v.rollRows.get(clamp(Math.round(p), lo, lo + span))?.[i] || null;
    const prev = v.rollNotes[i];
    if (prev !== c) {
      prev?.classList.remove('note', 'out');
      prev?.setAttribute('aria-selected', 'false');
      c?.classList.add('note');
      c?.setAttribute('aria-selected', 'true');
      v.rollNotes[i] = c;
    }
    c?.classList.toggle('out', Math.round(p) < lo || Math.round(p) > lo + span);
  }

  function rollPlace(v, i, p) {
    const t = v.t();
    if (!t) return;
    engine.preview(t, t.transpose + p);
    if (!A.editable()) return;
    const old = t.parameterLocks[i];
    if (t.steps[i] && (old?.pitch ?? 0) === p) { A.setStep(t, i, false); return; }
    const vol = typeof old?.volume === 'number' ? old.volume : undefined;
    const next = p === 0 && vol === undefined ? null : vol === undefined ? { pitch: p } : { pitch: p, volume: vol };
    if (JSON.stringify(old ?? null) !== JSON.stringify(next)) A.setLock(t, i, next);
    if (!t.steps[i]) A.setStep(t, i, true);
  }

  function rollCursor(v, scroll) {
    const body = v.roll.querySelector('.rollgrid');
    if (!body) return;
    const { i, p } = v.rollCur;
    body.querySelector('#roll-cur')?.removeAttribute('id');
    const c = v.rollRows.get(p)?.[i];
    if (!c) return;
    c.id = 'roll-cur';
    body.setAttribute('aria-activedescendant', 'roll-cur');
    if (scroll) c.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  }

  function rollKey(v, e) {
    const span = v.rollRows.size - 1;
    const cur = v.rollCur;
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] };
    if (moves[e.key]) {
      e.preventDefault();
      cur.i = clamp(cur.i + moves[e.key][0], 0, v.cells.length - 1);
      const p = cur.p + moves[e.key][1];
      if (p > v.rollLo + span && p <= 24) { v.rollLo += 12; cur.p = p; buildRoll(v); v.roll.querySelector('.rollgrid').focus(); return; }
      if (p < v.rollLo && p >= -24) { v.rollLo -= 12; cur.p = p; buildRoll(v); v.roll.querySelector('.rollgrid').focus(); return; }
      cur.p = clamp(p, v.rollLo, v.rollLo + span);
      rollCursor(v, true);
    } else if (e.key === 'Enter') {
      e.preventDefault();
      rollPlace(v, cur.i, cur.p);
      rollCursor(v, false);
    }
  }

  // ---- remote cursors -----------------------------------------------------------

  const cursors = new Map(); // playerId -> {el, m}

  function cursor(m) {
    let c = cursors.get(m.playerId);
    if (!c) {
      c = { el: h('div', { class: 'cursor' }) };
      $('cursors').append(c.el);
      cursors.set(m.playerId, c);
    }
    c.m = m;
    c.el.textContent = m.name;
    c.el.style.background = m.color;
    placeCursor(c);
  }

  // A cursor that names a track and step sits on that cell wherever it is
  // on this screen; one with only x/y (the original client) uses percentages
  // of the board.
  function placeCursor(c) {
    const pos = c.m.position || {};
    const cell = views.get(pos.trackId)?.cells[pos.step];
    let x;
    let y;
    if (cell) {
      const r = cell.getBoundingClientRect();
      const b = board.getBoundingClientRect();
      x = r.left - b.left + board.scrollLeft + r.width / 2;
      y = r.top - b.top + board.scrollTop + r.height / 2;
      c.el.dataset.step = String(pos.step);
      c.el.dataset.trackId = pos.trackId;
    } else {
      x = (clamp(Number(pos.x) || 0, 0, 100) / 100) * board.clientWidth + board.scrollLeft;
      y = (clamp(Number(pos.y) || 0, 0, 100) / 100) * board.scrollHeight;
      delete c.el.dataset.step;
    }
    c.el.style.transform = `translate(${Math.round(x)}px, ${Math.round(y)}px)`;
  }

  function placeCursors() { for (const c of cursors.values()) placeCursor(c); }

  function removeCursor(id) {
    cursors.get(id)?.el.remove();
    cursors.delete(id);
  }

  // The pointer is broadcast by the app, at most every 50 ms, its last
  // position always (app.js, flushCursor). A move only records where the
  // pointer is; the message is built when it goes out: the step from the
  // event's target, x/y (which the original client uses) from the board's
  // box, read then, once per message, not per event.
  let pointerX = 0;
  let pointerY = 0;
  let pointerTarget = null;
  function pointerPosition() {
    const box = board.getBoundingClientRect();
    const x = ((pointerX - box.left) / box.width) * 100;
    const y = ((pointerY - box.top) / box.height) * 100;
    if (!(x >= 0 && x <= 100 && y >= 0 && y <= 100)) return null;
    const position = { x, y };
    const b = pointerTarget?.isConnected ? cellOf(pointerTarget) : null;
    const row = b?.closest('.row');
    const v = row && views.get(row.dataset.trackId);
    if (v) { position.trackId = v.id; position.step = Number(b.dataset.step); }
    return position;
  }
  board.addEventListener('pointermove', (e) => {
    if (e.pointerType !== 'mouse') return;
    pointerX = e.clientX;
    pointerY = e.clientY;
    pointerTarget = e.target;
    A.cursorMove(pointerPosition);
  });

  // ---- playhead --------------------------------------------------------------------

  let lastStep = -2;
  let raf = 0;
  function frame() {
    raf = 0;
    const cur = engine.currentStep();
    if (cur !== lastStep) {
      lastStep = cur;
      let longest = null;
      for (const v of views.values()) {
        const i = cur < 0 ? -1 : cur % v.cells.length;
        if (v.ph !== i) {
          v.cells[v.ph]?.classList.remove('playhead');
          v.cells[i]?.classList.add('playhead');
          v.ph = i;
        }
        if (!longest || v.cells.length > longest.cells.length) longest = v;
      }
      if (cur >= 0 && follow.checked && longest) followPlayhead(longest.cells[longest.ph]);
    }
    if (engine.running) raf = requestAnimationFrame(frame);
  }

  // Keeps the playhead of the longest track in view: when it leaves the
  // visible steps, the board turns the page so its bar starts at the left.
  function followPlayhead(cell) {
    if (!cell || board.scrollWidth <= board.clientWidth) return;
    const b = board.getBoundingClientRect();
    const r = cell.getBoundingClientRect();
    const headW = heads.querySelector('.head')?.getBoundingClientRect().width || 0;
    if (r.left >= b.left + headW && r.right <= b.right) return;
    const i = Number(cell.dataset.step);
    const barStart = cell.closest('.row').querySelectorAll('.step')[Math.floor(i / 16) * 16] || cell;
    const left = barStart.getBoundingClientRect().left - b.left + board.scrollLeft - headW - 8;
    board.scrollLeft = Math.max(0, left);
  }

  function showPlay() {
    const on = engine.running;
    $('play').setAttribute('aria-pressed', String(on));
    $('play').textContent = on ? '■ Stop' : '▶ Play';
    if (on && !raf) raf = requestAnimationFrame(frame);
    if (!on) { lastStep = -2; for (const v of views.values()) { v.cells[v.ph]?.classList.remove('playhead'); v.ph = -1; } }
  }

  // ---- dialogs, toasts, announcements ------------------------------------------------

  const dialog = $('dialog');
  let dialogOpener = null;
  dialog.addEventListener('close', () => { dialogOpener?.focus(); dialogOpener = null; });

  function openDialog(opener, title, ...content) {
    dialogOpener = opener;
    dialog.replaceChildren(h('h2', { id: 'dialog-title' }, title), ...content);
    dialog.setAttribute('aria-labelledby', 'dialog-title');
    if (!dialog.open) dialog.showModal();
  }

  function buttonRow(...buttons) { return h('div', { class: 'buttons' }, ...buttons); }

  // The link, a Copy button (clipboard API or the selection fallback) and
  // what happened, said in words.
  function linkBlock(url) {
    const input = h('input', { id: 'share-url', type: 'text', readonly: true, value: url, 'aria-label': 'Link' });
    const copy = h('button', { type: 'button', id: 'copy-url', class: 'primary' }, 'Copy link');
    const feedback = h('p', { id: 'copy-feedback', class: 'feedback', role: 'status' });
    const doCopy = async () => {
      const ok = await copyText(url, input);
      feedback.textContent = ok ? 'Link copied to the clipboard.' : 'Your browser blocked copying: the link is selected, press Ctrl+C (⌘C on a Mac).';
      feedback.dataset.ok = String(ok);
      if (!ok) { input.focus(); input.select(); }
    };
    copy.addEventListener('click', doCopy);
    input.addEventListener('focus', () => input.select());
    return { nodes: [h('div', { class: 'link-row' }, input, copy), feedback], doCopy };
  }

  function shareDialog(opener) {
    const done = h('button', { type: 'button' }, 'Done');
    done.addEventListener('click', () => dialog.close());
    const link = linkBlock(location.href);
    openDialog(opener, 'Share this session',
      h('p', null, 'Anyone with this link can join and edit the session with you.'),
      ...link.nodes, buttonRow(done));
    link.doCopy(); // the click that opened the dialog allows copying
  }

  function publishDialog(opener) {
    const go = h('button', { type: 'button', class: 'primary', id: 'publish-confirm' }, 'Publish');
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const err = h('p', { class: 'error', role: 'alert' });
    cancel.addEventListener('click', () => dialog.close());
    go.addEventListener('click', async () => {
      go.disabled = true;
      go.textContent = 'Publishing…';
      try {
        const b = await A.publish();
        const url = new URL(b.url, location.href).href;
        const done = h('button', { type: 'button' }, 'Done');
        done.addEventListener('click', () => dialog.close());
        const open = h('a', { href: url, target: '_blank', rel: 'noopener', class: 'button' }, 'Open it');
        openDialog(opener, 'Published',
          h('p', null, 'This read-only copy can be heard and remixed by anyone with the link. You are still in your own session and can keep editing it.'),
          ...linkBlock(url).nodes, buttonRow(open, done));
        dialog.querySelector('#copy-url').focus();
        announce('Published. The link is ready to copy.');
      } catch (e) {
        err.textContent = e.message;
        go.disabled = false;
        go.textContent = 'Publish';
      }
    });
    openDialog(opener, 'Publish a read-only copy?',
      h('p', null, 'Publishing makes a frozen copy of this session with its own link. Anyone with that link can listen and remix it, but not change it. You stay here, in your editable session.'),
      err, buttonRow(go, cancel));
    go.focus();
  }

  function toast(text, { action, onAction } = {}) {
    const el = h('div', { class: 'toast' }, h('span', null, text));
    if (action) {
      const b = h('button', { type: 'button', class: 'toast-action' }, action);
      b.addEventListener('click', () => { onAction(); el.remove(); });
      el.append(b);
    }
    const box = $('toasts');
    box.append(el);
    while (box.children.length > 3) box.firstChild.remove();
    setTimeout(() => el.remove(), action ? 10000 : 5000);
  }

  let announceTimer = 0;
  function announce(text) {
    const el = $('announcer');
    const prev = el.textContent;
    el.textContent = prev && announceTimer ? `${prev}. ${text}` : text;
    clearTimeout(announceTimer);
    announceTimer = setTimeout(() => { announceTimer = 0; }, 1500);
  }

  function error(text) {
    $('error').textContent = text;
    clearTimeout(error.t);
    error.t = setTimeout(() => { $('error').textContent = ''; }, 6000);
  }

  function banner(text, withRemix) {
    const el = $('banner');
    el.hidden = !text;
    el.replaceChildren(text || '');
    if (withRemix) {
      const b = h('button', { type: 'button', class: 'banner-remix' }, 'Remix it');
      b.addEventListener('click', () => $('remix').click());
      el.append(' ', b);
    }
  }

  // ---- connection status ------------------------------------------------------------

  let conn = { state: 'connecting', detail: '', queued: 0 };
  let countdown = 0;
  function status(state, detail, queued) {
    const prev = conn.state;
    conn = { state, detail, queued };
    const el = $('status');
    el.dataset.state = state;
    applyReadonly();
    showStatusText();
    clearInterval(countdown);
    if (state === 'reconnecting' || state === 'full') countdown = setInterval(showStatusText, 250);
    $('retry').hidden = !(state === 'reconnecting' || state === 'full');
    if (state === 'full') banner('This session is full: 10 players are already in it. You can listen and look; grooved keeps trying to join, or remix it to play your own copy.', true);
    else if (S.immutable) banner('This session is published and read-only. Remix it to make your own copy.', true);
    else banner('');
    if (prev !== state && state === 'reconnecting' && prev === 'connected') announce('Reconnecting');
  }

  function showStatusText() {
    const { state, detail, queued } = conn;
    const secs = Math.max(0, Math.ceil((S.retryAt - Date.now()) / 1000));
    const wait = secs > 0 ? `in ${secs} s` : 'now';
    const text = {
      connecting: 'Connecting…',
      connected: 'Connected',
      reconnecting: secs > 0 ? `Reconnecting in ${secs} s` : 'Reconnecting…',
      full: `Session full (10 players) · retrying ${wait}`,
      offline: detail || 'Offline',
    }[state] || state;
    const q = queued ? ` · ${queued} edit${queued === 1 ? '' : 's'} waiting to be sent` : '';
    const el = $('status');
    const s = text + q;
    if (el.textContent !== s) el.textContent = s;
    el.title = queued ? 'Your edits are kept and sent when the connection is back.' : '';
  }

  // ---- whole-page updates -------------------------------------------------------------

  function showLineage() {
    const el = $('lineage');
    if (!S.remixedFrom) { el.hidden = true; return; }
    const a = h('a', { href: `/s/${S.remixedFrom}` }, S.remixedFromName || 'Untitled session');
    el.replaceChildren(S.immutable ? 'Published from ' : 'Remixed from ', a);
    el.hidden = false;
  }

  function global(field) {
    switch (field) {
      case 'tempo': return showTempo();
      case 'swing': return showSwing();
      case 'name': document.title = S.name ? `${S.name} · grooved` : 'grooved'; return showName();
      case 'effects': return showEffects();
      case 'play': return showPlay();
      default:
    }
  }

  // Everything that edits is disabled on a published session and while the
  // session is full.
  let wasReadonly = null;
  function applyReadonly() {
    const ro = !A.editable();
    if (ro === wasReadonly) return;
    wasReadonly = ro;
    document.body.classList.toggle('readonly', ro);
    grid.setAttribute('aria-disabled', String(ro));
    for (const id of ['name', 'tempo', 'swing']) $(id).disabled = ro;
    for (const el of fxPanel.querySelectorAll('input, select')) el.disabled = ro;
    $('add-track').disabled = ro || S.tracks.length >= 16;
    for (const v of views.values()) readonly(v);
  }

  function reconcile() {
    wasReadonly = null;
    applyReadonly();
    $('publish').hidden = S.immutable;
    global('name'); global('tempo'); global('swing'); global('effects');
    showLineage();
    const ids = new Set(S.tracks.map((t) => t.id));
    for (const id of [...views.keys()]) if (!ids.has(id)) removeTrack(id, true);
    for (const t of S.tracks) {
      const v = views.get(t.id);
      if (v) refresh(v, t);
      else insertView(t);
    }
    order();
    players();
    status(S.conn, conn.detail, conn.queued);
  }

  function addTrack(t) {
    if (!views.has(t.id)) insertView(t);
    order();
  }

  function removeTrack(id, deferOrder) {
    const v = views.get(id);
    if (!v) return;
    const wasFocused = v.row.contains(document.activeElement);
    const idx = [...grid.children].indexOf(v.row);
    if (lock && v.row.contains(lock.anchor)) closeLock(false);
    for (const el of [v.row, v.head, v.drawer, v.roll]) el.remove();
    views.delete(id);
    for (const c of cursors.values()) if (c.m.position?.trackId === id) c.m.position = { x: c.m.position.x, y: c.m.position.y };
    if (deferOrder) return;
    if (active.id === id) {
      const next = S.tracks[Math.min(idx, S.tracks.length - 1)];
      active = { id: null, step: 0 };
      if (next) setActive(next.id, 0, wasFocused);
    }
    order();
  }

  function players() {
    $('players').replaceChildren(...[...S.players.values()].map((p) => {
      const li = h('li', { 'data-player-id': p.id }, (S.playing.has(p.id) ? '♪ ' : '') + p.name + (p.id === S.playerId ? ' (you)' : ''));
      li.style.background = p.color;
      if (p.id === S.playerId) li.className = 'me';
      return li;
    }));
  }

  // Space plays and stops anywhere but in a field or on another button;
  // Escape closes the open pop-up and puts focus back where it came from.
  const typingTarget = 'input, select, textarea, [contenteditable], a[href], button, dialog';
  document.addEventListener('keydown', (e) => {
    if (e.key === ' ' && !e.ctrlKey && !e.metaKey && !e.altKey) {
      if (dialog.open || e.target.closest?.(typingTarget)) return;
      e.preventDefault();
      if (!e.repeat) A.togglePlay();
    } else if (e.key === 'Escape') {
      if (closeLock(true) || closeFx(true)) e.preventDefault();
    }
  });
  phone.addEventListener('change', () => { for (const v of views.values()) if (v.rollOpen) buildRoll(v); placeCursors(); });

  return {
    reconcile,
    cell: (t, i) => { const v = views.get(t.id); if (v) showCell(v, t, i); },
    row: (t) => { const v = views.get(t.id); if (v) for (let i = 0; i < Math.max(v.cells.length, t.stepCount); i++) showCell(v, t, i); },
    trackField(t, field) {
      const v = views.get(t.id);
      if (!v) return;
      switch (field) {
        case 'volume': return v.showVol();
        case 'transpose': v.showTr(); if (v.rollOpen) buildRoll(v); return;
        case 'mode': return showMode(v, t);
        case 'stepCount': v.showCount(); setCells(v, t); showRuler(); return placeCursors();
        case 'sample': labels(v, t); v.showSound(); showKind(v, t); v.showFmH(); v.showFmI(); if (v.rollOpen) buildRoll(v); return;
        case 'fm': v.showFmH(); return v.showFmI();
        case 'mix': return showMix(v, t);
        default:
      }
    },
    addTrack,
    removeTrack: (id) => removeTrack(id, false),
    global,
    players,
    status,
    announce,
    toast,
    error,
    banner,
    cursor,
    removeCursor,
  };
}
