// audio.js — WebAudio synthesis, the effects chain, the master bus and a
// lookahead scheduler.
//
// Nothing here is a sample file: every voice is synthesised from the recipe
// and parameters its sound id has in sounds.js. Signal flow:
//
//   voices ─▶ input ─▶ distortion ─▶ chorus ─▶ delay ─▶ reverb ─▶ headroom
//          (-6 dB) ─▶ glue compressor ─▶ limiter ─▶ soft ceiling ─▶ output
//
// Each effect is a wet/dry crossfade with the parameters the protocol
// carries (set_effects / state.effects); at wet 0 it is bypassed. The
// ceiling maps anything the limiter lets through onto a curve that never
// leaves ±0.98, so the output cannot clip whatever the session holds.
// The scheduler wakes every 25 ms and schedules every step that starts
// within the next 120 ms on the audio clock, so timing does not drift with
// the UI thread; each track loops over its own stepCount and swing delays
// every odd 16th. The same scheduling code renders into an
// OfflineAudioContext (renderOffline), which is how the tests listen.
import { soundFor, isFM, FM_DEFAULTS } from './sounds.js';

const LOOKAHEAD_S = 0.12;
const TICK_MS = 25;
const HEADROOM = 0.5; // -6 dB before the dynamics stages

// Note values of the delay time, in beats (quarter notes).
export const DELAY_BEATS = {
  '32n': 1 / 8, '16n': 1 / 4, '16t': 1 / 6, '8n': 1 / 2, '8t': 1 / 3, '4n': 1, '4t': 2 / 3,
  '2n': 2, '2t': 4 / 3, '1n': 4, '1m': 4, '2m': 8, '4m': 16,
};

// The original client's defaults (protocol reference §1.7).
export const DEFAULT_EFFECTS = Object.freeze({
  reverb: { decay: 2, wet: 0 },
  delay: { time: '8n', feedback: 0.3, wet: 0 },
  chorus: { frequency: 1.5, depth: 0.5, wet: 0 },
  distortion: { amount: 0.4, wet: 0 },
});

export function withDefaults(fx) {
  const out = {};
  for (const k of Object.keys(DEFAULT_EFFECTS)) out[k] = { ...DEFAULT_EFFECTS[k], ...(fx?.[k] || {}) };
  return out;
}

const midiHz = (m) => 440 * 2 ** ((m - 69) / 12);
const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));

// Deterministic noise (xorshift32), so two renders of one pattern are equal
// and a test can tell an effect's change from randomness.
function noiseBuffer(ctx, seconds, seed) {
  const n = Math.floor(ctx.sampleRate * seconds);
  const buf = ctx.createBuffer(1, n, ctx.sampleRate);
  const d = buf.getChannelData(0);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    d[i] = x / 2147483648 - 1;
  }
  return buf;
}

function curve(fn, n = 2048) {
  const c = new Float32Array(n);
  for (let i = 0; i < n; i++) c[i] = fn((i / (n - 1)) * 2 - 1);
  return c;
}

// Linear below 0.8, then bends smoothly to ±0.98 at ±1 (and beyond, since a
// WaveShaper holds its end values for inputs outside ±1).
const CEILING = curve((x) => {
  const a = Math.abs(x);
  if (a <= 0.8) return x;
  return Math.sign(x) * (0.8 + 0.18 * Math.tanh((a - 0.8) / 0.18));
}, 4096);

// ---- master bus and effects ---------------------------------------------

// One crossfaded effect slot: out = dry·cos(w·π/2) + fx·sin(w·π/2).
class Slot {
  constructor(ctx, input, fxIn, fxOut) {
    this.ctx = ctx;
    this.out = ctx.createGain();
    this.dry = ctx.createGain();
    this.wet = ctx.createGain();
    input.connect(this.dry).connect(this.out);
    input.connect(fxIn);
    fxOut.connect(this.wet).connect(this.out);
    this.mix(0, true);
  }

  mix(w, now) {
    const a = clamp(Number(w) || 0, 0, 1) * Math.PI / 2;
    set(this.ctx, this.dry.gain, Math.cos(a), now);
    set(this.ctx, this.wet.gain, a === 0 ? 0 : Math.sin(a), now);
  }
}

function set(ctx, param, v, now) {
  if (now) { param.cancelScheduledValues(0); param.value = v; return; }
  param.setTargetAtTime(v, ctx.currentTime, 0.02);
}

export class Bus {
  // ctx: an AudioContext or OfflineAudioContext; the bus plays into
  // ctx.destination. `input` is where voices connect.
  constructor(ctx) {
    this.ctx = ctx;
    this.noise = noiseBuffer(ctx, 2, 0x9e3779b9);
    this.noiseAt = 0;
    this.voices = new Map(); // track id -> notes still sounding, oldest first
    this.input = ctx.createGain();

    this.shaper = ctx.createWaveShaper();
    this.shaper.oversample = '2x';
    this.dist = new Slot(ctx, this.input, this.shaper, this.shaper);

    // Stereo chorus: two short delays swept in opposite phase by one LFO.
    const split = ctx.createGain();
    const merge = ctx.createChannelMerger(2);
    this.chorusLfo = ctx.createOscillator();
    this.chorusDepthL = ctx.createGain();
    this.chorusDepthR = ctx.createGain();
    this.chorusL = ctx.createDelay(0.1);
    this.chorusR = ctx.createDelay(0.1);
    this.chorusL.delayTime.value = this.chorusR.delayTime.value = 0.012;
    this.chorusLfo.connect(this.chorusDepthL).connect(this.chorusL.delayTime);
    this.chorusLfo.connect(this.chorusDepthR).connect(this.chorusR.delayTime);
    split.connect(this.chorusL).connect(merge, 0, 0);
    split.connect(this.chorusR).connect(merge, 0, 1);
    this.chorusLfo.start();
    this.chorus = new Slot(ctx, this.dist.out, split, merge);

    // Feedback delay with a darkening filter in the loop, and a convolution
    // reverb. Both are built the first time their mix goes above 0: a long
    // delay line and an impulse response cost tens of milliseconds.
    this.delayIn = ctx.createGain();
    this.delayOut = ctx.createGain();
    this.delay = null;
    this.echo = new Slot(ctx, this.chorus.out, this.delayIn, this.delayOut);
    this.convolver = ctx.createConvolver();
    this.reverb = new Slot(ctx, this.echo.out, this.convolver, this.convolver);
    this.reverbDecay = 0;

    this.headroom = ctx.createGain();
    this.headroom.gain.value = HEADROOM;
    this.glue = ctx.createDynamicsCompressor();
    this.glue.threshold.value = -14; this.glue.knee.value = 10; this.glue.ratio.value = 3;
    this.glue.attack.value = 0.01; this.glue.release.value = 0.25;
    this.limiter = ctx.createDynamicsCompressor();
    this.limiter.threshold.value = -3; this.limiter.knee.value = 0; this.limiter.ratio.value = 20;
    this.limiter.attack.value = 0.002; this.limiter.release.value = 0.12;
    this.ceiling = ctx.createWaveShaper();
    this.ceiling.curve = CEILING;
    this.ceiling.oversample = 'none';
    this.reverb.out.connect(this.headroom).connect(this.glue).connect(this.limiter).connect(this.ceiling)
      .connect(ctx.destination);

    this.fx = null;
    this.tempo = 120;
    this.set(DEFAULT_EFFECTS, 120, true);
  }

  // Applies an effects state (missing groups take the defaults) at the given
  // tempo; `now` skips the short parameter glide (offline rendering).
  set(effects, tempo, now = false) {
    const fx = withDefaults(effects);
    const ctx = this.ctx;
    this.tempo = tempo || 120;
    const amount = clamp(fx.distortion.amount, 0, 1);
    if (!this.fx || this.fx.distortion.amount !== amount) {
      const k = 1 + amount * 60;
      const norm = Math.tanh(k) || 1;
      this.shaper.curve = curve((x) => Math.tanh(k * x) / norm);
    }
    this.dist.mix(fx.distortion.wet, now);

    set(ctx, this.chorusLfo.frequency, clamp(fx.chorus.frequency, 0.1, 10), now);
    const depth = clamp(fx.chorus.depth, 0, 1) * 0.006;
    set(ctx, this.chorusDepthL.gain, depth, now);
    set(ctx, this.chorusDepthR.gain, -depth, now);
    this.chorus.mix(fx.chorus.wet, now);

    if (fx.delay.wet > 0 && !this.delay) {
      this.delay = ctx.createDelay(20);
      this.feedback = ctx.createGain();
      const damp = ctx.createBiquadFilter();
      damp.type = 'lowpass';
      damp.frequency.value = 5000;
      this.delayIn.connect(this.delay).connect(this.delayOut);
      this.delay.connect(damp).connect(this.feedback).connect(this.delay);
      now = true;
    }
    if (this.delay) {
      const beats = DELAY_BEATS[fx.delay.time] ?? DELAY_BEATS['8n'];
      set(ctx, this.delay.delayTime, Math.min(19.9, (beats * 60) / this.tempo), now);
      set(ctx, this.feedback.gain, clamp(fx.delay.feedback, 0, 0.95), now);
    }
    this.echo.mix(fx.delay.wet, now);

    const decay = clamp(fx.reverb.decay, 0.1, 10);
    if (fx.reverb.wet > 0 && decay !== this.reverbDecay) {
      this.reverbDecay = decay;
      this.convolver.buffer = impulse(ctx, decay);
    }
    this.reverb.mix(fx.reverb.wet, now);
    this.fx = fx;
  }

  nextNoiseOffset() {
    this.noiseAt = (this.noiseAt + 0.137) % 1.5;
    return this.noiseAt;
  }
}

// A stereo impulse response: decorrelated noise falling by 60 dB over
// `decay` seconds, darker as it goes.
function impulse(ctx, decay) {
  const sr = ctx.sampleRate;
  const n = Math.max(1, Math.floor(sr * decay));
  const buf = ctx.createBuffer(2, n, sr);
  for (let ch = 0; ch < 2; ch++) {
    const d = buf.getChannelData(ch);
    let x = 0x1234567 + ch * 7919;
    let lp = 0;
    for (let i = 0; i < n; i++) {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      const t = i / sr;
      const white = x / 2147483648 - 1;
      const c = 0.25 + 0.7 * Math.exp(-t * 3 / decay); // one-pole coefficient: brighter early
      lp += c * (white - lp);
      d[i] = lp * Math.exp((-6.9 * t) / decay);
    }
  }
  return buf;
}

// ---- voices -----------------------------------------------------------------

// Attack-decay-sustain-release on a new gain node connected to `dest`; the
// note is held for `hold` seconds. Returns [gain node, time the sound ends].
function adsr(ctx, dest, t, peak, a, d, s, r, hold) {
  const g = ctx.createGain();
  const p = Math.max(peak, 0.0001);
  g.gain.setValueAtTime(0, t);
  g.gain.linearRampToValueAtTime(p, t + a);
  const relAt = t + Math.max(a, hold);
  if (s > 0) g.gain.setTargetAtTime(p * s, t + a, d / 3);
  else g.gain.setTargetAtTime(0, t + a, d / 4);
  g.gain.setTargetAtTime(0, relAt, Math.max(r, 0.005) / 4);
  g.connect(dest);
  return [g, relAt + Math.max(r, 0.005) * 1.5];
}

// Percussive envelope: instant attack, exponential decay (cut short by a gate).
function perc(ctx, dest, t, peak, decay, gate, a = 0.001) {
  const g = ctx.createGain();
  const len = gate ? Math.min(decay, gate) : decay;
  g.gain.setValueAtTime(0, t);
  g.gain.linearRampToValueAtTime(Math.max(peak, 0.0001), t + a);
  g.gain.setTargetAtTime(0, t + a, len / 5);
  if (gate && gate < decay) g.gain.setTargetAtTime(0, t + gate, 0.01);
  g.connect(dest);
  return [g, t + a + len * 1.1];
}

// The sources of the note being built, so the note can be cut short when
// its track runs out of voices (see playNote).
let sources = null;

function osc(ctx, type, freq, t, end, dest) {
  const o = ctx.createOscillator();
  sources?.push(o);
  o.type = type;
  o.frequency.setValueAtTime(freq, t);
  o.connect(dest);
  o.start(t);
  o.stop(end + 0.05);
  o.endAt = end + 0.05;
  return o;
}

function noise(v, t, end, dest) {
  const s = v.ctx.createBufferSource();
  sources?.push(s);
  s.buffer = v.bus.noise;
  s.loop = true;
  s.connect(dest);
  s.start(t, v.bus.nextNoiseOffset());
  s.stop(end + 0.05);
  s.endAt = end + 0.05;
  return s;
}

function filter(ctx, type, f, q, dest) {
  const b = ctx.createBiquadFilter();
  b.type = type;
  b.frequency.value = clamp(f, 20, 20000);
  b.Q.value = q ?? 0.7;
  b.connect(dest);
  return b;
}

function shaperNode(ctx, k, dest) {
  const w = ctx.createWaveShaper();
  const norm = Math.tanh(k);
  w.curve = curve((x) => Math.tanh(k * x) / norm, 1024);
  w.connect(dest);
  return w;
}

function lfo(ctx, rate, depth, t, end, target, delay = 0) {
  const o = ctx.createOscillator();
  sources?.push(o);
  o.frequency.value = rate;
  const g = ctx.createGain();
  g.gain.setValueAtTime(0, t);
  g.gain.linearRampToValueAtTime(depth, t + delay + 0.05);
  o.connect(g).connect(target);
  o.start(t);
  o.stop(end + 0.05);
  o.endAt = end + 0.05;
  return g;
}

// Each recipe plays one note: v = {ctx, bus, out}, p = the table's params,
// t = start time, r = pitch ratio, vol = 0..1, gate = seconds held in gate
// mode (else null), fm = {harmonicity, modulationIndex} for FM rows.
const RECIPES = {
  kick(v, p, t, r, vol, gate) {
    const [g, end] = perc(v.ctx, v.out, t, vol * 0.8 * (p.g ?? 1), p.decay, gate);
    const o = osc(v.ctx, 'sine', p.f0 * r, t, end, g);
    o.frequency.exponentialRampToValueAtTime(p.f1 * r, t + p.sweep);
    if (p.click) {
      const [cg, cend] = perc(v.ctx, v.out, t, vol * p.click, 0.012, null);
      noise(v, t, cend, filter(v.ctx, 'highpass', 2500, 0.7, cg));
    }
  },
  snare(v, p, t, r, vol, gate) {
    const [tg, tend] = perc(v.ctx, v.out, t, vol * p.body, p.decay * 0.6, gate);
    const o = osc(v.ctx, 'triangle', p.tone * r * 1.6, t, tend, tg);
    o.frequency.exponentialRampToValueAtTime(p.tone * r, t + 0.03);
    const [ng, nend] = perc(v.ctx, v.out, t, vol * 0.5, p.decay, gate);
    noise(v, t, nend, filter(v.ctx, 'highpass', p.nf * r, 0.8, ng));
  },
  clap(v, p, t, r, vol, gate) {
    const g = v.ctx.createGain();
    const peak = vol * 2;
    g.gain.setValueAtTime(0, t);
    for (const k of [0, 0.011, 0.022]) {
      g.gain.setValueAtTime(peak, t + k);
      g.gain.setTargetAtTime(peak * 0.1, t + k + 0.001, 0.003);
    }
    const tail = gate ? Math.min(p.decay, gate) : p.decay;
    g.gain.setValueAtTime(peak * 0.7, t + 0.033);
    g.gain.setTargetAtTime(0, t + 0.034, tail / 5);
    g.connect(v.out);
    noise(v, t, t + 0.04 + tail * 1.1, filter(v.ctx, 'bandpass', p.f * r, 1.4, g));
  },
  noise(v, p, t, r, vol, gate) {
    const [g, end] = perc(v.ctx, v.out, t, vol * (p.g ?? 1), p.decay, gate, p.a);
    let dest = g;
    if (p.grit) {
      const am = v.ctx.createGain();
      am.gain.value = 0.6;
      lfo(v.ctx, p.grit * 10, 0.4, t, end, am.gain);
      am.connect(g);
      dest = am;
    }
    noise(v, t, end, filter(v.ctx, p.type, p.f * r, p.q, dest));
  },
  metal(v, p, t, r, vol, gate) {
    const [g, end] = perc(v.ctx, v.out, t, vol * (p.g ?? 1), p.decay, gate);
    const f = p.hp ? filter(v.ctx, 'highpass', p.hp * r, 0.9, g) : filter(v.ctx, 'bandpass', p.bp * r, p.q, g);
    const mix = v.ctx.createGain();
    mix.gain.value = 0.5 / Math.sqrt(p.ratios.length);
    mix.connect(f);
    let mod = null;
    if (p.fm) {
      mod = v.ctx.createGain();
      mod.gain.value = p.f * r * p.fm * 0.05;
      osc(v.ctx, 'square', p.f * r * 1.4, t, end, mod);
    }
    for (const k of p.ratios) {
      const o = osc(v.ctx, 'square', p.f * r * k, t, end, mix);
      if (mod) mod.connect(o.frequency);
    }
    if (p.noise) {
      const ng = v.ctx.createGain();
      ng.gain.value = p.noise;
      ng.connect(f);
      noise(v, t, end, ng);
    }
  },
  click(v, p, t, r, vol, gate) {
    const [g, end] = perc(v.ctx, v.out, t, vol * (p.g ?? 1), p.decay, gate);
    const dest = p.bp ? filter(v.ctx, 'bandpass', p.bp * r, 2, g) : g;
    osc(v.ctx, p.type, p.f * r, t, end, dest);
    if (p.f2) osc(v.ctx, p.type, p.f2 * r, t, end, dest);
  },
  zap(v, p, t, r, vol, gate) {
    const [g, end] = perc(v.ctx, v.out, t, vol * 0.75, p.decay, gate);
    const o = osc(v.ctx, p.type, p.f0 * r, t, end, g);
    o.frequency.exponentialRampToValueAtTime(p.f1 * r, t + p.decay);
  },
  synth(v, p, t, r, vol, gate) {
    const ctx = v.ctx;
    const hold = gate ?? p.hold;
    const notes = p.chord || [0];
    const sum = Math.sqrt(p.osc.reduce((a, o) => a + o[3] * o[3], 0) * notes.length);
    const peak = p.drive ? 0.55 : 0.5 / sum; // a driven voice is already at full scale
    const [g, end] = adsr(ctx, v.out, t, vol * peak * (p.g ?? 1), p.a, p.d, p.s, p.r, hold);
    let dest = g;
    if (p.lfo?.to === 'amp') dest = tremolo(ctx, p.lfo, t, end, g);
    if (p.drive) dest = shaperNode(ctx, p.drive, dest);
    const f = filter(ctx, 'lowpass', p.cut, p.q, dest);
    const f0 = midiHz(p.o) * r;
    const track = Math.sqrt(f0 / 261.6); // brighter for higher notes
    const cut = clamp(p.cut * track, 30, 18000);
    f.frequency.setValueAtTime(cut, t);
    if (p.env) {
      f.frequency.linearRampToValueAtTime(clamp(cut * (1 + p.env), 30, 18000), t + (p.fa ?? 0.003));
      f.frequency.setTargetAtTime(cut, t + (p.fa ?? 0.003), (p.fd ?? 0.2) / 3);
    }
    if (p.lfo?.to === 'cut') lfo(ctx, p.lfo.rate, p.lfo.depth, t, end, f.frequency, p.lfo.delay);
    let vibrato = null; // one LFO for all of the note's oscillators
    for (const n of notes) {
      for (const [type, det, oct, gain] of p.osc) {
        let dest = f;
        if (gain !== 1) {
          dest = ctx.createGain();
          dest.gain.value = gain;
          dest.connect(f);
        }
        const o = osc(ctx, type, f0 * 2 ** (oct + n / 12), t, end, dest);
        o.detune.setValueAtTime(det + (p.bend ? p.bend * 100 : 0), t);
        if (p.bend) o.detune.linearRampToValueAtTime(det, t + p.bendT);
        if (p.lfo?.to === 'pitch') {
          if (vibrato) vibrato.connect(o.detune);
          else vibrato = lfo(ctx, p.lfo.rate, p.lfo.depth, t, end, o.detune, p.lfo.delay);
        }
      }
    }
    if (p.pick) {
      const [pg, pend] = perc(ctx, v.out, t, vol * p.pick * 0.3, 0.03, null);
      noise(v, t, pend, filter(ctx, 'bandpass', f0 * 4, 1, pg));
    }
  },
  fm(v, p, t, r, vol, gate, fm) {
    const ctx = v.ctx;
    const h = clamp(fm?.harmonicity ?? p.h, 0.5, 10);
    const index = clamp(fm?.modulationIndex ?? p.i, 0, 20);
    const f0 = midiHz(p.o) * r;
    const [g, end] = adsr(ctx, v.out, t, vol * 0.8, p.a, p.d, p.s, p.r, gate ?? p.hold);
    let dest = g;
    if (p.lfo?.to === 'amp') dest = tremolo(ctx, p.lfo, t, end, g);
    const carrier = osc(ctx, 'sine', f0, t, end, dest);
    const depth = ctx.createGain();
    const dev = f0 * h * index;
    depth.gain.setValueAtTime(dev, t);
    depth.gain.setTargetAtTime(dev * 0.25, t + 0.005, p.md / 3);
    osc(ctx, p.modType || 'sine', f0 * h, t, end, depth);
    depth.connect(carrier.frequency);
    if (p.tine) {
      const [tg, tend] = perc(ctx, v.out, t, vol * p.tine, 0.12, gate);
      osc(ctx, 'sine', f0 * 7, t, tend, tg);
    }
  },
  am(v, p, t, r, vol, gate) {
    const ctx = v.ctx;
    const f0 = midiHz(p.o) * r;
    const [g, end] = adsr(ctx, v.out, t, vol * 0.75, p.a, p.d, p.s, p.r, gate ?? p.hold);
    const ring = ctx.createGain();
    ring.gain.value = 0.5;
    ring.connect(p.trem ? tremolo(ctx, { rate: p.trem, depth: 0.7 }, t, end, g) : g);
    const modDepth = ctx.createGain();
    modDepth.gain.value = 0.5;
    osc(ctx, 'sine', f0 * p.h, t, end, modDepth);
    modDepth.connect(ring.gain);
    osc(ctx, 'sine', f0, t, end, ring);
  },
  additive(v, p, t, r, vol, gate) {
    const ctx = v.ctx;
    const f0 = midiHz(p.o) * r;
    const hold = gate ?? p.hold;
    const total = p.partials.reduce((a, q) => a + q[1], 0);
    const [g, end] = p.sustain
      ? adsr(ctx, v.out, t, vol * 0.75, p.a, 0.1, 1, p.r, hold)
      : adsr(ctx, v.out, t, vol * 0.85, p.a, p.decay, 0, 0.15, gate ?? p.decay);
    let dest = g;
    if (p.lfo?.to === 'amp') dest = tremolo(ctx, p.lfo, t, end, g);
    for (const [ratio, gain, fall] of p.partials) {
      const pg = ctx.createGain();
      pg.gain.setValueAtTime(gain / total, t);
      if (fall) pg.gain.setTargetAtTime(0, t + 0.002, p.decay / fall / 3);
      pg.connect(dest);
      const o = osc(ctx, 'sine', f0 * ratio, t, end, pg);
      if (p.phaser) lfo(ctx, p.phaser, 12 * ratio, t, end, o.detune);
    }
    if (p.hammer) {
      const [hg, hend] = perc(ctx, v.out, t, vol * p.hammer * 0.4, 0.02, null);
      noise(v, t, hend, filter(ctx, 'bandpass', f0 * 3, 1.5, hg));
    }
  },
};

function tremolo(ctx, spec, t, end, dest) {
  const g = ctx.createGain();
  g.gain.value = 1 - spec.depth / 2;
  lfo(ctx, spec.rate, spec.depth / 2, t, end, g.gain);
  g.connect(dest);
  return g;
}

// Plays one note of a track's sound on the bus at time t.
// Plays one note of a track's sound on the bus at time t. A track sounds at
// most VOICES notes at once: a new note fades the oldest one out in 10 ms,
// which keeps long pads on every step from piling up thousands of nodes.
const VOICES = 5;
export function playNote(bus, sampleId, t, { vol = 1, semis = 0, gate = null, fmParams, voiceKey } = {}) {
  if (!(vol > 0)) return;
  const [id, , category, recipe, params] = soundFor(sampleId);
  const r = 2 ** (semis / 12);
  const fm = recipe === 'fm' && isFM(id) ? (fmParams || FM_DEFAULTS[id]) : null;
  const out = bus.ctx.createGain();
  out.connect(bus.input);
  sources = [];
  try {
    RECIPES[recipe]({ ctx: bus.ctx, bus, out }, params, t, r, Math.min(1, vol), gate, fm, category);
  } finally {
    const voice = { out, sources, start: t };
    sources = null;
    if (voiceKey !== undefined) steal(bus, voiceKey, voice, t);
  }
}

function steal(bus, key, voice, t) {
  const list = (bus.voices.get(key) || []).filter((v) => v.sources.some((s) => s.endAt === undefined || s.endAt > t));
  list.push(voice);
  while (list.length > VOICES) {
    const old = list.shift();
    old.out.gain.setValueAtTime(1, t);
    old.out.gain.setTargetAtTime(0, t, 0.01);
    for (const s of old.sources) if (s.endAt > t + 0.06) { s.stop(t + 0.06); s.endAt = t + 0.06; }
  }
  bus.voices.set(key, list);
}

// Schedules every note of global step `step` at time t; returns the step's
// duration (swing moves odd steps later but keeps the grid).
export function scheduleStep(bus, st, step, t) {
  const stepDur = 60 / st.tempo / 4;
  const at = t + (step % 2 ? (st.swing / 100) * stepDur * 0.5 : 0);
  const soloing = st.tracks.some((tr) => tr.soloed);
  for (const tr of st.tracks) {
    if (tr.muted || (soloing && !tr.soloed)) continue;
    const i = step % (tr.stepCount || 16);
    if (!tr.steps[i]) continue;
    const lock = tr.parameterLocks?.[i];
    const vol = tr.volume * (typeof lock?.volume === 'number' ? lock.volume : 1);
    const semis = (tr.transpose || 0) + (typeof lock?.pitch === 'number' ? lock.pitch : 0);
    playNote(bus, tr.sampleId, at, {
      vol, semis, gate: tr.playbackMode === 'gate' ? stepDur : null, fmParams: tr.fmParams, voiceKey: tr.id,
    });
  }
  return stepDur;
}

// Renders `seconds` of a session state (tracks, tempo, swing, effects) and
// returns the stereo channels; used by the tests.
// With `raw`, the voices' sum bypasses effects and master stages, to show
// what the master bus has to tame.
export async function renderOffline(st, { seconds = 2, sampleRate = 44100, raw = false } = {}) {
  const ctx = new OfflineAudioContext(2, Math.ceil(seconds * sampleRate), sampleRate);
  const bus = new Bus(ctx);
  bus.set(st.effects, st.tempo, true);
  if (raw) {
    bus.ceiling.disconnect();
    bus.input.disconnect();
    bus.input.connect(ctx.destination);
  }
  for (let step = 0, t = 0.01; t < seconds - 0.05; step++) t += scheduleStep(bus, st, step, t);
  const out = await ctx.startRendering();
  return [out.getChannelData(0), out.getChannelData(1)];
}

export class Engine {
  constructor() {
    this.ctx = null;
    this.bus = null;
    this.timer = null;
    this.step = 0;
    this.nextTime = 0;
    this.visual = []; // [{time, step}] for the playhead
    this.effects = null;
    this.tempo = 120;
  }

  get running() { return this.timer !== null; }

  async ensure() {
    if (!this.ctx) {
      const AC = window.AudioContext || window.webkitAudioContext;
      this.ctx = new AC({ latencyHint: 'interactive' });
      this.bus = new Bus(this.ctx);
      this.bus.set(this.effects, this.tempo, true);
    }
    if (this.ctx.state !== 'running') await this.ctx.resume();
  }

  // Effects and tempo (the delay time follows the tempo).
  setEffects(effects, tempo) {
    this.effects = effects;
    this.tempo = tempo;
    this.bus?.set(effects, tempo);
  }

  // getState() returns {tempo, swing, tracks}; it is read at every step so
  // edits are heard at once.
  async start(getState) {
    await this.ensure();
    this.getState = getState;
    this.step = 0;
    this.nextTime = this.ctx.currentTime + 0.05;
    this.visual = [];
    this.timer = setInterval(() => this.schedule(), TICK_MS);
    this.schedule();
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.visual = [];
  }

  // The global step being heard now, or -1.
  currentStep() {
    if (!this.ctx || !this.running) return -1;
    const now = this.ctx.currentTime;
    while (this.visual.length > 1 && this.visual[1].time <= now) this.visual.shift();
    return this.visual.length && this.visual[0].time <= now ? this.visual[0].step : -1;
  }

  schedule() {
    const st = this.getState();
    while (this.nextTime < this.ctx.currentTime + LOOKAHEAD_S) {
      this.visual.push({ time: this.nextTime, step: this.step });
      this.nextTime += scheduleStep(this.bus, st, this.step, this.nextTime);
      this.step++;
    }
  }

  // Plays one note now (piano roll and sound previews).
  async preview(track, semis) {
    try { await this.ensure(); } catch { return; }
    playNote(this.bus, track.sampleId, this.ctx.currentTime + 0.01,
      { vol: track.volume ?? 1, semis, fmParams: track.fmParams });
  }
}
