// Browser tests of the web page: Debian's headless chromium driven by
// playwright-core against the real grooved binary on 127.0.0.1. Every wait
// is bounded; the server and the browser are always stopped.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.env.GROOVED_BIN || join(ROOT, 'build-test', 'grooved');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

class Grooved {
  constructor(port, dataDir) { this.port = port; this.dataDir = dataDir; this.proc = null; this.log = ''; }

  async start() {
    this.log = '';
    this.proc = spawn(BIN, ['--host', '127.0.0.1', '--port', String(this.port), '--data-dir', this.dataDir],
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
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15000))]);
    if (this.proc.exitCode === null) this.proc.kill('SIGKILL');
  }

  get url() { return `http://127.0.0.1:${this.port}`; }
}

let browser, server, dataDir;

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'grooved-browser-'));
  server = await new Grooved(await freePort(), join(dataDir, 'data')).start();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required'],
  });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

async function openPage(url) {
  const page = await browser.newPage({ viewport: { width: 1200, height: 700 } });
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  await page.goto(url);
  await page.waitForSelector('#status[data-state=connected]', { timeout: 10000 });
  return page;
}

const cell = (page, row, step) => page.locator('.track').nth(row).locator(`.step[data-step="${step}"]`);

async function addTrack(page, sample) {
  await page.selectOption('#sample', sample);
  await page.click('#add-track');
}

test('the front page creates a session and two pages see each other within a second', async () => {
  const a = await openPage(`${server.url}/`);
  assert.match(a.url(), /\/s\/[a-f0-9-]{36}$/);
  const b = await openPage(a.url());
  await addTrack(a, 'kick');
  await b.locator('.track').first().waitFor({ timeout: 1000 });
  await cell(a, 0, 4).click();
  await cell(b, 0, 4).and(b.locator('.on')).waitFor({ timeout: 1000 });
  await cell(b, 0, 9).click();
  await cell(a, 0, 9).and(a.locator('.on')).waitFor({ timeout: 1000 });
  await a.fill('#tempo', '133');
  await a.press('#tempo', 'Enter');
  await assert.doesNotReject(b.waitForFunction(() => document.querySelector('#tempo').value === '133', null, { timeout: 1000 }));
  // Both see each other in the player list.
  await b.waitForFunction(() => document.querySelectorAll('#players li').length === 2, null, { timeout: 1000 });
  assert.deepEqual(a.errors, []);
  assert.deepEqual(b.errors, []);
  await a.close();
  await b.close();
});

test('a parameter lock, transpose and playback mode set on one page reach the other and are stored', async () => {
  const a = await openPage(`${server.url}/`);
  const b = await openPage(a.url());
  await addTrack(a, 'lead');
  await cell(a, 0, 2).click();
  await cell(a, 0, 2).click({ modifiers: ['Shift'] });
  await a.fill('#lock-editor [name=pitch]', '7');
  await a.click('#lock-editor [name=set]');
  await cell(b, 0, 2).and(b.locator('.locked')).waitFor({ timeout: 1000 });
  await a.locator('.track').first().locator('.transpose').fill('-5');
  await a.locator('.track').first().locator('.transpose').press('Enter');
  await a.locator('.track').first().locator('.mode').click();
  await b.waitForFunction(() => document.querySelector('.track .transpose')?.value === '-5'
    && document.querySelector('.track .mode')?.textContent === 'Gate', null, { timeout: 1000 });
  const id = a.url().split('/').pop();
  const t = (await (await fetch(`${server.url}/api/sessions/${id}`)).json()).state.tracks[0];
  assert.deepEqual(t.parameterLocks[2], { pitch: 7, volume: 1 });
  assert.equal(t.transpose, -5);
  assert.equal(t.playbackMode, 'gate');
  assert.equal(t.steps[2], true, 'shift-click edits the lock without toggling the step');
  assert.deepEqual(a.errors, []);
  assert.deepEqual(b.errors, []);
  await a.close();
  await b.close();
});

test('after a server restart a reload shows the same grid', async () => {
  const a = await openPage(`${server.url}/`);
  await addTrack(a, 'snare');
  for (const s of [0, 3, 6]) await cell(a, 0, s).click();
  await a.waitForFunction(() => document.querySelectorAll('.step.on').length === 3);
  const url = a.url();
  // Let the last click's commit land: its echo arrives only after the fsync.
  await a.waitForTimeout(300);
  await server.stop();
  await server.start();
  await a.goto(url);
  await a.waitForSelector('#status[data-state=connected]', { timeout: 10000 });
  const on = await a.$$eval('.step.on', (els) => els.map((e) => Number(e.dataset.step)));
  assert.deepEqual(on, [0, 3, 6]);
  await a.close();
});

test('a published session cannot be edited, and can be remixed', async () => {
  const a = await openPage(`${server.url}/`);
  await addTrack(a, 'clap');
  await cell(a, 0, 2).click();
  await a.waitForTimeout(200);
  const source = a.url().split('/').pop();
  await a.click('#publish');
  await a.waitForURL((u) => !u.pathname.endsWith(source), { timeout: 5000 });
  await a.waitForSelector('#status[data-state=connected]', { timeout: 10000 });
  assert.equal(await a.isVisible('#banner'), true);
  assert.equal(await cell(a, 0, 2).getAttribute('aria-pressed'), 'true');
  assert.equal(await cell(a, 0, 5).isDisabled(), true);
  assert.equal(await a.isDisabled('#add-track'), true);
  await cell(a, 0, 5).click({ force: true });
  await a.waitForTimeout(300);
  const published = a.url().split('/').pop();
  const rec = await (await fetch(`${server.url}/api/sessions/${published}`)).json();
  assert.equal(rec.immutable, true);
  assert.equal(rec.state.tracks[0].steps[5], false, 'the click must not change a published session');
  await a.click('#remix');
  await a.waitForURL((u) => !u.pathname.endsWith(published), { timeout: 5000 });
  await a.waitForSelector('#status[data-state=connected]', { timeout: 10000 });
  assert.equal(await cell(a, 0, 5).isDisabled(), false);
  await a.close();
});

test('the page reconnects by itself when the server comes back', async () => {
  const a = await openPage(`${server.url}/`);
  await addTrack(a, 'hihat');
  await server.stop();
  await a.waitForSelector('#status[data-state=reconnecting]', { timeout: 5000 });
  assert.equal(await cell(a, 0, 1).isDisabled(), true, 'no edits while disconnected');
  await new Promise((r) => setTimeout(r, 1500));
  await server.start();
  await a.waitForSelector('#status[data-state=connected]', { timeout: 20000 });
  await cell(a, 0, 1).click();
  const id = a.url().split('/').pop();
  const deadline = Date.now() + 2000;
  let steps;
  do {
    steps = (await (await fetch(`${server.url}/api/sessions/${id}`)).json()).state.tracks[0].steps;
  } while (!steps[1] && Date.now() < deadline);
  assert.equal(steps[1], true);
  assert.deepEqual(a.errors, []);
  await a.close();
});
