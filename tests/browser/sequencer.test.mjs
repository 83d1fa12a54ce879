// Browser tests of the web page: Debian's headless chromium driven by
// playwright-core against the real grooved binary on 127.0.0.1. Every wait
// is bounded; the server and the browser are always stopped.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, openPage as open, cell, head, addTrack, sessionId, restState } from './harness.mjs';

let env, browser, server;

before(async () => {
  env = await setup();
  ({ browser, server } = env);
});

after(async () => { await env?.close(); });

const openPage = (url) => open(browser, url);

test('the front page creates a session and two pages see each other within a second', async () => {
  const a = await openPage(`${server.url}/`);
  assert.match(a.url(), /\/s\/[a-f0-9-]{36}$/);
  const b = await openPage(a.url());
  await addTrack(a, 'kick');
  await b.locator('#grid .row').first().waitFor({ timeout: 1000 });
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
  await a.closeAll();
  await b.closeAll();
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
  await head(a, 0).locator('.transpose').fill('-5');
  await head(a, 0).locator('.transpose').press('Enter');
  await head(a, 0).locator('.mode').click();
  await b.waitForFunction(() => document.querySelector('.head .transpose')?.value === '-5'
    && document.querySelector('.head .mode')?.textContent === 'Gate', null, { timeout: 1000 });
  const id = sessionId(a);
  const t = (await (await fetch(`${server.url}/api/sessions/${id}`)).json()).state.tracks[0];
  assert.deepEqual(t.parameterLocks[2], { pitch: 7, volume: 1 });
  assert.equal(t.transpose, -5);
  assert.equal(t.playbackMode, 'gate');
  assert.equal(t.steps[2], true, 'shift-click edits the lock without toggling the step');
  assert.deepEqual(a.errors, []);
  assert.deepEqual(b.errors, []);
  await a.closeAll();
  await b.closeAll();
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
  await a.closeAll();
});

test('a published session cannot be edited, and can be remixed', async () => {
  const a = await openPage(`${server.url}/`);
  await addTrack(a, 'clap');
  await cell(a, 0, 2).click();
  await a.waitForTimeout(200);
  const source = sessionId(a);
  await a.click('#publish');
  await a.click('#publish-confirm');
  const link = await a.locator('#share-url').inputValue({ timeout: 5000 });
  assert.match(link, /\/s\/[a-f0-9-]{36}$/);
  assert.equal(sessionId(a), source, 'publishing keeps you on your session');
  await a.goto(link);
  await a.waitForSelector('#status[data-state=connected]', { timeout: 10000 });
  assert.equal(await a.isVisible('#banner'), true);
  assert.equal(await cell(a, 0, 2).getAttribute('aria-pressed'), 'true');
  assert.equal(await cell(a, 0, 5).isDisabled(), true);
  assert.equal(await a.isDisabled('#add-track'), true);
  await cell(a, 0, 5).click({ force: true });
  await a.waitForTimeout(300);
  const published = sessionId(a);
  const rec = await restState(server, published);
  assert.equal(rec.immutable, true);
  assert.equal(rec.state.tracks[0].steps[5], false, 'the click must not change a published session');
  await a.click('#remix');
  await a.waitForURL((u) => !u.pathname.endsWith(published), { timeout: 5000 });
  await a.waitForSelector('#status[data-state=connected]', { timeout: 10000 });
  assert.equal(await cell(a, 0, 5).isDisabled(), false);
  await a.closeAll();
});

test('the page reconnects by itself when the server comes back', async () => {
  const a = await openPage(`${server.url}/`);
  await addTrack(a, 'hihat');
  await server.stop();
  await a.waitForSelector('#status[data-state=reconnecting]', { timeout: 5000 });
  // An edit made while disconnected is kept, said to be waiting, and sent on reconnect.
  await cell(a, 0, 1).click();
  await a.waitForFunction(() => /1 edit waiting/.test(document.querySelector('#status').textContent), null, { timeout: 2000 });
  await new Promise((r) => setTimeout(r, 1500));
  await server.start();
  await a.waitForSelector('#status[data-state=connected]', { timeout: 20000 });
  const id = sessionId(a);
  const deadline = Date.now() + 2000;
  let steps;
  do {
    steps = (await (await fetch(`${server.url}/api/sessions/${id}`)).json()).state.tracks[0].steps;
  } while (!steps[1] && Date.now() < deadline);
  assert.equal(steps[1], true);
  assert.deepEqual(a.errors, []);
  await a.closeAll();
});
