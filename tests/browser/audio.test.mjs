// Sound: the page's audio engine rendered with OfflineAudioContext in
// headless chromium. A dense session must never clip, every effect of
// set_effects and every FM parameter must change what is heard, and every
// sound id the original UI can put in a session must have its own voice.
// The UI side: changing a track's sound, the effects panel and the FM
// controls reach the other player and the server.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, openPage, cell, head, addTrack, sessionId, restState, until } from './harness.mjs';

let env;
let lab; // a page at the server's origin, for importing the modules

before(async () => {
  env = await setup();
  const ctx = await env.browser.newContext();
  lab = await ctx.newPage();
  await lab.goto(`${env.server.url}/favicon.svg`);
});

after(async () => { await env?.close(); });

// The ids the original Keyboardia UI offers (its instrument picker at the
// reference commit): a session made there may hold any of them.
const ORIGINAL_IDS = [
  'kick', 'snare', 'hihat', 'clap', 'tom', 'rim', 'cowbell', 'openhat', 'shaker', 'conga', 'tambourine', 'clave',
  'cabasa', 'woodblock', 'tone:membrane-kick', 'tone:membrane-tom', 'tone:metal-cymbal', 'tone:metal-hihat',
  'bass', 'subbass', 'synth:bass', 'synth:acid', 'synth:sub', 'synth:funkbass', 'synth:discobass', 'synth:reese',
  'synth:hoover', 'tone:fm-bass', 'advanced:sub-bass', 'advanced:wobble-bass', 'advanced:acid-bass',
  'sampled:piano', 'synth:rhodes', 'synth:wurlitzer', 'synth:epiano', 'tone:fm-epiano', 'synth:organ',
  'synth:organphase', 'synth:clavinet', 'synth:vibes',
  'lead', 'pluck', 'synth:lead', 'synth:pluck', 'synth:supersaw', 'synth:hypersaw', 'tone:pluck-string',
  'tone:duo-lead', 'advanced:supersaw', 'advanced:thick-lead', 'advanced:vibrato-lead',
  'pad', 'chord', 'synth:pad', 'synth:warmpad', 'synth:strings', 'synth:shimmer', 'synth:dreampop', 'synth:glass',
  'synth:jangle', 'synth:evolving', 'synth:sweep', 'advanced:warm-pad', 'advanced:tremolo-strings',
  'zap', 'noise', 'synth:bell', 'synth:stab', 'synth:brass', 'synth:wobble', 'synth:growl', 'tone:fm-bell',
  'tone:am-bell', 'tone:am-tremolo',
];

const track = (sampleId, steps, extra = {}) => ({
  id: `t-${sampleId}`, name: sampleId, sampleId, steps: Array.from({ length: 128 }, (_, i) => steps.includes(i % 16)),
  parameterLocks: Array(128).fill(null), volume: 1, muted: false, soloed: false, playbackMode: 'oneshot',
  transpose: 0, stepCount: 16, ...extra,
});
const EVERY = [...Array(16).keys()];

// Renders in the page; returns {peak, rms} of the stereo result and keeps
// the channels under window.renders[slot].
let slots = 0;
async function render(state, opts = {}, slot = `r${++slots}`) {
  return lab.evaluate(async ({ state, opts, slot }) => {
    const { renderOffline } = await import('/audio.js');
    const [l, r] = await renderOffline(state, opts);
    let peak = 0;
    let e = 0;
    for (const ch of [l, r]) for (const x of ch) { peak = Math.max(peak, Math.abs(x)); e += x * x; }
    (window.renders ||= {})[slot] = [l, r];
    return { peak, rms: Math.sqrt(e / (l.length * 2)) };
  }, { state, opts, slot });
}

// Relative difference between two renders: rms(a − b) / rms(a). A state
// may be given as the slot of an earlier render instead.
async function difference(a, b, opts = {}) {
  const slot = async (st) => {
    if (typeof st === 'string') return st;
    const k = `r${++slots}`;
    await render(st, opts, k);
    return k;
  };
  const x = await slot(a);
  const y = await slot(b);
  return lab.evaluate(({ x, y }) => {
    let d = 0;
    let e = 0;
    for (let c = 0; c < 2; c++) {
      const p = window.renders[x][c];
      const q = window.renders[y][c];
      for (let i = 0; i < p.length; i++) { d += (p[i] - q[i]) ** 2; e += p[i] ** 2; }
    }
    return Math.sqrt(d / e);
  }, { x, y });
}

// The tests are independent (own sessions; a test that restarts a server
// has its own), so they run at once: they mostly wait.
describe('sound', { concurrency: true }, () => {
  test('a dense 16-track pattern never goes above full scale, with or without effects', async () => {
    const loud = ['kick', 'tone:membrane-kick', 'snare', 'clap', 'hihat', 'openhat', 'subbass', 'synth:sub',
      'synth:hoover', 'synth:supersaw', 'advanced:warm-pad', 'synth:hypersaw', 'synth:wobble', 'chord',
      'advanced:wobble-bass', 'synth:jangle'];
    const dense = {
      tempo: 180, swing: 0,
      tracks: loud.map((id, k) => track(id, EVERY, { id: `t${k}`, parameterLocks: Array.from({ length: 128 }, (_, i) => (i % 3 ? null : { pitch: 12, volume: 1 })) })),
    };
    const raw = await render(dense, { seconds: 1.5, sampleRate: 22050, raw: true });
    assert.ok(raw.peak > 2, `the voices alone sum far above full scale (${raw.peak.toFixed(2)}), so the master bus has work to do`);
    const clean = await render(dense, { seconds: 1.5, sampleRate: 22050 });
    assert.ok(clean.peak <= 1.0, `peak ${clean.peak} with the master bus`);
    assert.ok(clean.rms > 0.1, `and it is still loud (rms ${clean.rms.toFixed(3)})`);
    const maxed = await render({
      ...dense,
      effects: {
        reverb: { decay: 10, wet: 1 }, delay: { time: '16n', feedback: 0.95, wet: 1 },
        chorus: { frequency: 10, depth: 1, wet: 1 }, distortion: { amount: 1, wet: 1 },
      },
    }, { seconds: 1.5, sampleRate: 22050 });
    assert.ok(maxed.peak <= 1.0, `peak ${maxed.peak} with every effect at its maximum`);
    // The plain beat at the original's volume 0.8, 16 tracks.
    const beat = { tempo: 120, swing: 0, tracks: ['kick', 'snare', 'hihat', 'clap', 'bass'].map((id) => track(id, [0, 4, 8, 12], { volume: 0.8 })) };
    assert.ok((await render(beat)).peak <= 1.0);
  });

  test('each effect of set_effects, and each of its parameters, changes the rendered signal', async () => {
    const base = { tempo: 120, swing: 0, tracks: [track('kick', [0, 8]), track('snare', [4, 12]), track('synth:lead', [2, 6, 10])] };
    const fx = (group, params) => ({ ...base, effects: { [group]: params } });
    const opts = { seconds: 1.2, sampleRate: 22050 };
    // wet 0 is a bypass: parameters alone change nothing.
    assert.ok(await difference(base, fx('reverb', { decay: 7, wet: 0 }), opts) < 1e-6);
    const cases = [
      ['reverb', { decay: 2, wet: 0.5 }, { decay: 6, wet: 0.5 }],
      ['delay', { time: '8n', feedback: 0.4, wet: 0.5 }, { time: '4n', feedback: 0.4, wet: 0.5 }],
      ['delay', { time: '8n', feedback: 0.1, wet: 0.5 }, { time: '8n', feedback: 0.8, wet: 0.5 }],
      ['chorus', { frequency: 1.5, depth: 0.8, wet: 0.6 }, { frequency: 6, depth: 0.8, wet: 0.6 }],
      ['chorus', { frequency: 1.5, depth: 0.1, wet: 0.6 }, { frequency: 1.5, depth: 1, wet: 0.6 }],
      ['distortion', { amount: 0.2, wet: 0.7 }, { amount: 1, wet: 0.7 }],
    ];
    const dry = `dry${++slots}`;
    await render(base, opts, dry);
    for (const [group, a, b] of cases) {
      const wet = `wet${++slots}`;
      await render(fx(group, a), opts, wet);
      const on = await difference(dry, wet, opts);
      assert.ok(on > 0.05, `${group} ${JSON.stringify(a)} changes the signal (${on.toFixed(3)})`);
      const param = await difference(wet, fx(group, b), opts);
      assert.ok(param > 0.02, `${group}: ${JSON.stringify(a)} → ${JSON.stringify(b)} is heard (${param.toFixed(3)})`);
    }
    // The delay time follows the tempo.
    const slow = { ...fx('delay', { time: '4n', feedback: 0.3, wet: 0.5 }), tracks: [track('rim', [0])] };
    assert.ok(await difference(slow, { ...slow, tempo: 90 }, { seconds: 1, sampleRate: 22050 }) > 0.05);
  });

  test('FM tracks follow their fmParams; no fmParams means the preset', async () => {
    const fmTrack = (fmParams) => ({ tempo: 120, swing: 0, tracks: [track('tone:fm-bell', [0, 8], fmParams ? { fmParams } : {})] });
    const opts = { seconds: 1, sampleRate: 22050 };
    assert.ok(await difference(fmTrack({ harmonicity: 1, modulationIndex: 0 }), fmTrack({ harmonicity: 7, modulationIndex: 18 }), opts) > 0.3);
    assert.ok(await difference(fmTrack({ harmonicity: 2, modulationIndex: 10 }), fmTrack({ harmonicity: 2, modulationIndex: 3 }), opts) > 0.1);
    assert.ok(await difference(fmTrack(null), fmTrack({ harmonicity: 5.01, modulationIndex: 14 }), opts) < 1e-6,
      'the preset is what the original UI shows for a track without fmParams');
  });

  test('every sound id of the original UI has a voice of its own', async () => {
    const table = await lab.evaluate(async () => (await import('/sounds.js')).SOUNDS.map((r) => r[0]));
    assert.deepEqual([...table].sort(), [...ORIGINAL_IDS].sort(), 'the sound table is the original picker\'s list');
    const result = await lab.evaluate(async (ids) => {
      const { renderOffline } = await import('/audio.js');
      const renders = [];
      const quiet = [];
      for (const id of ids) {
        const tr = { sampleId: id, steps: [true], stepCount: 16, volume: 1, transpose: 0, parameterLocks: [], playbackMode: 'oneshot' };
        const [l] = await renderOffline({ tempo: 120, swing: 0, tracks: [tr] }, { seconds: 0.35, sampleRate: 22050, raw: true });
        let peak = 0;
        for (const x of l) peak = Math.max(peak, Math.abs(x));
        if (peak < 0.05) quiet.push(`${id} ${peak}`);
        renders.push(l);
      }
      // The closest pair of voices, by relative rms difference.
      let closest = [Infinity, '', ''];
      for (let a = 0; a < ids.length; a++) {
        for (let b = a + 1; b < ids.length; b++) {
          let d = 0;
          let e = 0;
          for (let i = 0; i < renders[a].length; i++) { d += (renders[a][i] - renders[b][i]) ** 2; e += renders[a][i] ** 2 + renders[b][i] ** 2; }
          const rel = Math.sqrt(d / e);
          if (rel < closest[0]) closest = [rel, ids[a], ids[b]];
        }
      }
      return { quiet, closest };
    }, ORIGINAL_IDS);
    assert.deepEqual(result.quiet, [], 'every voice is heard');
    assert.ok(result.closest[0] > 0.2, `no two ids share a voice (closest: ${result.closest.join(' ')})`);
  });

  test('a track\'s sound, the effects and FM parameters are changed from the page and reach the other player', async () => {
    const { browser, server } = env;
    const a = await openPage(browser, `${server.url}/`);
    const b = await openPage(browser, a.url());
    await addTrack(a, 'lead');
    await addTrack(a, 'tone:fm-bass');
    // Change the first track's sound (set_track_sample).
    await head(a, 0).locator('.more').click();
    await a.locator('.drawer').first().locator('.sound').selectOption('synth:vibes');
    await b.waitForFunction(() => document.querySelector('#heads .head .tname')?.textContent === 'Vibes', null, { timeout: 3000 });
    // FM controls exist for the FM track only.
    await head(a, 1).locator('.more').click();
    const drawers = a.locator('.drawer');
    assert.equal(await drawers.nth(0).locator('.fm').isVisible(), false);
    assert.equal(await drawers.nth(1).locator('.fm').isVisible(), true);
    await drawers.nth(1).locator('.fm-h').fill('4.5');
    await drawers.nth(1).locator('.fm-h').dispatchEvent('change');
    // The effects panel.
    await a.click('#fx-toggle');
    await a.locator('[name=reverb-wet]').fill('0.6');
    await a.locator('[name=reverb-wet]').dispatchEvent('change');
    await a.locator('[name=delay-time]').selectOption('4n');
    const id = sessionId(a);
    const st = await until(async () => {
      const s = (await restState(server, id)).state;
      return s.effects?.delay?.time === '4n' && s.tracks[1].fmParams ? s : null;
    });
    assert.equal(st.tracks[0].sampleId, 'synth:vibes');
    assert.equal(st.tracks[0].name, 'Vibes');
    assert.deepEqual(st.tracks[1].fmParams, { harmonicity: 4.5, modulationIndex: 8 });
    assert.equal(st.effects.reverb.wet, 0.6);
    await b.waitForFunction(() => document.querySelector('[name=reverb-wet]').value === '0.6'
      && document.querySelector('[name=delay-time]').value === '4n', null, { timeout: 3000 });
    assert.deepEqual([...a.errors, ...b.errors], []);
    await a.closeAll();
    await b.closeAll();
  });
});
