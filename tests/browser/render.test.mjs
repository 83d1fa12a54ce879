// Rendering: a state change touches only what changed, never rebuilds the
// grid, and never overwrites a control someone is typing in or dragging;
// a remote edit to that control shows once the local gesture ends. Two
// pages edit the same controls at the same time.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, openPage, cell, head, addTrack, sessionId, restState, until, DESKTOP } from './harness.mjs';

let env;
before(async () => { env = await setup(); });
after(async () => { await env?.close(); });

// Records every DOM mutation under #board (and #heads) from now on.
async function watch(page) {
  await page.evaluate(() => {
    window.__mut = [];
    for (const el of document.querySelectorAll('.step')) el.__mark = true;
    const obs = new MutationObserver((list) => {
      for (const m of list) {
        const el = m.target.nodeType === 1 ? m.target : m.target.parentElement;
        if (el.closest('#cursors')) continue; // other players' pointers move
        window.__mut.push({
          type: m.type, attr: m.attributeName, step: m.target.dataset?.step ?? null,
          cls: m.target.className || m.target.nodeName, added: m.addedNodes.length, removed: m.removedNodes.length,
        });
      }
    });
    obs.observe(document.getElementById('board'), { subtree: true, childList: true, attributes: true, characterData: true });
    window.__obs = obs;
  });
}
const mutations = (page) => page.evaluate(() => { window.__obs.takeRecords(); return window.__mut; });
const unmarked = (page) => page.evaluate(() => [...document.querySelectorAll('.step')].filter((el) => !el.__mark).length);

// The tests are independent (own sessions; a test that restarts a server
// has its own), so they run at once: they mostly wait.
describe('rendering', { concurrency: true }, () => {
  test('a remote toggle and a local toggle change one cell; the grid is never rebuilt and focus stays', async () => {
    const { browser, server } = env;
    const a = await openPage(browser, `${server.url}/`);
    const b = await openPage(browser, a.url());
    for (const s of ['kick', 'snare', 'synth:lead']) await addTrack(a, s);
    await head(a, 1).locator('.count').selectOption('64');
    await b.waitForFunction(() => document.querySelectorAll('#grid .row')[1]?.querySelectorAll('.step').length === 64, null, { timeout: 3000 });

    // Remote: a's click reaches b as one cell's class and aria-pressed.
    await watch(b);
    await b.locator('#tempo').focus(); // b is in the middle of something
    await cell(a, 1, 37).click();
    await cell(b, 1, 37).and(b.locator('.on')).waitFor({ timeout: 2000 });
    let muts = await mutations(b);
    assert.deepEqual(muts.filter((m) => m.type === 'childList'), [], 'no element added or removed');
    assert.deepEqual([...new Set(muts.map((m) => m.step))], ['37'], 'only step 37 changed');
    assert.equal(await unmarked(b), 0, 'every step element is the one that was there before');
    assert.equal(await b.evaluate(() => document.activeElement.id), 'tempo', 'b kept its focus');

    // Local, from the keyboard: the toggled step keeps focus.
    await watch(a);
    await cell(a, 2, 5).focus();
    await a.keyboard.press('Enter');
    assert.equal(await cell(a, 2, 5).getAttribute('aria-pressed'), 'true');
    assert.equal(await a.evaluate(() => document.activeElement.dataset.step), '5', 'focus stays on the toggled step');
    muts = await mutations(a);
    assert.deepEqual(muts.filter((m) => m.type === 'childList'), []);
    assert.ok(muts.every((m) => m.step === '5' || m.attr === 'tabindex'), JSON.stringify(muts));
    assert.equal(await unmarked(a), 0);
    assert.deepEqual([...a.errors, ...b.errors], []);
    await a.closeAll();
    await b.closeAll();
  });

  test('pressing a step with the mouse recomputes no style: nothing on a step depends on :active', async () => {
    const { browser, server } = env;
    const a = await openPage(browser, `${server.url}/`);
    await addTrack(a, 'kick');
    const cdp = await a.context().newCDPSession(a);
    await cdp.send('Performance.enable');
    const recalcs = async () => (await cdp.send('Performance.getMetrics')).metrics.find((m) => m.name === 'RecalcStyleCount').value;
    const frames = () => a.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    // The pointer rests on the step (its hover change is done), then only the
    // press is watched. The least of three presses, so an unrelated style
    // change on the page (a status update) cannot fail the test.
    const box = await cell(a, 0, 3).boundingBox();
    const perPress = [];
    for (let k = 0; k < 3; k++) {
      await a.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await frames();
      const before = await recalcs();
      await a.mouse.down();
      await frames();
      perPress.push((await recalcs()) - before);
      await a.mouse.up();
      await frames();
      await a.mouse.move(box.x + box.width / 2, box.y - 40);
    }
    assert.equal(Math.min(...perPress), 0, `style recalculations per press: ${perPress}`);
    // The press still toggled nothing by itself; the clicks (press + release) did.
    assert.equal(await cell(a, 0, 3).getAttribute('aria-pressed'), 'true', 'three clicks leave the step on');
    await cdp.detach();
    assert.deepEqual(a.errors, []);
    await a.closeAll();
  });

  test('two pages editing the same controls at once: nobody\'s gesture is cut off, and both end on the server\'s value', async () => {
    const { browser, server } = env;
    const a = await openPage(browser, `${server.url}/`);
    const b = await openPage(browser, a.url());
    await addTrack(a, 'bass');
    const id = sessionId(a);
    const volA = head(a, 0).locator('.vol');
    const volB = head(b, 0).locator('.vol');
    await volB.waitFor();

    // a drags the volume slider while b sets it to 0.3.
    const box = await volA.boundingBox();
    await a.mouse.move(box.x + box.width * 0.9, box.y + box.height / 2);
    await a.mouse.down();
    await a.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2, { steps: 4 });
    const dragged = await volA.inputValue();
    await volB.fill('0.3');
    await volB.dispatchEvent('change');
    await until(async () => (await restState(server, id)).state.tracks[0].volume === 0.3);
    await a.waitForTimeout(300); // b's broadcast has reached a by now
    assert.equal(await volA.inputValue(), dragged, 'the remote value does not move a slider being dragged');
    assert.equal(await volA.getAttribute('data-stale'), '1', 'it is marked as having a newer value waiting');
    await a.mouse.up();
    // a's release commits a's value; both pages and the server agree on it.
    const final = Number(dragged);
    await until(async () => (await restState(server, id)).state.tracks[0].volume === final);
    await b.waitForFunction((v) => Number(document.querySelector('.head .vol').value) === v, final, { timeout: 3000 });
    assert.equal(Number(await volA.inputValue()), final);

    // a presses on the swing slider and lets go without moving: b's value,
    // which arrived meanwhile, shows after the release.
    const swing = await a.locator('#swing').boundingBox();
    await a.mouse.move(swing.x + swing.width * 0.05, swing.y + swing.height / 2);
    await a.mouse.down();
    const held = await a.locator('#swing').inputValue();
    await b.locator('#swing').fill('40');
    await b.locator('#swing').dispatchEvent('change');
    await until(async () => (await restState(server, id)).state.swing === 40);
    await a.waitForTimeout(300);
    assert.equal(await a.locator('#swing').inputValue(), held);
    await a.mouse.up();
    await a.waitForFunction(() => document.querySelector('#swing').value === '40', null, { timeout: 2000 });

    // a is typing a transpose; b's edit does not erase it; Escape shows b's.
    const trA = head(a, 0).locator('.transpose');
    await trA.fill('-1');
    await head(b, 0).locator('.transpose').fill('7');
    await head(b, 0).locator('.transpose').press('Enter');
    await until(async () => (await restState(server, id)).state.tracks[0].transpose === 7);
    await a.waitForTimeout(300);
    assert.equal(await trA.inputValue(), '-1', 'a half-typed transpose survives a remote edit');
    await trA.press('Escape');
    assert.equal(await trA.inputValue(), '7');

    // Both type a session name; each keeps what they typed until they commit.
    await a.locator('#name').fill('My be');
    await b.locator('#name').fill('Other');
    await b.locator('#name').press('Enter');
    await until(async () => (await restState(server, id)).name === 'Other');
    await a.waitForTimeout(300);
    assert.equal(await a.locator('#name').inputValue(), 'My be', 'the name being typed is not blanked');
    await a.locator('#name').pressSequentially('at');
    await a.locator('#name').press('Enter');
    await until(async () => (await restState(server, id)).name === 'My beat');
    await b.waitForFunction(() => document.querySelector('#name').value === 'My beat', null, { timeout: 3000 });

    assert.deepEqual([...a.errors, ...b.errors], []);
    await a.closeAll();
    await b.closeAll();
  });

  test('edits of the same step and the same control crossing in flight end on the server\'s value on both pages', async () => {
    const { browser, server } = env;
    const a = await openPage(browser, `${server.url}/`);
    await addTrack(a, 'rim');
    const id = sessionId(a);
    // b's outgoing frames can be held back, so b's edit reaches the server
    // after a's although b made it first: the two cross in flight.
    const ctx = await browser.newContext(DESKTOP);
    let hold = false;
    let toServer = null;
    const held = [];
    await ctx.routeWebSocket(/\/ws$/, (ws) => {
      toServer = ws.connectToServer();
      ws.onMessage((m) => { if (hold) held.push(m); else toServer.send(m); });
    });
    const b = await ctx.newPage();
    b.errors = [];
    b.on('pageerror', (e) => b.errors.push(e.message));
    await b.goto(a.url());
    await b.waitForSelector('#status[data-state=connected]', { timeout: 10000 });
    const release = () => { hold = false; for (const m of held.splice(0)) toServer.send(m); };
    const server0 = async () => (await restState(server, id)).state.tracks[0];

    // A toggle each: the server ends off; both pages must show off.
    hold = true;
    await cell(b, 0, 3).click();
    assert.equal(await cell(b, 0, 3).getAttribute('aria-pressed'), 'true', 'b sees its own edit at once');
    await cell(a, 0, 3).click();
    await until(async () => (await server0()).steps[3] === true);
    await b.waitForTimeout(300); // a's broadcast has reached b
    release();
    await until(async () => (await server0()).steps[3] === false);
    await a.waitForTimeout(300);
    assert.equal(await cell(a, 0, 3).getAttribute('aria-pressed'), 'false');
    assert.equal(await cell(b, 0, 3).getAttribute('aria-pressed'), 'false', 'b shows the server\'s value, not its own guess');

    // A volume each: b's, applied last by the server, wins on both pages.
    hold = true;
    await head(b, 0).locator('.vol').fill('0.3');
    await head(b, 0).locator('.vol').dispatchEvent('change');
    await head(a, 0).locator('.vol').fill('0.8');
    await head(a, 0).locator('.vol').dispatchEvent('change');
    await until(async () => (await server0()).volume === 0.8);
    await b.waitForTimeout(300);
    release();
    await until(async () => (await server0()).volume === 0.3);
    await a.waitForFunction(() => document.querySelector('.head .vol').value === '0.3', null, { timeout: 3000 });
    await b.waitForTimeout(300);
    assert.equal(await head(b, 0).locator('.vol').inputValue(), '0.3', 'b keeps the value the server ends on');
    assert.deepEqual([...a.errors, ...b.errors], []);
    await ctx.close();
    await a.closeAll();
  });
});
