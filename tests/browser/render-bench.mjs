// Benchmark (not a test): main-thread time of a remote and of a local step
// toggle on the web page at 16 tracks × 64 steps.
//   node tests/browser/render-bench.mjs [toggles=200]
// GROOVED_WEB_ROOT=<dir> measures another copy of the page (e.g. an older
// commit's web/ exported into a directory).
//
// One page is measured. Remote toggles come from a bare WebSocket client in
// this process (so no other renderer is running); local toggles are real
// mouse clicks. Two figures per kind:
//   cpu_ms_per_toggle: CPU time of the page's renderer main thread
//     (Chromium trace, top-level tasks' thread time) during the toggles,
//     minus an idle stretch of the same length, divided by the toggles:
//     everything the toggle costs that thread, painting included. Thread
//     time, not wall time, so other load on the machine does not inflate it.
//   handler_ms: wall time from the event's arrival (the WebSocket message,
//     or the click's capture phase) to the end of the page's handling plus a
//     forced style recalculation and layout (median, p95, max).
import { connect } from 'node:net';
import { setup, DESKTOP } from './harness.mjs';

const N = Number(process.argv[2] || 200);
const TRACKS = 16;
const STEPS = 64;
const GAP_MS = 40;

const INSTRUMENT = () => {
  window.__remote = [];
  window.__local = [];
  const desc = Object.getOwnPropertyDescriptor(WebSocket.prototype, 'onmessage');
  Object.defineProperty(WebSocket.prototype, 'onmessage', {
    configurable: true,
    get: desc.get,
    set(fn) {
      desc.set.call(this, (e) => {
        if (!window.__measure) { fn(e); return; }
        const t0 = performance.now();
        fn(e);
        document.body.getBoundingClientRect(); // style + layout now, not later
        if (typeof e.data === 'string' && e.data.includes('"step_toggled"')) window.__remote.push(performance.now() - t0);
      });
    },
  });
  window.__measure = true;
  let t0 = 0;
  window.addEventListener('click', () => { t0 = performance.now(); }, true);
  window.addEventListener('click', (e) => {
    if (!window.__measure || !e.target.closest?.('.step')) return;
    document.body.getBoundingClientRect();
    window.__local.push(performance.now() - t0);
  });
};

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { n: s.length, median: +q(0.5).toFixed(3), p95: +q(0.95).toFixed(3), max: +s.at(-1).toFixed(3) };
};

// A minimal WebSocket client: the upgrade, then masked text frames out;
// whatever the server sends is read and dropped.
function wsClient(port, path) {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1', () => {
      sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
        + 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    });
    let head = '';
    const onData = (d) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      sock.off('data', onData);
      sock.on('data', () => {});
      if (!/^HTTP\/1\.1 101/.test(head)) { reject(new Error(head.split('\r\n')[0])); return; }
      resolve((text) => {
        const payload = Buffer.from(text);
        const mask = Buffer.from([1, 2, 3, 4]);
        const len = payload.length < 126 ? Buffer.from([0x81, 0x80 | payload.length])
          : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 255]);
        const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
        sock.write(Buffer.concat([len, mask, body]));
      });
    };
    sock.on('data', onData);
    sock.on('error', reject);
  });
}

// From a trace: thread time (ms) of the renderer main thread's top-level
// tasks, and of the page's own work within them (its scripts, style,
// layout, paint, layerization; outermost events only, so nothing counts
// twice). Script from anywhere but the page's origin (Playwright's injected
// listeners) is counted apart, as harness.
const PAGE_WORK = new Set(['FunctionCall', 'EvaluateScript', 'TimerFire', 'FireAnimationFrame', 'UpdateLayoutTree',
  'Layout', 'PrePaint', 'Paint', 'Layerize']);
function rendererCpu(traceBuffer, origin) {
  const events = JSON.parse(traceBuffer.toString()).traceEvents;
  const main = new Set(events.filter((e) => e.ph === 'M' && e.name === 'thread_name' && e.args?.name === 'CrRendererMain')
    .map((e) => `${e.pid}:${e.tid}`));
  const xs = events.filter((e) => e.ph === 'X' && main.has(`${e.pid}:${e.tid}`)).sort((a, b) => a.ts - b.ts || b.dur - a.dur);
  let total = 0;
  let page = 0;
  let harness = 0;
  let coveredUntil = -1; // end of the last counted page-work event
  for (const e of xs) {
    const t = e.tdur ?? e.dur ?? 0;
    if (e.cat === 'toplevel') total += t;
    if (!PAGE_WORK.has(e.name) || e.ts < coveredUntil) continue;
    coveredUntil = e.ts + e.dur;
    if (e.name === 'FunctionCall' && !(e.args?.data?.url || '').startsWith(origin)) harness += t;
    else page += t;
  }
  const breakdown = {};
  if (process.env.BREAKDOWN) {
    for (const e of xs) {
      const fn = e.name === 'FunctionCall' ? `${e.args?.data?.functionName || '?'}@${(e.args?.data?.url || '').split('/').pop()}:${e.args?.data?.lineNumber ?? ''}` : '';
      const key = fn ? `FunctionCall ${fn}` : e.name;
      const b = (breakdown[key] ||= { ms: 0, n: 0 });
      b.ms += (e.tdur ?? e.dur ?? 0) / 1000;
      b.n += 1;
    }
  }
  return { total: total / 1000, page: page / 1000, harness: harness / 1000, breakdown };
}

const env = await setup({ webRoot: process.env.GROOVED_WEB_ROOT });
try {
  const { browser, server } = env;
  const sounds = ['kick', 'snare', 'hihat', 'clap', 'tom', 'rim', 'openhat', 'cowbell', 'bass', 'subbass', 'lead', 'pluck', 'chord', 'pad', 'zap', 'noise'];
  const tracks = sounds.map((sampleId, k) => ({
    id: `track-${k}`, name: sampleId, sampleId, volume: 1, muted: false, soloed: false, playbackMode: 'oneshot', transpose: 0,
    stepCount: STEPS, steps: Array.from({ length: 128 }, (_, i) => i < STEPS && (i + k) % 5 === 0),
    parameterLocks: Array(128).fill(null),
  }));
  const r = await fetch(`${server.url}/api/sessions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ state: { tracks, tempo: 120, swing: 0, version: 1 } }),
  });
  const { id, url } = await r.json();
  const rowSel = ':is(.row, .track)[data-track-id]';
  const send = await wsClient(server.port, `/api/sessions/${id}/ws`);
  // Waits in the page's own world (page.evaluate): Playwright's locators and
  // waitFor* inject its script, whose capture listeners on window would run
  // on every input event of the traced page.
  const until = async (page, fn, arg, ms = 10000) => {
    for (const end = Date.now() + ms; !(await page.evaluate(fn, arg));) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${fn}`);
      await new Promise((res) => setTimeout(res, 50));
    }
  };
  const open = async (instrument) => {
    const ctx = await browser.newContext(DESKTOP);
    if (instrument) await ctx.addInitScript(INSTRUMENT);
    const page = await ctx.newPage();
    await page.goto(`${server.url}${url}`);
    await until(page, () => document.querySelector('#status[data-state=connected]') !== null);
    const count = await page.evaluate((sel) => document.querySelectorAll(`${sel} .step`).length, rowSel);
    if (count !== TRACKS * STEPS) throw new Error(`expected ${TRACKS * STEPS} steps, found ${count}`);
    await page.waitForTimeout(1000);
    const boxes = await page.evaluate((sel) => [...document.querySelectorAll(sel)].flatMap((row) => [...row.querySelectorAll('.step')]
      .map((el) => el.getBoundingClientRect()).filter((rc) => rc.right < innerWidth && rc.bottom < innerHeight && rc.left > 0)
      .map((rc) => [rc.left + rc.width / 2, rc.top + rc.height / 2])), rowSel);
    return { ctx, page, boxes };
  };

  const remoteToggles = async () => {
    for (let k = 0; k < N; k++) {
      send(JSON.stringify({ type: 'toggle_step', trackId: `track-${k % TRACKS}`, step: (k * 7) % STEPS }));
      await new Promise((res) => setTimeout(res, GAP_MS));
    }
  };
  const clicks = async ({ page, boxes }) => {
    for (let k = 0; k < N; k++) {
      const [x, y] = boxes[(k * 13) % boxes.length];
      await page.mouse.click(x, y);
      await page.waitForTimeout(GAP_MS);
    }
  };
  const enters = async ({ page }) => {
    await page.evaluate(([sel, n]) => document.querySelectorAll(`${sel} .step`)[n].focus(), [rowSel, 3 * STEPS + 5]);
    for (let k = 0; k < N; k++) {
      await page.keyboard.press('Enter');
      await page.waitForTimeout(GAP_MS);
    }
  };

  // Traced runs (CPU time) on a page without instrumentation, then the
  // in-page handler times on an instrumented one; one page open at a time.
  const categories = ['toplevel', 'devtools.timeline'];
  let phaseNo = 0;
  const t = await open(false);
  const phase = async (run) => {
    await browser.startTracing(t.page, { categories });
    const t0 = Date.now();
    await run();
    const ms = Date.now() - t0;
    const buf = await browser.stopTracing();
    if (process.env.TRACE_DIR) (await import('node:fs')).writeFileSync(`${process.env.TRACE_DIR}/trace-${phaseNo++}.json`, buf);
    return { ...rendererCpu(buf, server.url), ms };
  };
  await t.page.mouse.move(5, 5);
  const idle = await phase(() => t.page.waitForTimeout(N * GAP_MS));
  const traced = { remote: await phase(remoteToggles), keyboard: await phase(() => enters(t)), mouse: await phase(() => clicks(t)) };
  await t.ctx.close();

  const h = await open(true);
  await remoteToggles();
  await h.page.waitForFunction((n) => window.__remote.length >= n, N, { timeout: 30000 });
  const remoteHandler = await h.page.evaluate(() => window.__remote.splice(0));
  await clicks(h);
  await h.page.waitForFunction((n) => window.__local.length >= n, N, { timeout: 30000 });
  const handler = { remote: remoteHandler, local: await h.page.evaluate(() => window.__local) };
  await h.ctx.close();
  const per = (p, key) => +((p[key] - (idle[key] * p.ms) / idle.ms) / N).toFixed(3);
  const row = (p) => ({ page_work: per(p, 'page'), renderer_main_thread: per(p, 'total'), harness_script: per(p, 'harness') });
  console.log(JSON.stringify({
    grid: `${TRACKS} tracks x ${STEPS} steps`, toggles: N, page: process.env.GROOVED_WEB_ROOT || 'web/',
    cpu_ms_per_toggle: { remote: row(traced.remote), local_keyboard: row(traced.keyboard), local_mouse: row(traced.mouse) },
    idle_cpu_ms_per_s: +((idle.total * 1000) / idle.ms).toFixed(3),
    handler_wall_ms: { remote: stats(handler.remote), local_mouse: stats(handler.local) },
  }, null, 2));
  if (process.env.BREAKDOWN) {
    for (const [kind, p] of Object.entries(traced)) {
      console.log(`-- ${kind}: inclusive thread time per toggle (ms), events per toggle; idle not subtracted`);
      for (const [k, b] of Object.entries(p.breakdown).sort((x, y) => y[1].ms - x[1].ms).slice(0, Number(process.env.BREAKDOWN) || 30)) {
        console.log(`${(b.ms / N).toFixed(3).padStart(8)} ${(b.n / N).toFixed(2).padStart(6)}  ${k}`);
      }
    }
  }
} finally {
  await env.close();
}
