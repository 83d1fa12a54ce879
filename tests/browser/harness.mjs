// Shared by the browser tests: the real grooved binary on 127.0.0.1 (an
// ephemeral port, a temporary data directory) and Debian's headless
// chromium driven by playwright-core (never a downloaded browser). Every
// wait is bounded; callers stop the server and the browser in after().
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.env.GROOVED_BIN || join(ROOT, 'build-test', 'grooved');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

export class Grooved {
  constructor(port, dataDir, extraArgs = []) {
    this.port = port; this.dataDir = dataDir; this.extraArgs = extraArgs; this.proc = null; this.log = '';
  }

  async start() {
    this.log = '';
    this.proc = spawn(BIN, ['--host', '127.0.0.1', '--port', String(this.port), '--data-dir', this.dataDir, ...this.extraArgs],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout.on('data', (d) => { this.log += d; });
    this.proc.stderr.on('data', (d) => { this.log += d; });
    const deadline = Date.now() + 15000;
    while (!/listening on/.test(this.log)) {
      if (Date.now() > deadline || this.proc.exitCode !== null) throw new Error(`grooved did not start:\n${this.log}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return this;
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGTERM');
    let timer;
    await Promise.race([exited, new Promise((r) => { timer = setTimeout(r, 15000); })]);
    clearTimeout(timer); // a pending timer would keep the test process alive
    if (this.proc.exitCode === null) this.proc.kill('SIGKILL');
  }

  get url() { return `http://127.0.0.1:${this.port}`; }
}

export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required'];

// Starts a server (optionally serving another copy of the page) and a
// browser; returns {server, browser, close()}.
export async function setup({ webRoot } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'grooved-browser-'));
  const server = await new Grooved(await freePort(), join(dataDir, 'data'), webRoot ? ['--web-root', webRoot] : []).start();
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  return {
    server,
    browser,
    async close() {
      pool.clear();
      await browser.close().catch(() => {});
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

// A server of a test's own, for tests that stop and start it while other
// tests run against the shared one. dispose() stops it and removes its data.
export async function privateServer() {
  const dataDir = mkdtempSync(join(tmpdir(), 'grooved-browser-own-'));
  const server = await new Grooved(await freePort(), join(dataDir, 'data')).start();
  server.dispose = async () => { await server.stop(); rmSync(dataDir, { recursive: true, force: true }); };
  return server;
}

export const DESKTOP = { viewport: { width: 1280, height: 760 } };
// Layout is in CSS pixels; screenshots.mjs renders phones at their real 2× density.
export const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, isMobile: true, hasTouch: true };

// Opens a page (its own browser context, so its storage is its own) and
// waits until it is connected. page.errors collects uncaught exceptions.
// page.closeAll() hands the page back: its storage is cleared and it is
// parked on about:blank (its socket closed), to be reused by the next
// openPage with the same options; a new context costs a new renderer
// process, several times the price of a navigation.
const pool = new Map(); // options (JSON) -> parked pages
export async function openPage(browser, url, options = DESKTOP) {
  const key = JSON.stringify(options);
  let page = pool.get(key)?.pop();
  if (!page || page.isClosed()) {
    const context = await browser.newContext(options);
    page = await context.newPage();
    page.on('pageerror', (e) => page.errors.push(e.message));
    const parked = page;
    parked.closeAll = async () => {
      try {
        await parked.evaluate(() => { localStorage.clear(); sessionStorage.clear(); });
        await parked.goto('about:blank');
      } catch {
        await context.close();
        return;
      }
      if (!pool.has(key)) pool.set(key, []);
      pool.get(key).push(parked);
    };
  }
  page.errors = [];
  await page.goto(url);
  await page.waitForSelector('#status[data-state=connected]', { timeout: 10000 });
  return page;
}

// The step button of track `row` (0-based) at `step`, and the track's head.
export const cell = (page, row, step) => page.locator('#grid .row').nth(row).locator(`.step[data-step="${step}"]`);
export const head = (page, row) => page.locator('#heads .head').nth(row);
export const sessionId = (page) => new URL(page.url()).pathname.split('/').pop();

export async function addTrack(page, sample) {
  const n = await page.locator('#grid .row').count();
  await page.selectOption('#sample', sample);
  await page.click('#add-track');
  await page.locator('#grid .row').nth(n).waitFor({ timeout: 2000 });
}

export async function restState(server, id) {
  return (await (await fetch(`${server.url}/api/sessions/${id}`)).json());
}

// Polls fn() until it returns a truthy value or `ms` pass; returns the last value.
export async function until(fn, ms = 3000, every = 50) {
  const deadline = Date.now() + ms;
  let v;
  do {
    v = await fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, every));
  } while (Date.now() < deadline);
  return v;
}

// A bare WebSocket client that only completes the upgrade and holds its
// player slot (the page's 10-player limit tests need nine of them).
export function holdSlot(server, id) {
  return new Promise((resolve, reject) => {
    const sock = connect(server.port, '127.0.0.1', () => {
      sock.write(`GET /api/sessions/${id}/ws HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nUpgrade: websocket\r\n`
        + 'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    });
    let head = '';
    const onData = (d) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n')) return;
      sock.off('data', onData);
      sock.on('data', () => {}); // keep reading so the server never blocks on us
      if (/^HTTP\/1\.1 101/.test(head)) resolve(sock);
      else { sock.destroy(); reject(new Error(head.split('\r\n')[0])); }
    };
    sock.on('data', onData);
    sock.on('error', reject);
  });
}
