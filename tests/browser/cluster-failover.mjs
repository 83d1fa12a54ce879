// The web page through HAProxy when the node serving its session dies: a
// 3-node cluster (scripts/cluster: PostgreSQL primary + synchronous standby,
// Redis, three grooved nodes, HAProxy), two pages of the project's own page
// on one session through the balancer's URL; the node the session hashes to
// is killed with SIGKILL; both pages must reconnect by themselves (no
// reload, no click) to the node that takes the session over, and keep
// editing: each sees the other's later toggles, and every toggle the other
// page had seen before the kill (so committed: nothing is broadcast before
// it is durable) is still in the session.
//
// Not a *.test.mjs file: it needs root (PostgreSQL runs as the postgres
// user via runuser), PostgreSQL, Redis and HAProxy, and a cluster takes a
// while to start, so it is its own ctest (browser_cluster_failover), kept
// out of browser_e2e's `node --test tests/browser/`. Run it alone with
//   GROOVED_BIN=build-test/grooved node --test tests/browser/cluster-failover.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, chmodSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { ROOT, CHROMIUM_ARGS, openPage, cell, until } from './harness.mjs';

const CLUSTER = join(ROOT, 'scripts', 'cluster');
const BIN = process.env.GROOVED_BIN || join(ROOT, 'build-test', 'grooved');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

function cluster(...args) {
  return new Promise((resolve, reject) => {
    execFile(CLUSTER, args, { timeout: 240000, env: { ...process.env, GROOVED_BIN: BIN } },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`scripts/cluster ${args.join(' ')} failed (${err.code ?? err.signal}):\n${stdout}${stderr}`));
        else resolve(stdout);
      });
  });
}

let dir = null;
let up = false;
let browser = null;
let st = null; // cluster.json

before(async () => {
  // Under /tmp and traversable: the postgres user must reach DIR/pg.
  dir = mkdtempSync(join(tmpdir(), 'grooved-browser-cluster-'));
  chmodSync(dir, 0o755);
  up = true; // `down` also stops what a failed `up` left
  await cluster('up', dir, '--nodes', '3');
  st = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8'));
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close().catch(() => {});
  if (up) await cluster('down', dir).catch((e) => console.error(e.message));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const TRACKS = 2;
const isOn = (page, row, step) => cell(page, row, step).evaluate((b) => b.classList.contains('on'));

// The connection states a page goes through (#status's data-state), from now on.
function watchStates(page) {
  return page.evaluate(() => {
    const el = document.querySelector('#status');
    window.__states = [el.dataset.state];
    window.__at = [Date.now()];
    new MutationObserver(() => {
      const s = el.dataset.state;
      if (window.__states[window.__states.length - 1] !== s) { window.__states.push(s); window.__at.push(Date.now()); }
    }).observe(el, { attributes: true, attributeFilter: ['data-state'] });
  });
}
// null once the page has been reloaded (a new document has no record; while
// it navigates, evaluate fails).
const states = (page) => page.evaluate(() => window.__states ?? null).catch(() => null);

// `page` toggles (row, step) on; `other` must show it within `ms`.
async function toggleSeen(page, other, row, step, ms = 10000) {
  assert.equal(await isOn(page, row, step), false, `row ${row} step ${step} starts off`);
  await cell(page, row, step).click();
  await cell(other, row, step).and(other.locator('.on')).waitFor({ timeout: ms });
}

async function session(id) {
  const r = await fetch(`${st.url}/api/sessions/${id}`, { cache: 'no-store' });
  assert.equal(r.status, 200);
  return { node: r.headers.get('x-grooved-node'), rec: await r.json() };
}

test('two pages on a session reconnect through HAProxy when its node is killed, and keep editing', { timeout: 180000 }, async () => {
  const tracks = Array.from({ length: TRACKS }, (_, k) => ({ id: `t${k}`, name: `T${k}`, sampleId: k ? 'hihat' : 'kick', steps: [] }));
  const r = await fetch(`${st.url}/api/sessions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ state: { tracks } }),
  });
  assert.equal(r.status, 201);
  const { id } = await r.json();
  const url = `${st.url}/s/${id}`;
  const a = await openPage(browser, url);
  const b = await openPage(browser, url);
  assert.equal(await a.locator('#grid .row').count(), TRACKS);

  // Before the kill: each page's toggles reach the other (page a edits row 0, b row 1).
  const on = [new Set(), new Set()]; // row -> steps turned on, all acknowledged
  for (const step of [0, 4]) { await toggleSeen(a, b, 0, step); on[0].add(step); }
  for (const step of [2, 6]) { await toggleSeen(b, a, 1, step); on[1].add(step); }

  const { node: victim, rec: before } = await session(id);
  assert.ok(victim, 'the balancer names the node that answered (X-Grooved-Node)');
  for (const row of [0, 1]) for (const step of on[row]) assert.equal(before.state.tracks[row].steps[step], true);
  const node = st.nodes.find((n) => n.id === victim);
  assert.ok(node, `${victim} is one of the cluster's nodes`);

  await watchStates(a);
  await watchStates(b);
  process.kill(node.pid, 'SIGKILL');
  const killedAt = Date.now();

  // Both pages notice (their sockets were on that node), reconnect by
  // themselves, and end connected again: bounded, generously.
  const back = async (page) => {
    const ok = await until(async () => {
      const s = await states(page);
      return s && s.includes('reconnecting') && s[s.length - 1] === 'connected';
    }, 30000, 50);
    const seen = await states(page);
    assert.ok(ok, `page reconnected within 30 s; its states: ${JSON.stringify(seen)} (null: it was reloaded)`);
    // Only a reconnect: never taken for a full session, nor given up.
    assert.deepEqual(seen.filter((s) => s === 'full' || s === 'offline'), [], `states: ${JSON.stringify(seen)}`);
    // When the page itself went connected (its clock: the same machine's).
    return (await page.evaluate(() => window.__at[window.__at.length - 1])) - killedAt;
  };
  const [connA, connB] = await Promise.all([back(a), back(b)]);

  // Editing again: each page's new toggles reach the other.
  await Promise.all([
    (async () => { for (const step of [8, 12]) { await toggleSeen(a, b, 0, step, 15000); on[0].add(step); } })(),
    (async () => { for (const step of [10, 14]) { await toggleSeen(b, a, 1, step, 15000); on[1].add(step); } })(),
  ]);
  const editingAt = Date.now() - killedAt;
  console.log(`kill -9 ${victim} -> both pages connected again in ${(Math.max(connA, connB) / 1000).toFixed(2)} s `
    + `(a ${(connA / 1000).toFixed(2)} s, b ${(connB / 1000).toFixed(2)} s); both editing again, each seeing `
    + `the other's new toggles, ${(editingAt / 1000).toFixed(2)} s after the kill`);

  // The session, read through the balancer from the node that has it now:
  // every toggle acknowledged before the kill and after it, nothing else.
  const { node: now, rec: after } = await session(id);
  assert.notEqual(now, victim, 'another node serves the session');
  for (const row of [0, 1]) {
    const want = Array.from({ length: 16 }, (_, s) => on[row].has(s));
    assert.deepEqual(after.state.tracks[row].steps.slice(0, 16).map(Boolean), want, `row ${row} in the stored session`);
    for (const page of [a, b]) {
      const shown = await page.locator('#grid .row').nth(row).locator('.step.on').evaluateAll((els) => els.map((e) => Number(e.dataset.step)));
      assert.deepEqual(shown.sort((x, y) => x - y), [...on[row]].sort((x, y) => x - y), `row ${row} on each page`);
    }
  }
  // Reconnected without a reload: the pages are still the documents they were.
  for (const page of [a, b]) assert.equal((await states(page))?.[0], 'connected', 'the same document as before the kill');
  assert.deepEqual(a.errors, []);
  assert.deepEqual(b.errors, []);
  await a.closeAll();
  await b.closeAll();
});
