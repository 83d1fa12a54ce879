// audio.js — WebAudio synthesis and a lookahead scheduler.
//
// Nothing here is a sample file: every sound is synthesised. The scheduler
// wakes every 25 ms and schedules every step that starts within the next
// 120 ms on the audio clock, so timing does not drift with the UI thread.
// Each track loops over its own stepCount; swing delays every odd 16th.

const LOOKAHEAD_S = 0.12;
const TICK_MS = 25;

export const SOUNDS = [
  ['kick', 'Kick'], ['snare', 'Snare'], ['hihat', 'Closed hat'], ['openhat', 'Open hat'],
  ['clap', 'Clap'], ['tom', 'Tom'], ['rim', 'Rim'], ['cowbell', 'Cowbell'],
  ['bass', 'Bass'], ['subbass', 'Sub bass'], ['lead', 'Lead'], ['pluck', 'Pluck'],
  ['chord', 'Chord'], ['pad', 'Pad'], ['zap', 'Zap'], ['noise', 'Noise'],
];

export class Engine {
  constructor() {
    this.ctx = null;
    this.timer = null;
    this.step = 0;
    this.nextTime = 0;
    this.visual = []; // [{time, step}] for the playhead
  }

  get running() { return this.timer !== null; }

  // getState() returns {tempo, swing, tracks}; it is read at every step so
  // edits are heard at once.
  async start(getState) {
    if (!this.ctx) {
      const AC = window.AudioContext || window.webkitAudioContext;
      this.ctx = new AC();
      this.master = this.ctx.createGain();
      this.master.gain.value = 0.8;
      this.master.connect(this.ctx.destination);
      this.noiseBuf = this.ctx.createBuffer(1, this.ctx.sampleRate, this.ctx.sampleRate);
      const d = this.noiseBuf.getChannelData(0);
      for (let i = 0; i < d.length; i++) d[i] = Math.random() * 2 - 1;
    }
    await this.ctx.resume();
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
      const stepDur = 60 / st.tempo / 4;
      const swingDelay = this.step % 2 ? (st.swing / 100) * stepDur * 0.5 : 0;
      const t = this.nextTime + swingDelay;
      const soloing = st.tracks.some((tr) => tr.soloed);
      for (const tr of st.tracks) {
        if (tr.muted || (soloing && !tr.soloed)) continue;
        const n = tr.stepCount || 16;
        const i = this.step % n;
        if (!tr.steps[i]) continue;
        const lock = tr.parameterLocks && tr.parameterLocks[i];
        const vol = tr.volume * (lock && typeof lock.volume === 'number' ? lock.volume : 1);
        const pitch = tr.transpose + (lock && typeof lock.pitch === 'number' ? lock.pitch : 0);
        const len = tr.playbackMode === 'gate' ? stepDur : null;
        this.voice(tr.sampleId, t, vol, pitch, len);
      }
      this.visual.push({ time: this.nextTime, step: this.step });
      this.nextTime += stepDur;
      this.step++;
    }
  }

  env(t, peak, attack, decay, len) {
    const g = this.ctx.createGain();
    g.gain.setValueAtTime(0.0001, t);
    g.gain.exponentialRampToValueAtTime(Math.max(peak, 0.0002), t + attack);
    const end = t + attack + (len !== null ? Math.min(decay, len) : decay);
    g.gain.exponentialRampToValueAtTime(0.0001, end);
    g.connect(this.master);
    return [g, end];
  }

  osc(type, freq, t, end, dest, sweepTo) {
    const o = this.ctx.createOscillator();
    o.type = type;
    o.frequency.setValueAtTime(freq, t);
    if (sweepTo) o.frequency.exponentialRampToValueAtTime(sweepTo, t + 0.12);
    o.connect(dest);
    o.start(t);
    o.stop(end + 0.02);
    return o;
  }

  noise(t, end, dest, type, freq) {
    const s = this.ctx.createBufferSource();
    s.buffer = this.noiseBuf;
    const f = this.ctx.createBiquadFilter();
    f.type = type;
    f.frequency.value = freq;
    s.connect(f);
    f.connect(dest);
    s.start(t);
    s.stop(end + 0.02);
  }

  voice(sampleId, t, vol, semis, len) {
    const ratio = Math.pow(2, semis / 12);
    const name = String(sampleId).replace(/^(synth|tone|advanced|sampled):/, '');
    const kind = SOUNDS.some(([k]) => k === name) ? name
      : /kick|membrane/.test(name) ? 'kick' : /bass/.test(name) ? 'bass'
      : /pad|string|organ/.test(name) ? 'pad' : /bell|piano|epiano|key/.test(name) ? 'pluck'
      : /lead|saw|square/.test(name) ? 'lead' : 'tom';
    let g, end;
    switch (kind) {
      case 'kick': [g, end] = this.env(t, vol, 0.002, 0.4, len);
        this.osc('sine', 150 * ratio, t, end, g, 40 * ratio); break;
      case 'snare': [g, end] = this.env(t, vol * 0.7, 0.001, 0.18, len);
        this.noise(t, end, g, 'highpass', 1200); this.osc('triangle', 190 * ratio, t, end, g); break;
      case 'hihat': [g, end] = this.env(t, vol * 0.4, 0.001, 0.05, len);
        this.noise(t, end, g, 'highpass', 7000); break;
      case 'openhat': [g, end] = this.env(t, vol * 0.4, 0.001, 0.3, len);
        this.noise(t, end, g, 'highpass', 6000); break;
      case 'clap': [g, end] = this.env(t, vol * 0.6, 0.005, 0.15, len);
        this.noise(t, end, g, 'bandpass', 1500); break;
      case 'rim': [g, end] = this.env(t, vol * 0.5, 0.001, 0.04, len);
        this.osc('square', 900 * ratio, t, end, g); break;
      case 'cowbell': [g, end] = this.env(t, vol * 0.4, 0.001, 0.25, len);
        this.osc('square', 560 * ratio, t, end, g); this.osc('square', 845 * ratio, t, end, g); break;
      case 'bass': case 'subbass': {
        [g, end] = this.env(t, vol * 0.6, 0.005, 0.3, len);
        const f = this.ctx.createBiquadFilter();
        f.type = 'lowpass'; f.frequency.value = kind === 'bass' ? 600 : 200; f.connect(g);
        this.osc(kind === 'bass' ? 'sawtooth' : 'sine', 55 * ratio, t, end, f); break;
      }
      case 'lead': [g, end] = this.env(t, vol * 0.3, 0.01, 0.25, len);
        this.osc('square', 440 * ratio, t, end, g); break;
      case 'pluck': [g, end] = this.env(t, vol * 0.4, 0.002, 0.35, len);
        this.osc('triangle', 330 * ratio, t, end, g); break;
      case 'chord': [g, end] = this.env(t, vol * 0.25, 0.01, 0.5, len);
        for (const k of [0, 4, 7]) this.osc('sawtooth', 262 * ratio * Math.pow(2, k / 12), t, end, g);
        break;
      case 'pad': [g, end] = this.env(t, vol * 0.2, 0.15, 0.9, len);
        for (const d of [-7, 0, 7]) {
          const o = this.osc('sawtooth', 220 * ratio, t, end, g); o.detune.value = d;
        } break;
      case 'zap': [g, end] = this.env(t, vol * 0.4, 0.001, 0.2, len);
        this.osc('sawtooth', 1200 * ratio, t, end, g, 80); break;
      case 'noise': [g, end] = this.env(t, vol * 0.3, 0.001, 0.2, len);
        this.noise(t, end, g, 'lowpass', 9000); break;
      default: [g, end] = this.env(t, vol, 0.002, 0.3, len);
        this.osc('sine', 110 * ratio, t, end, g, 70 * ratio);
    }
  }
}
