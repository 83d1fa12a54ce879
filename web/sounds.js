// sounds.js — the one table that maps every sound id to a synthesised voice.
//
// The ids are the 74 the original Keyboardia UI can put in a session (its
// instrument picker, reference commit 3b0e55e), in the picker's categories
// and with its display names; grooved synthesises all of them in the
// browser. A row is [id, name, category, recipe, params]: `recipe` names a
// voice function in audio.js and `params` tune it. Pitched rows carry `o`,
// the MIDI note heard at pitch 0 (transpose and a step's pitch lock add
// semitones); drum rows are pitched by the same semitones around their own
// tuning. Ids not in the table (older sessions, recordings) are mapped by
// name in soundFor(), so nothing falls back to a generic thump.

export const CATEGORIES = [
  ['drums', 'Drums'], ['bass', 'Bass'], ['keys', 'Keys'], ['leads', 'Leads'], ['pads', 'Pads'], ['fx', 'FX'],
];

// Oscillator shorthand for the `synth` recipe: [type, detune cents, octave, gain].
const saw = (d = 0, o = 0, g = 1) => ['sawtooth', d, o, g];
const sq = (d = 0, o = 0, g = 1) => ['square', d, o, g];
const tri = (d = 0, o = 0, g = 1) => ['triangle', d, o, g];
const sin = (d = 0, o = 0, g = 1) => ['sine', d, o, g];
const superSaw = (n, spread) => Array.from({ length: n }, (_, k) => saw((k - (n - 1) / 2) * (spread / (n - 1)) * 2, 0, 1));

export const SOUNDS = [
  // ---- drums -------------------------------------------------------------
  ['kick', 'Kick', 'drums', 'kick', { f0: 160, f1: 48, sweep: 0.07, decay: 0.42, click: 0.35 }],
  ['snare', 'Snare', 'drums', 'snare', { tone: 185, nf: 1800, decay: 0.2, body: 0.45 }],
  ['hihat', 'Hi-Hat', 'drums', 'noise', { type: 'highpass', f: 7500, q: 0.7, a: 0.001, decay: 0.05, g: 0.75 }],
  ['clap', 'Clap', 'drums', 'clap', { f: 1250, decay: 0.22 }],
  ['tom', 'Tom', 'drums', 'kick', { f0: 240, f1: 120, sweep: 0.12, decay: 0.32, click: 0.12, g: 0.8 }],
  ['rim', 'Rim', 'drums', 'click', { f: 1700, f2: 520, decay: 0.035, type: 'triangle', g: 0.7 }],
  ['cowbell', 'Cowbell', 'drums', 'metal', { f: 540, ratios: [1, 1.48], bp: 2600, q: 1.2, decay: 0.28, g: 1.2 }],
  ['openhat', 'Open Hat', 'drums', 'noise', { type: 'highpass', f: 6200, q: 0.7, a: 0.001, decay: 0.38, g: 0.6 }],
  ['shaker', 'Shaker', 'drums', 'noise', { type: 'bandpass', f: 5200, q: 1.4, a: 0.025, decay: 0.07, g: 0.9 }],
  ['conga', 'Conga', 'drums', 'kick', { f0: 420, f1: 330, sweep: 0.03, decay: 0.24, click: 0.08, g: 0.75 }],
  ['tambourine', 'Tamb', 'drums', 'metal', { f: 2400, ratios: [1, 1.37, 1.73, 2.21], hp: 5200, decay: 0.22, noise: 0.6, g: 0.8 }],
  ['clave', 'Clave', 'drums', 'click', { f: 2500, decay: 0.06, type: 'sine', g: 0.7 }],
  ['cabasa', 'Cabasa', 'drums', 'noise', { type: 'highpass', f: 8800, q: 1, a: 0.004, decay: 0.09, grit: 30, g: 0.9 }],
  ['woodblock', 'Wood', 'drums', 'click', { f: 880, f2: 1330, decay: 0.07, type: 'sine', bp: 1100, g: 0.75 }],
  ['tone:membrane-kick', 'Synth Kick', 'drums', 'kick', { f0: 520, f1: 38, sweep: 0.05, decay: 0.6, click: 0 }],
  ['tone:membrane-tom', 'Synth Tom', 'drums', 'kick', { f0: 420, f1: 98, sweep: 0.08, decay: 0.45, click: 0, g: 0.85 }],
  ['tone:metal-cymbal', 'Cymbal', 'drums', 'metal', { f: 200, ratios: [1, 1.342, 1.2312, 1.6532, 1.9523, 2.1523], fm: 32, hp: 4000, decay: 1.3, noise: 0.35, g: 0.8 }],
  ['tone:metal-hihat', 'Metal Hat', 'drums', 'metal', { f: 250, ratios: [1, 1.342, 1.2312, 1.6532, 1.9523, 2.1523], fm: 40, hp: 7000, decay: 0.1, g: 1.4 }],

  // ---- bass --------------------------------------------------------------
  ['bass', 'Bass', 'bass', 'synth', { o: 36, osc: [saw(), sq(0, -1, 0.5)], cut: 520, q: 2, env: 2.5, fd: 0.18, a: 0.004, d: 0.3, s: 0.5, r: 0.08, hold: 0.28 }],
  ['subbass', 'Sub', 'bass', 'synth', { o: 36, osc: [sin(), sin(0, 1, 0.15)], cut: 240, q: 0.5, env: 0, a: 0.006, d: 0.4, s: 0.8, r: 0.1, hold: 0.35 }],
  ['synth:bass', 'Synth', 'bass', 'synth', { o: 36, osc: [saw(-6), saw(6)], cut: 700, q: 4, env: 3, fd: 0.15, a: 0.003, d: 0.25, s: 0.55, r: 0.08, hold: 0.25 }],
  ['synth:acid', 'Acid', 'bass', 'synth', { o: 36, osc: [saw()], cut: 380, q: 14, env: 7, fd: 0.14, a: 0.002, d: 0.2, s: 0.6, r: 0.05, hold: 0.2, drive: 3 }],
  ['synth:sub', 'Deep Sub', 'bass', 'synth', { o: 24, osc: [sin(), tri(0, 0, 0.25)], cut: 160, q: 0.7, env: 0.5, fd: 0.1, a: 0.008, d: 0.5, s: 0.9, r: 0.15, hold: 0.45 }],
  ['synth:funkbass', 'Funk', 'bass', 'synth', { o: 36, osc: [sq(), saw(4, 0, 0.5)], cut: 420, q: 8, env: 6, fd: 0.09, a: 0.002, d: 0.16, s: 0.35, r: 0.05, hold: 0.18 }],
  ['synth:discobass', 'Disco', 'bass', 'synth', { o: 36, osc: [saw(), sq(0, 1, 0.3)], cut: 900, q: 5, env: 2, fd: 0.08, a: 0.002, d: 0.12, s: 0.5, r: 0.04, hold: 0.14 }],
  ['synth:reese', 'Reese', 'bass', 'synth', { o: 36, osc: [saw(-18), saw(18), saw(0, -1, 0.5)], cut: 650, q: 2, env: 1, fd: 0.3, a: 0.01, d: 0.5, s: 0.8, r: 0.15, hold: 0.4 }],
  ['synth:hoover', 'Hoover', 'bass', 'synth', { o: 48, osc: [saw(-25), saw(25), saw(0, -1), sq(10, 1, 0.3)], cut: 1800, q: 1.5, env: 1.5, fd: 0.25, a: 0.03, d: 0.4, s: 0.7, r: 0.2, hold: 0.4, bend: -5, bendT: 0.12 }],
  ['tone:fm-bass', 'FM Bass', 'bass', 'fm', { o: 36, h: 2, i: 8, a: 0.01, d: 0.2, s: 0.4, r: 0.3, md: 0.25, hold: 0.25 }],
  ['advanced:sub-bass', 'Sub Bass', 'bass', 'synth', { o: 36, osc: [sin(), tri(0, 1, 0.35)], cut: 600, q: 2, env: 3, fd: 0.08, a: 0.004, d: 0.3, s: 0.7, r: 0.1, hold: 0.3 }],
  ['advanced:wobble-bass', 'Wobble', 'bass', 'synth', { o: 36, osc: [saw(-8), saw(8), sq(0, -1, 0.4)], cut: 500, q: 7, env: 0.5, fd: 0.2, a: 0.01, d: 0.3, s: 0.9, r: 0.12, hold: 0.45, lfo: { to: 'cut', rate: 4, depth: 1400 } }],
  ['advanced:acid-bass', 'Acid 303', 'bass', 'synth', { o: 36, osc: [sq()], cut: 300, q: 18, env: 9, fd: 0.18, a: 0.002, d: 0.22, s: 0.5, r: 0.05, hold: 0.22, drive: 4 }],

  // ---- keys --------------------------------------------------------------
  ['sampled:piano', 'Piano', 'keys', 'additive', { o: 60, partials: [[1, 1, 1], [2, 0.5, 1.4], [3, 0.28, 1.9], [4, 0.16, 2.4], [5, 0.1, 3], [6.02, 0.06, 3.5]], a: 0.002, decay: 1.4, hammer: 0.25, hold: 1.2 }],
  ['synth:rhodes', 'Rhodes', 'keys', 'fm', { o: 60, h: 1, i: 1.6, a: 0.003, d: 1.1, s: 0.25, r: 0.5, md: 0.45, tine: 0.25, hold: 0.9 }],
  ['synth:wurlitzer', 'Wurli', 'keys', 'fm', { o: 60, h: 1, i: 3.2, a: 0.002, d: 0.7, s: 0.3, r: 0.3, md: 0.2, tine: 0.1, lfo: { to: 'amp', rate: 5.5, depth: 0.25 }, hold: 0.7 }],
  ['synth:epiano', 'E-Piano', 'keys', 'fm', { o: 60, h: 1, i: 2.4, a: 0.002, d: 0.9, s: 0.2, r: 0.4, md: 0.35, tine: 0.18, hold: 0.8 }],
  ['tone:fm-epiano', 'FM Piano', 'keys', 'fm', { o: 60, h: 3.01, i: 10, a: 0.01, d: 0.3, s: 0.2, r: 0.8, md: 0.4, modType: 'square', hold: 0.6 }],
  ['synth:organ', 'Organ', 'keys', 'additive', { o: 60, partials: [[0.5, 0.6, 0], [1, 1, 0], [2, 0.7, 0], [3, 0.35, 0], [4, 0.3, 0], [6, 0.15, 0], [8, 0.12, 0]], a: 0.008, sustain: true, r: 0.06, hold: 0.45 }],
  ['synth:organphase', 'Phaser', 'keys', 'additive', { o: 60, partials: [[1, 1, 0], [2, 0.6, 0], [3, 0.4, 0], [4, 0.25, 0], [8, 0.1, 0]], a: 0.01, sustain: true, r: 0.1, hold: 0.5, phaser: 0.6 }],
  ['synth:clavinet', 'Clav', 'keys', 'synth', { o: 60, osc: [['square', 0, 0, 1], saw(3, 1, 0.3)], cut: 2600, q: 5, env: 1.5, fd: 0.06, a: 0.001, d: 0.22, s: 0.2, r: 0.05, hold: 0.25, pulse: true }],
  ['synth:vibes', 'Vibes', 'keys', 'additive', { o: 72, partials: [[1, 1, 1], [4, 0.35, 3], [10, 0.08, 6]], a: 0.002, decay: 1.6, lfo: { to: 'amp', rate: 5, depth: 0.35 }, hold: 1.2 }],

  // ---- leads -------------------------------------------------------------
  ['lead', 'Lead', 'leads', 'synth', { o: 69, osc: [sq(-4), sq(4)], cut: 2400, q: 2, env: 1, fd: 0.2, a: 0.01, d: 0.2, s: 0.6, r: 0.1, hold: 0.25 }],
  ['pluck', 'Pluck', 'leads', 'synth', { o: 64, osc: [tri(), saw(0, 1, 0.25)], cut: 1800, q: 3, env: 3, fd: 0.08, a: 0.002, d: 0.35, s: 0, r: 0.1, hold: 0.35 }],
  ['synth:lead', 'Classic', 'leads', 'synth', { o: 60, osc: [saw(-7), saw(7)], cut: 2000, q: 3, env: 2, fd: 0.2, a: 0.01, d: 0.2, s: 0.7, r: 0.15, hold: 0.3, lfo: { to: 'pitch', rate: 5.5, depth: 12, delay: 0.15 } }],
  ['synth:pluck', 'Synth Pluck', 'leads', 'synth', { o: 60, osc: [saw(), sq(5, 0, 0.4)], cut: 1200, q: 6, env: 5, fd: 0.1, a: 0.001, d: 0.28, s: 0, r: 0.08, hold: 0.3 }],
  ['synth:supersaw', 'Supersaw', 'leads', 'synth', { o: 60, osc: superSaw(7, 28), cut: 3500, q: 1, env: 1, fd: 0.3, a: 0.01, d: 0.3, s: 0.75, r: 0.2, hold: 0.35 }],
  ['synth:hypersaw', 'Hypersaw', 'leads', 'synth', { o: 60, osc: [...superSaw(7, 45), saw(0, 1, 0.4), saw(0, -1, 0.4)], cut: 5000, q: 1, env: 0.6, fd: 0.4, a: 0.015, d: 0.4, s: 0.8, r: 0.25, hold: 0.4 }],
  ['tone:pluck-string', 'String', 'leads', 'synth', { o: 60, osc: [saw(), tri(0, 1, 0.5)], cut: 4000, q: 1, env: 0, fd: 0.05, a: 0.001, d: 0.9, s: 0, r: 0.2, hold: 0.8, pick: 0.5, darken: 0.3 }],
  ['tone:duo-lead', 'Duo', 'leads', 'synth', { o: 60, osc: [saw(), sq(0, 0, 0.6), saw(0, 7 / 12, 0.5)], cut: 2200, q: 3, env: 1.2, fd: 0.2, a: 0.01, d: 0.2, s: 0.5, r: 0.3, hold: 0.35, lfo: { to: 'pitch', rate: 5, depth: 25 } }],
  ['advanced:supersaw', 'Fat Saw', 'leads', 'synth', { o: 60, osc: [...superSaw(5, 20), saw(0, -1, 0.6)], cut: 2800, q: 2, env: 1.5, fd: 0.25, a: 0.005, d: 0.3, s: 0.7, r: 0.2, hold: 0.35 }],
  ['advanced:thick-lead', 'Thick', 'leads', 'synth', { o: 60, osc: [saw(-10), sq(10, 0, 0.7), saw(0, -1, 0.5)], cut: 1600, q: 4, env: 2, fd: 0.25, a: 0.01, d: 0.25, s: 0.75, r: 0.15, hold: 0.3, drive: 1.5 }],
  ['advanced:vibrato-lead', 'Vibrato', 'leads', 'synth', { o: 60, osc: [tri(), sq(0, 1, 0.25)], cut: 3000, q: 1, env: 0.5, fd: 0.2, a: 0.02, d: 0.2, s: 0.8, r: 0.2, hold: 0.4, lfo: { to: 'pitch', rate: 6, depth: 35 } }],

  // ---- pads --------------------------------------------------------------
  ['pad', 'Pad', 'pads', 'synth', { o: 60, osc: [saw(-8), saw(8), tri(0, -1, 0.5)], cut: 1400, q: 1, env: 0, a: 0.25, d: 0.5, s: 0.8, r: 0.6, hold: 0.9 }],
  ['chord', 'Chord', 'pads', 'synth', { o: 60, osc: [saw(-4), tri(4, 0, 0.6)], chord: [0, 4, 7], cut: 2200, q: 1.5, env: 1, fd: 0.25, a: 0.01, d: 0.45, s: 0.3, r: 0.2, hold: 0.45 }],
  ['synth:pad', 'Soft', 'pads', 'synth', { o: 60, osc: [tri(-6), tri(6), sin(0, 1, 0.3)], cut: 1800, q: 0.7, env: 0, a: 0.35, d: 0.6, s: 0.85, r: 0.8, hold: 1 }],
  ['synth:warmpad', 'Warm', 'pads', 'synth', { o: 60, osc: [saw(-10), saw(10), sq(0, -1, 0.3)], cut: 900, q: 1.5, env: 0.8, fd: 0.8, a: 0.4, d: 0.8, s: 0.8, r: 0.9, hold: 1.1 }],
  ['synth:strings', 'Strings', 'pads', 'synth', { o: 60, osc: [saw(-12), saw(0), saw(12)], cut: 2600, q: 0.8, env: 0, a: 0.18, d: 0.4, s: 0.85, r: 0.5, hold: 0.9, lfo: { to: 'pitch', rate: 5, depth: 8, delay: 0.2 } }],
  ['synth:shimmer', 'Shimmer', 'pads', 'synth', { o: 72, osc: [tri(-5), tri(5), sin(0, 1, 0.4), sin(4, 2, 0.15)], cut: 6000, q: 0.7, env: 0, a: 0.3, d: 0.8, s: 0.7, r: 1, hold: 1, lfo: { to: 'amp', rate: 7, depth: 0.25 } }],
  ['synth:dreampop', 'Dream', 'pads', 'synth', { o: 60, osc: [saw(-15), saw(15), tri(0, 1, 0.4)], chord: [0, 7], cut: 1500, q: 2, env: 1, fd: 0.6, a: 0.12, d: 0.7, s: 0.7, r: 0.8, hold: 0.9, lfo: { to: 'cut', rate: 0.7, depth: 500 } }],
  ['synth:glass', 'Glass', 'pads', 'fm', { o: 72, h: 3.5, i: 2.2, a: 0.02, d: 1.2, s: 0.35, r: 1, md: 0.9, hold: 1 }],
  ['synth:jangle', 'Jangle', 'pads', 'synth', { o: 64, osc: [sq(-9), sq(9), saw(0, 1, 0.4)], chord: [0, 12], cut: 3200, q: 2, env: 1.5, fd: 0.12, a: 0.002, d: 0.6, s: 0.15, r: 0.3, hold: 0.5 }],
  ['synth:evolving', 'Evolve', 'pads', 'synth', { o: 60, osc: [saw(-7), sq(7, 0, 0.6), tri(0, 1, 0.4)], cut: 700, q: 5, env: 0, a: 0.6, d: 1, s: 0.9, r: 1.2, hold: 1.3, lfo: { to: 'cut', rate: 0.25, depth: 1600 } }],
  ['synth:sweep', 'Sweep', 'pads', 'synth', { o: 60, osc: [saw(-9), saw(9)], cut: 250, q: 9, env: 14, fd: 1.2, fa: 0.8, a: 0.2, d: 0.8, s: 0.8, r: 0.8, hold: 1.2 }],
  ['advanced:warm-pad', 'Lush', 'pads', 'synth', { o: 60, osc: [...superSaw(5, 18), tri(0, -1, 0.5)], cut: 1200, q: 1, env: 0.5, fd: 1, a: 0.5, d: 1, s: 0.85, r: 1.2, hold: 1.3 }],
  ['advanced:tremolo-strings', 'Tremolo', 'pads', 'synth', { o: 60, osc: [saw(-8), saw(8), saw(0, -1, 0.5)], cut: 2400, q: 0.8, env: 0, a: 0.12, d: 0.4, s: 0.85, r: 0.5, hold: 0.9, lfo: { to: 'amp', rate: 8, depth: 0.6 } }],

  // ---- fx ----------------------------------------------------------------
  ['zap', 'Zap', 'fx', 'zap', { f0: 2400, f1: 70, decay: 0.2, type: 'sawtooth' }],
  ['noise', 'Noise', 'fx', 'noise', { type: 'lowpass', f: 9000, q: 0.5, a: 0.005, decay: 0.25, g: 0.55 }],
  ['synth:bell', 'Bell', 'fx', 'fm', { o: 72, h: 3.5, i: 4, a: 0.001, d: 1.4, s: 0, r: 1.2, md: 0.8, hold: 1.2 }],
  ['synth:stab', 'Stab', 'fx', 'synth', { o: 60, osc: [saw(-6), saw(6)], chord: [0, 3, 7, 10], cut: 2600, q: 3, env: 2, fd: 0.1, a: 0.002, d: 0.22, s: 0, r: 0.08, hold: 0.2 }],
  ['synth:brass', 'Brass', 'fx', 'synth', { o: 60, osc: [saw(-5), saw(5), sq(0, -1, 0.3)], cut: 600, q: 2, env: 5, fd: 0.35, fa: 0.06, a: 0.04, d: 0.3, s: 0.75, r: 0.2, hold: 0.4 }],
  ['synth:wobble', 'Wobble', 'fx', 'synth', { o: 48, osc: [saw(-6), sq(6)], cut: 400, q: 10, env: 0, a: 0.01, d: 0.3, s: 0.9, r: 0.1, hold: 0.5, lfo: { to: 'cut', rate: 6, depth: 2200 } }],
  ['synth:growl', 'Growl', 'fx', 'synth', { o: 36, osc: [saw(-10), saw(10), sq(0, 1, 0.5)], cut: 500, q: 12, env: 2, fd: 0.15, a: 0.01, d: 0.3, s: 0.8, r: 0.1, hold: 0.4, drive: 6, lfo: { to: 'cut', rate: 11, depth: 1200 } }],
  ['tone:fm-bell', 'FM Bell', 'fx', 'fm', { o: 72, h: 5.01, i: 14, a: 0.001, d: 2, s: 0, r: 2, md: 1.2, hold: 1.5 }],
  ['tone:am-bell', 'AM Bell', 'fx', 'am', { o: 72, h: 3.5, a: 0.001, d: 1.5, s: 0, r: 1.5, hold: 1.2 }],
  ['tone:am-tremolo', 'Tremolo', 'fx', 'am', { o: 60, h: 1, a: 0.1, d: 0.2, s: 0.8, r: 0.5, hold: 0.6, trem: 6 }],
];

const BY_ID = new Map(SOUNDS.map((row) => [row[0], row]));

// The FM controls' starting values when a track has no fmParams yet, as the
// original UI shows them.
export const FM_DEFAULTS = {
  'tone:fm-epiano': { harmonicity: 3.01, modulationIndex: 10 },
  'tone:fm-bass': { harmonicity: 2, modulationIndex: 8 },
  'tone:fm-bell': { harmonicity: 5.01, modulationIndex: 14 },
};

export const isFM = (id) => typeof id === 'string' && id.startsWith('tone:fm-');

// Ids outside the table: match by words in the id, as specific as possible
// first. Every branch lands on a real row, never on a shapeless default.
const BY_WORD = [
  [/membrane-kick|kick|808|bd\b/, 'kick'], [/snare|sd\b/, 'snare'], [/clap/, 'clap'],
  [/open.?hat/, 'openhat'], [/hat|hh\b/, 'hihat'], [/cymbal|crash|ride/, 'tone:metal-cymbal'],
  [/tom/, 'tom'], [/rim/, 'rim'], [/cowbell/, 'cowbell'], [/shak/, 'shaker'], [/conga|bongo/, 'conga'],
  [/tamb/, 'tambourine'], [/clave/, 'clave'], [/cabasa/, 'cabasa'], [/wood/, 'woodblock'],
  [/wobble/, 'advanced:wobble-bass'], [/reese/, 'synth:reese'], [/acid|303/, 'synth:acid'],
  [/sub/, 'subbass'], [/bass/, 'bass'], [/piano|keys?\b/, 'sampled:piano'], [/rhodes|epiano|e-piano|electric/, 'synth:rhodes'],
  [/organ/, 'synth:organ'], [/clav/, 'synth:clavinet'], [/vibe|mallet|marimba/, 'synth:vibes'],
  [/bell|chime/, 'synth:bell'], [/string|ensemble|violin/, 'synth:strings'], [/brass|horn/, 'synth:brass'],
  [/supersaw|saw/, 'synth:supersaw'], [/pad|ambient|ethereal|warm|dark/, 'synth:pad'], [/pluck|guitar/, 'synth:pluck'],
  [/lead|sync|analog|square/, 'synth:lead'], [/chord|stab/, 'chord'], [/noise|wind|texture/, 'noise'],
  [/zap|laser|fx/, 'zap'],
];

// The table row for any sampleId; ids it does not know get the row their
// name suggests, and recordings (which grooved cannot play) a soft pluck.
export function soundFor(id) {
  const row = BY_ID.get(id);
  if (row) return row;
  const name = String(id ?? '').toLowerCase();
  for (const [re, to] of BY_WORD) if (re.test(name)) return BY_ID.get(to);
  return BY_ID.get('pluck');
}

export const soundName = (id) => BY_ID.get(id)?.[1] ?? String(id ?? '').split(':').pop();
export const isMelodic = (id) => soundFor(id)[2] !== 'drums';
export const knownSound = (id) => BY_ID.has(id);

const NOTE_NAMES = ['C', 'C♯', 'D', 'D♯', 'E', 'F', 'F♯', 'G', 'G♯', 'A', 'A♯', 'B'];
export function noteName(midi) {
  const m = Math.round(midi);
  return `${NOTE_NAMES[((m % 12) + 12) % 12]}${Math.floor(m / 12) - 1}`;
}
// The MIDI note a step plays at pitch 0 and no transpose.
export const baseNote = (id) => soundFor(id)[4].o ?? 60;
