// Benchmark (not a test): main-thread time of a remote and of a local step
// toggle on the web page at 16 tracks × 64 steps.
//   node tests/browser/render-bench.mjs [toggles=200]
// GROOVED_WEB_ROOT=<dir> measures another copy of the page (e.g. an older
// commit's web/ exported into a directory).
//
// One page is measured. Remote toggles come from a bare WebSocket client in
// this process (so no other renderer is running); local toggles are Enter
// on a focused step and real mouse clicks: onto another step each time
// (the pointer moves there, then clicks), and, apart, with the pointer
// already resting on the step. Figures per kind:
//   page_work: CPU time of the page's renderer main thread (Chromium trace,
//     thread time, not wall time, so other load on the machine inflates it
//     less) spent in the page's own script, style, layout, paint and
//     layerization during the toggles, minus an idle stretch of the same
//     length, divided by the toggles. page_work_median: the median of the
//     toggles' bursts of page work (a burst is page work with no gap of
//     more than 25 ms; the toggles come 40 ms apart), so the odd garbage
//     collection does not count.
//   renderer_main_thread: all of that thread's top-level tasks, Chromium's
//     own handling of the input event or message (IPC, hit tests, dispatch)
//     included.
//   harness_script: script run on that thread from outside the page's
//     origin (Playwright's injected listeners; 0 when nothing injected it).
//   handler_wall_ms: wall time from the event's arrival (the WebSocket
//     message, or the click's capture phase) to the end of the page's
//     handling plus a forced style recalculation and layout (median, p95,
//     max), on a second, instrumented page opened after the first closes:
//     the traced page carries no instrumentation, and its waits run in the
//     page's world so Playwright's injected script never loads there.
// BREAKDOWN=N prints the N largest trace events per kind; TRACE_DIR=dir
// keeps the traces.
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
const BURST_GAP_US = 25000;
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
  // Bursts: page work separated by more than BURST_GAP_US of none. The
  // toggles come GAP_MS apart and each one's work (the event, the frame
  // that shows it, the echo) ends well within that, so a burst is a toggle,
  // and the median burst is a toggle's cost with the odd garbage
  // collection or other spike left out.
  const bursts = [];
  const dispatched = []; // [ts, type] of input events, to tell bursts apart
  let burstEnd = -Infinity;
  for (const e of xs) {
    const t = e.tdur ?? e.dur ?? 0;
    if (e.cat === 'toplevel') total += t;
    if (e.name === 'EventDispatch') dispatched.push([e.ts, e.args?.data?.type]);
    if (!PAGE_WORK.has(e.name) || e.ts < coveredUntil) continue;
    coveredUntil = e.ts + e.dur;
    if (e.name === 'FunctionCall' && !(e.args?.data?.url || '').startsWith(origin)) { harness += t; continue; }
    page += t;
    if (e.ts - burstEnd > BURST_GAP_US) bursts.push({ start: e.ts, ms: 0, types: new Set() });
    bursts[bursts.length - 1].ms += t / 1000;
    burstEnd = Math.max(burstEnd, e.ts + e.dur);
  }
  for (const [ts, type] of dispatched) {
    const b = bursts.findLast((x) => x.start <= ts + BURST_GAP_US);
    if (b) b.types.add(type);
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
  return { total: total / 1000, page: page / 1000, harness: harness / 1000, bursts, breakdown };
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
  // Moves onto a step and clicks it; `still`: moves there, waits, then
  // clicks where the pointer already is.
  const clicks = async ({ page, boxes }, still = false) => {
    for (let k = 0; k < N; k++) {
      const [x, y] = boxes[(k * 13) % boxes.length];
      if (still) {
        await page.mouse.move(x, y);
        await page.waitForTimeout(GAP_MS * 2);
      }
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
  const traced = {
    remote: await phase(remoteToggles),
    keyboard: await phase(() => enters(t)),
    mouse: await phase(() => clicks(t)),
    still: await phase(() => clicks(t, true)),
  };
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
  const median = (xs) => { const v = [...xs].sort((x, y) => x - y); return v.length ? v[Math.floor(v.length / 2)] : NaN; };
  const row = (p) => ({
    page_work: per(p, 'page'),
    page_work_median: +median(p.bursts.map((b) => b.ms)).toFixed(3),
    bursts: p.bursts.length,
    renderer_main_thread: per(p, 'total'),
    harness_script: per(p, 'harness'),
  });
  // The click and the move before it, apart: bursts with a click, bursts
  // with a pointer move and no click (each one's mean over its bursts, and
  // median).
  const split = (p, want) => {
    const ms = p.bursts.filter((b) => want(b.types)).map((b) => b.ms);
    return { page_work: +(ms.reduce((x, y) => x + y, 0) / ms.length).toFixed(3), page_work_median: +median(ms).toFixed(3), bursts: ms.length };
  };
  console.log(JSON.stringify({
    grid: `${TRACKS} tracks x ${STEPS} steps`, toggles: N, page: process.env.GROOVED_WEB_ROOT || 'web/',
    cpu_ms_per_toggle: {
      remote: row(traced.remote),
      local_keyboard: row(traced.keyboard),
      local_mouse: row(traced.mouse),
      local_mouse_pointer_still: split(traced.still, (t) => t.has('click')),
    },
    // Everything of the still run that is not the click: the hover change
    // and the pointer's broadcast 50 ms later (its own burst), idle removed.
    cpu_ms_per_pointer_move_onto_a_step: {
      page_work: +(per(traced.still, 'page') - split(traced.still, (t) => t.has('click')).page_work).toFixed(3),
    },
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
