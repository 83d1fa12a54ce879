// Screenshots of the web page for a human eye (not a test): a demo session
// on the desktop and on a phone, the lock editor, the pitch view, the
// effects panel, the publish dialog, a full session and a reconnect.
//   node tests/browser/screenshots.mjs [out-dir]   (default /work/shots-web)
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setup, openPage, cell, head, addTrack, holdSlot, sessionId, DESKTOP, PHONE } from './harness.mjs';

const out = process.argv[2] || '/work/shots-web';
mkdirSync(out, { recursive: true });
const env = await setup();
const shot = (page, name, opts = {}) => page.screenshot({ path: join(out, `${name}.png`), ...opts });

try {
  const { browser, server } = env;
  const a = await openPage(browser, `${server.url}/`, { viewport: { width: 1366, height: 820 } });
  await a.fill('#name', 'Friday night groove');
  await a.press('#name', 'Enter');
  const beat = {
    kick: [0, 4, 8, 12], snare: [4, 12], hihat: [0, 2, 4, 6, 8, 10, 12, 14], clap: [12, 15],
    'synth:funkbass': [0, 3, 6, 10], 'synth:rhodes': [0, 6, 8, 14], 'synth:strings': [0], 'tone:fm-bell': [2, 10],
  };
  for (const [s, steps] of Object.entries(beat)) {
    await addTrack(a, s);
    const row = (await a.locator('#grid .row').count()) - 1;
    for (const i of steps) await cell(a, row, i).click();
  }
  await head(a, 1).locator('.count').selectOption('32');
  for (const i of [20, 28]) await cell(a, 1, i).click();
  // A melody on the Rhodes through the pitch view.
  await head(a, 5).locator('.pitch').click();
  const roll = a.locator('.roll').nth(5);
  for (const [i, p] of [[0, 0], [6, 3], [8, 7], [14, 5]]) await roll.locator(`.rrow[data-pitch="${p}"] .rc[data-step="${i}"]`).click();
  await head(a, 5).locator('.pitch').click();
  await cell(a, 4, 3).click({ modifiers: ['Shift'] });
  await a.fill('#lock-editor [name=pitch]', '-5');
  await a.click('#lock-editor [name=set]');
  const b = await openPage(browser, a.url(), DESKTOP);
  const box = await cell(b, 2, 6).boundingBox();
  await b.mouse.move(box.x + 10, box.y + 10);
  await b.mouse.move(box.x + 14, box.y + 14);
  await a.waitForTimeout(400);
  await shot(a, 'desktop');

  await head(a, 5).locator('.pitch').click();
  await head(a, 7).locator('.more').click();
  await cell(a, 0, 10).click({ modifiers: ['Shift'] });
  await a.waitForTimeout(200);
  await shot(a, 'desktop-lock-editor-and-pitch-view', { fullPage: true });
  await a.keyboard.press('Escape');
  await head(a, 5).locator('.pitch').click();
  await head(a, 7).locator('.more').click();

  await a.click('#fx-toggle');
  await a.locator('[name=reverb-wet]').fill('0.35');
  await a.locator('[name=reverb-wet]').dispatchEvent('change');
  await a.locator('[name=delay-wet]').fill('0.2');
  await a.locator('[name=delay-wet]').dispatchEvent('change');
  await shot(a, 'desktop-effects');
  await a.keyboard.press('Escape');

  await a.click('#publish');
  await shot(a, 'publish-confirm');
  await a.click('#publish-confirm');
  await a.locator('#share-url').waitFor();
  await a.click('#copy-url');
  await a.waitForTimeout(200);
  await shot(a, 'publish-dialog');
  await a.keyboard.press('Escape');

  const p = await openPage(browser, a.url(), { ...PHONE, deviceScaleFactor: 2 });
  await p.waitForTimeout(300);
  await shot(p, 'phone');
  await head(p, 4).locator('.more').tap();
  await shot(p, 'phone-track-controls', { fullPage: true });
  await head(p, 4).locator('.more').tap();
  await head(p, 5).locator('.pitch').tap();
  await p.locator('.roll').nth(5).scrollIntoViewIfNeeded();
  await shot(p, 'phone-pitch-view');
  await head(p, 5).locator('.pitch').tap();
  await cell(p, 0, 2).click({ modifiers: ['Shift'] });
  await shot(p, 'phone-lock-editor');

  // A full session, seen by an eleventh player.
  const id = sessionId(a);
  const slots = [];
  for (let i = 0; i < 7; i++) slots.push(await holdSlot(server, id));
  const ctx = await browser.newContext(DESKTOP);
  const full = await ctx.newPage();
  await full.goto(`${server.url}/s/${id}`);
  await full.waitForSelector('#status[data-state=full]', { timeout: 10000 });
  await shot(full, 'session-full');
  for (const s of slots) s.destroy();
  await ctx.close();
  await p.closeAll();
  await b.closeAll();

  // Reconnecting, with an edit waiting.
  await server.stop();
  await a.waitForSelector('#status[data-state=reconnecting]', { timeout: 5000 });
  await cell(a, 0, 14).click();
  await a.waitForTimeout(300);
  await shot(a, 'reconnecting', { clip: { x: 0, y: 0, width: 1366, height: 200 } });
  await server.start();
  console.log(`screenshots in ${out}`);
} finally {
  await env.close();
}
