// Flows: publishing keeps you on your session and hands you a link you can
// copy (with or without the clipboard API); remix works from any session and
// the copy says where it came from; Clear and Delete can be undone; a
// reconnect counts down and keeps your edits; a full session says so, and
// an upgrade refused for another reason (a balancer's 503) is not called full.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect } from 'node:net';
import { setup, openPage, cell, head, addTrack, sessionId, restState, until, holdSlot, privateServer, DESKTOP } from './harness.mjs';

// A stand-in for a balancer in front of the server: passes every
// connection through, or, while `refuse` is set, answers WebSocket upgrades
// itself with a 503 (as HAProxy does when no node can take one) and still
// passes REST requests. `cut()` drops the connections it is carrying.
async function refusingProxy(target) {
  const carried = new Set();
  const proxy = { refuse: false, refused: 0, port: 0 };
  const srv = createServer((client) => {
    let head = Buffer.alloc(0);
    const onData = (d) => {
      head = Buffer.concat([head, d]);
      if (!head.includes('\r\n\r\n')) return;
      client.off('data', onData);
      client.pause(); // until piped: nothing after the head is lost
      if (proxy.refuse && /^upgrade:\s*websocket/im.test(head.toString('latin1'))) {
        proxy.refused += 1;
        client.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        return;
      }
      const up = connect(target, '127.0.0.1', () => { up.write(head); client.pipe(up); up.pipe(client); });
      carried.add(client);
      carried.add(up);
      const done = () => { carried.delete(client); carried.delete(up); client.destroy(); up.destroy(); };
      up.on('error', done).on('close', done);
      client.on('error', done).on('close', done);
    };
    client.on('data', onData);
    client.on('error', () => client.destroy());
  });
  await new Promise((res) => srv.listen(0, '127.0.0.1', res));
  proxy.port = srv.address().port;
  proxy.cut = () => { for (const sock of carried) sock.destroy(); };
  proxy.close = () => { proxy.cut(); srv.close(); };
  return proxy;
}

let env;
before(async () => { env = await setup(); });
after(async () => { await env?.close(); });

// The tests are independent (own sessions; a test that restarts a server
// has its own), so they run at once: they mostly wait.
describe('flows', { concurrency: true }, () => {
  test('publish keeps you on your session and gives a link that copies, with or without the clipboard API', async () => {
    const { browser, server } = env;
    // With the clipboard API (a secure origin, permission granted).
    const a = await openPage(browser, `${server.url}/`, { ...DESKTOP, permissions: ['clipboard-read', 'clipboard-write'] });
    await addTrack(a, 'kick');
    await a.evaluate(() => document.querySelector('#name').focus());
    await a.fill('#name', 'Night shift');
    await a.press('#name', 'Enter');
    const source = sessionId(a);
    await a.click('#publish');
    assert.match(await a.textContent('#dialog'), /stay here/);
    await a.click('#publish-confirm');
    const link = await a.locator('#share-url').inputValue({ timeout: 5000 });
    assert.match(link, new RegExp(`^${server.url}/s/[a-f0-9-]{36}$`));
    assert.notEqual(link.split('/').pop(), source);
    assert.equal(sessionId(a), source, 'still on the session that was published');
    await a.click('#copy-url');
    await a.waitForFunction(() => /copied/.test(document.querySelector('#copy-feedback').textContent));
    assert.equal(await a.evaluate(() => navigator.clipboard.readText()), link);
    assert.equal(await a.getAttribute('#dialog a.button', 'href'), link);
    await a.click('#dialog button:has-text("Done")');
    assert.equal(await a.isVisible('#dialog'), false);
    assert.equal(await cell(a, 0, 3).isDisabled(), false, 'your session is still editable');
    // The published copy says where it came from.
    const pub = await openPage(browser, link);
    assert.match(await pub.textContent('#lineage'), /Published from Night shift/);
    assert.equal(await pub.getAttribute('#lineage a', 'href'), `/s/${source}`);
    await pub.closeAll();
    await a.closeAll();

    // Plain HTTP off localhost has no navigator.clipboard: the page selects
    // the link and copies the selection.
    const b = await openPage(browser, link.replace(/[^/]+$/, source), DESKTOP);
    await b.evaluate(() => {
      Object.defineProperty(Navigator.prototype, 'clipboard', { get: () => undefined, configurable: true });
      window.__copied = [];
      document.addEventListener('copy', () => {
        const el = document.activeElement;
        window.__copied.push(el.value.slice(el.selectionStart, el.selectionEnd));
      });
    });
    await b.click('#copy-link');
    await b.waitForFunction(() => /copied/.test(document.querySelector('#copy-feedback').textContent));
    assert.deepEqual(await b.evaluate(() => window.__copied), [b.url()]);
    // And if the browser refuses even that, the page says how to copy by hand.
    await b.evaluate(() => { document.execCommand = () => false; });
    await b.click('#copy-url');
    await b.waitForFunction(() => /Ctrl\+C/.test(document.querySelector('#copy-feedback').textContent));
    assert.equal(await b.evaluate(() => document.activeElement.id), 'share-url');
    assert.deepEqual(b.errors, []);
    await b.closeAll();
  });

  test('remix from an editable session; the remix names its source', async () => {
    const { browser, server } = env;
    const a = await openPage(browser, `${server.url}/`);
    await addTrack(a, 'snare');
    await cell(a, 0, 4).click();
    const source = sessionId(a);
    await until(async () => (await restState(server, source)).state.tracks[0]?.steps[4]);
    await a.click('#remix');
    await a.waitForURL((u) => !u.pathname.endsWith(source), { timeout: 5000 });
    await a.waitForSelector('#status[data-state=connected]', { timeout: 10000 });
    assert.equal(await cell(a, 0, 4).getAttribute('aria-pressed'), 'true');
    assert.match(await a.textContent('#lineage'), /Remixed from Snare/);
    assert.equal(await a.getAttribute('#lineage a', 'href'), `/s/${source}`);
    assert.deepEqual(a.errors, []);
    await a.closeAll();
  });

  test('Clear and Delete act for everyone but can be undone', async () => {
    const { browser, server } = env;
    const a = await openPage(browser, `${server.url}/`);
    const b = await openPage(browser, a.url());
    await addTrack(a, 'hihat');
    await addTrack(a, 'synth:pluck');
    for (const s of [0, 3, 6]) await cell(a, 1, s).click();
    await cell(a, 1, 6).click({ modifiers: ['Shift'] });
    await a.fill('#lock-editor [name=pitch]', '5');
    await a.click('#lock-editor [name=set]');
    const id = sessionId(a);
    const stateOf = async () => (await restState(server, id)).state;
    await until(async () => (await stateOf()).tracks[1].parameterLocks[6]);

    await head(a, 1).locator('.more').click();
    await a.locator('.drawer').nth(1).locator('.clear').click();
    await cell(b, 1, 3).and(b.locator(':not(.on)')).waitFor({ timeout: 3000 });
    assert.ok(await until(async () => !(await stateOf()).tracks[1].steps.some(Boolean)));
    await a.click('#toasts button:has-text("Undo")');
    const back = await until(async () => { const t = (await stateOf()).tracks[1]; return t.steps[6] && t.parameterLocks[6] ? t : null; });
    assert.deepEqual(back.steps.slice(0, 8), [true, false, false, true, false, false, true, false]);
    assert.deepEqual(back.parameterLocks[6], { pitch: 5, volume: 1 });
    await cell(b, 1, 3).and(b.locator('.on')).waitFor({ timeout: 3000 });

    await a.locator('.drawer').nth(1).locator('.delete').click();
    await b.waitForFunction(() => document.querySelectorAll('#grid .row').length === 1, null, { timeout: 3000 });
    assert.match(await a.textContent('#toasts'), /Deleted Synth Pluck/);
    await a.click('#toasts button:has-text("Undo")');
    await b.waitForFunction(() => document.querySelectorAll('#grid .row').length === 2, null, { timeout: 3000 });
    const restored = await until(async () => (await stateOf()).tracks[1]);
    assert.equal(restored.sampleId, 'synth:pluck');
    assert.deepEqual(restored.steps.slice(0, 8), [true, false, false, true, false, false, true, false]);
    assert.deepEqual([...a.errors, ...b.errors], []);
    await a.closeAll();
    await b.closeAll();
  });

  test('while reconnecting the countdown moves, edits wait, and a waiting toggle never undoes another player\'s', async () => {
    const { browser } = env;
    const server = await privateServer(); // stopped and started below
    const a = await openPage(browser, `${server.url}/`);
    await addTrack(a, 'clap');
    const id = sessionId(a);
    // The countdown: the server goes away and the seconds tick down.
    await server.stop();
    await a.waitForSelector('#status[data-state=reconnecting]', { timeout: 5000 });
    assert.equal(await a.isVisible('#retry'), true, 'a Retry now button is offered');
    const seen = [];
    for (let i = 0; i < 40 && seen.length < 3; i++) {
      const m = (await a.textContent('#status')).match(/in (\d+) s/);
      if (m && Number(m[1]) !== seen.at(-1)) seen.push(Number(m[1]));
      await a.waitForTimeout(150);
    }
    // Down from one reading to the next (on a loaded machine a reading can
    // miss a second, or fall after the next attempt has restarted the count).
    assert.ok(seen.some((n, i) => i > 0 && n < seen[i - 1]), `the countdown ticks: ${seen}`);
    await server.start();
    await a.click('#retry', { timeout: 1000 }).catch(() => {}); // unless it reconnected first
    await a.waitForSelector('#status[data-state=connected]', { timeout: 10000 });
    await a.closeAll();

    // a's connection is held open-but-not-connected by the test, so a alone is
    // offline while b edits.
    const c = await (await browser.newContext(DESKTOP)).newPage();
    let held = null;
    let live = null;
    await c.routeWebSocket(/\/ws$/, (ws) => {
      if (held === 'hold') { held = ws; return; }
      live = ws;
      ws.connectToServer();
    });
    await c.goto(`${server.url}/s/${id}`);
    await c.waitForSelector('#status[data-state=connected]', { timeout: 10000 });
    held = 'hold';
    live.close();
    await c.waitForSelector('#status[data-state=reconnecting], #status[data-state=connecting]', { timeout: 5000 });
    await cell(c, 0, 2).click(); // wants step 2 on
    await cell(c, 0, 7).click(); // wants step 7 on
    await c.waitForFunction(() => /2 edits waiting/.test(document.querySelector('#status').textContent), null, { timeout: 2000 });
    const b = await openPage(browser, `${server.url}/s/${id}`);
    await cell(b, 0, 2).click(); // meanwhile b turns step 2 on
    await until(async () => (await restState(server, id)).state.tracks[0].steps[2]);
    await until(() => typeof held === 'object' && held !== null, 10000);
    held.connectToServer();
    await c.waitForSelector('#status[data-state=connected]', { timeout: 10000 });
    const steps = await until(async () => {
      const s = (await restState(server, id)).state.tracks[0].steps;
      return s[7] ? s : null;
    });
    await c.waitForTimeout(300);
    const final = (await restState(server, id)).state.tracks[0].steps;
    assert.equal(steps[7], true, 'the waiting edit was sent');
    assert.equal(final[2], true, 'step 2 stays on: the waiting "on" did not toggle it off');
    assert.equal(await cell(c, 0, 2).getAttribute('aria-pressed'), 'true');
    assert.equal(await cell(b, 0, 2).getAttribute('aria-pressed'), 'true');
    await c.context().close();
    await b.closeAll();
    await server.dispose();
  });

  test('an eleventh player is told the session is full, can look, and joins when a place frees up', async () => {
    const { browser, server } = env;
    const a = await openPage(browser, `${server.url}/`);
    await addTrack(a, 'kick');
    await cell(a, 0, 0).click();
    const id = sessionId(a);
    const slots = [];
    for (let i = 0; i < 9; i++) slots.push(await holdSlot(server, id));
    const ctx = await browser.newContext(DESKTOP);
    const b = await ctx.newPage();
    await b.goto(`${server.url}/s/${id}`);
    await b.waitForSelector('#status[data-state=full]', { timeout: 10000 });
    assert.match(await b.textContent('#status'), /Session full \(10 players\)/);
    assert.match(await b.textContent('#banner'), /full: 10 players/);
    assert.equal(await b.isVisible('#banner button:has-text("Remix")'), true);
    assert.equal(await cell(b, 0, 0).getAttribute('aria-pressed'), 'true', 'the grid is shown from the stored session');
    assert.match(await b.textContent('#announcer'), /full/);
    assert.equal(await cell(b, 0, 3).isDisabled(), true, 'edits are refused while the session is full');
    assert.equal(await b.isDisabled('#add-track'), true);
    slots.pop().destroy();
    await b.waitForTimeout(300);
    // Retry now, unless the page's own 5 s retry has already got in (on a slow
    // machine it can fire between the place freeing and this click).
    if (await b.isVisible('#retry')) await b.click('#retry', { timeout: 3000 }).catch(() => {});
    await b.waitForSelector('#status[data-state=connected]', { timeout: 10000 });
    assert.equal(await b.isVisible('#banner'), false);
    assert.equal(await cell(b, 0, 3).isDisabled(), false, 'and allowed once in');
    for (const s of slots) s.destroy();
    await ctx.close();
    await a.closeAll();
  });

  test('an upgrade refused by something in front of the server (a balancer\'s 503) is a lost connection, not a full session', async () => {
    const { browser, server } = env;
    const proxy = await refusingProxy(server.port);
    const ctx = await browser.newContext(DESKTOP);
    try {
      const a = await ctx.newPage();
      await a.goto(`http://127.0.0.1:${proxy.port}/`);
      await a.waitForSelector('#status[data-state=connected]', { timeout: 10000 });
      await addTrack(a, 'kick');
      // Every state the status takes from now on.
      await a.evaluate(() => {
        window.__states = [];
        const el = document.querySelector('#status');
        new MutationObserver(() => window.__states.push(el.dataset.state)).observe(el, { attributes: true, attributeFilter: ['data-state'] });
      });
      proxy.refuse = true;
      proxy.cut();
      await a.waitForSelector('#status[data-state=reconnecting]', { timeout: 5000 });
      // Two refused upgrades: the page reads the session over REST after a
      // refusal before it schedules the next attempt, so by the second the
      // first refusal has been judged (however slow the machine).
      await until(() => proxy.refused >= 2, 20000);
      await a.waitForTimeout(200);
      const refusedSeen = await a.evaluate(() => window.__states.slice());
      assert.ok(!refusedSeen.includes('full'), `never shown as full (${refusedSeen.join(' → ')})`);
      assert.equal(await a.getAttribute('#status', 'data-state'), 'reconnecting');
      assert.doesNotMatch(await a.textContent('#status'), /full/i);
      await cell(a, 0, 4).click(); // an edit waits, it is not refused
      await a.waitForFunction(() => /1 edit waiting/.test(document.querySelector('#status').textContent), null, { timeout: 2000 });
      proxy.refuse = false;
      if (await a.isVisible('#retry')) await a.click('#retry', { timeout: 3000 }).catch(() => {});
      await a.waitForSelector('#status[data-state=connected]', { timeout: 15000 });
      await until(async () => (await restState(server, sessionId(a))).state.tracks[0].steps[4], 5000);
    } finally {
      await ctx.close();
      proxy.close();
    }
  });
});
