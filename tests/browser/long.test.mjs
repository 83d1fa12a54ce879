// Long patterns: track names stay in view while the steps scroll, bars are
// marked, the view follows the playhead (and stops following when asked),
// and another player's pointer is shown on the step it is over, not at the
// same pixel.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, openPage, cell, head, addTrack } from './harness.mjs';

let env;
before(async () => { env = await setup(); });
after(async () => { await env?.close(); });

async function longSession(page) {
  await addTrack(page, 'kick');
  await addTrack(page, 'synth:bass');
  for (const r of [0, 1]) {
    await head(page, r).locator('.count').selectOption('64');
    await page.locator('#grid .row').nth(r).locator('.step').nth(63).waitFor();
  }
}

// The tests are independent (own sessions; a test that restarts a server
// has its own), so they run at once: they mostly wait.
describe('long patterns', { concurrency: true }, () => {
  test('64 steps: names stay, bars are marked, the view follows the playhead when asked', async () => {
    const { browser, server } = env;
    const a = await openPage(browser, `${server.url}/`, { viewport: { width: 1000, height: 700 } });
    await longSession(a);
    const board = a.locator('#board');
    assert.ok(await board.evaluate((el) => el.scrollWidth > el.clientWidth + 500), 'the pattern is wider than the screen');

    // Bars: the ruler numbers bars 1–4 and bar lines leave a wider gap.
    assert.deepEqual(await a.locator('#ruler .cell').evaluateAll((els) => els.map((e) => e.textContent).filter((t) => /\d/.test(t))), ['1', '2', '3', '4']);
    const gap = await a.evaluate(() => {
      const s = [...document.querySelectorAll('#grid .row')][0].querySelectorAll('.step');
      const x = (i) => s[i].getBoundingClientRect().left;
      return { inBar: x(15) - x(14), atBar: x(16) - x(15) };
    });
    assert.ok(gap.atBar > gap.inBar + 4, `a bar line is wider than a step gap (${JSON.stringify(gap)})`);
    assert.equal(await cell(a, 0, 16).evaluate((b) => b.parentElement.classList.contains('bar')), true);

    // Scrolled to the end, the names are still where they were.
    const before = await head(a, 1).boundingBox();
    await board.evaluate((el) => { el.scrollLeft = el.scrollWidth; });
    const afterScroll = await head(a, 1).boundingBox();
    assert.ok(Math.abs(afterScroll.x - before.x) < 1, 'the track heads do not scroll away');
    const name = await head(a, 1).locator('.tname').boundingBox();
    const step63 = await cell(a, 1, 63).boundingBox();
    assert.ok(name.x >= 0 && step63.x + step63.width <= 1000, 'name and last step are both on screen');
    // The head covers the steps scrolled under it, it does not sit beside them.
    assert.ok(await a.evaluate(() => {
      const h = document.querySelector('#heads .head').getBoundingClientRect();
      const el = document.elementFromPoint(h.left + h.width / 2, h.top + h.height / 2);
      return el.closest('.head') !== null;
    }));

    // Follow the playhead: playing at 180 BPM, the view turns to the bar
    // being played once the playhead leaves the screen.
    await board.evaluate((el) => { el.scrollLeft = 0; });
    await a.fill('#tempo', '180');
    await a.press('#tempo', 'Enter');
    await a.click('#play');
    await a.waitForFunction(() => document.querySelector('#board').scrollLeft > 100, null, { timeout: 15000 });
    const inView = await a.evaluate(() => {
      const b = document.querySelector('#board').getBoundingClientRect();
      const p = document.querySelector('#grid .row .step.playhead')?.getBoundingClientRect();
      return p && p.left >= b.left && p.right <= b.right;
    });
    assert.ok(inView, 'the playhead is on screen');
    await a.click('#play');
    // Not following: the view stays where the player put it.
    await a.uncheck('#follow');
    await board.evaluate((el) => { el.scrollLeft = 0; });
    await a.click('#play');
    await a.waitForFunction(() => {
      const s = document.querySelector('#grid .row .step.playhead');
      return s && Number(s.dataset.step) > 40;
    }, null, { timeout: 15000 });
    assert.equal(await board.evaluate((el) => el.scrollLeft), 0);
    await a.click('#play');
    assert.deepEqual(a.errors, []);
    await a.closeAll();
  });

  test('a remote pointer is shown on the step it is over, however the grid is scrolled', async () => {
    const { browser, server } = env;
    const a = await openPage(browser, `${server.url}/`, { viewport: { width: 960, height: 700 } });
    await longSession(a);
    const b = await openPage(browser, a.url(), { viewport: { width: 1400, height: 800 } });
    await b.locator('#grid .row').nth(1).locator('.step').nth(63).waitFor();
    // a looks at the end of the pattern; b at its middle.
    await a.locator('#board').evaluate((el) => { el.scrollLeft = el.scrollWidth; });
    await b.locator('#board').evaluate((el) => { el.scrollLeft = 400; });
    const target = await cell(a, 1, 61).boundingBox();
    await a.mouse.move(target.x + 5, target.y + 5);
    await a.mouse.move(target.x + target.width / 2, target.y + target.height / 2, { steps: 3 });
    const pointer = b.locator('#cursors .cursor');
    await pointer.waitFor({ timeout: 3000 });
    await b.waitForFunction(() => document.querySelector('#cursors .cursor')?.dataset.step === '61', null, { timeout: 3000 });
    await b.waitForTimeout(300); // the tag glides (80 ms) to its place
    // The name tag is drawn from the pointer's tip, at the step's centre.
    const tip = await pointer.evaluate((el) => {
      const r = el.getBoundingClientRect();
      const m = parseFloat(getComputedStyle(el).marginLeft);
      return { x: r.left - m, y: r.top - parseFloat(getComputedStyle(el).marginTop) };
    });
    const mine = await cell(b, 1, 61).boundingBox();
    assert.ok(Math.abs(tip.x - (mine.x + mine.width / 2)) < 3 && Math.abs(tip.y - (mine.y + mine.height / 2)) < 3,
      `b draws a's pointer on b's step 61 (${JSON.stringify(tip)} vs ${JSON.stringify(mine)})`);
    assert.deepEqual([...a.errors, ...b.errors], []);
    await a.closeAll();
    await b.closeAll();
  });

  test('a pointer that stops moving is shown where it stopped, even when its last move came within 50 ms of the one before', async () => {
    const { browser, server } = env;
    const a = await openPage(browser, `${server.url}/`);
    await addTrack(a, 'kick');
    const b = await openPage(browser, a.url());
    await cell(b, 0, 7).waitFor();
    const box = async (i) => { const r = await cell(a, 0, i).boundingBox(); return [r.x + r.width / 2, r.y + r.height / 2]; };
    const [x2, y2] = await box(2);
    const [x7, y7] = await box(7);
    // Two moves back to back: the second falls inside the first's 50 ms.
    await a.evaluate(() => { window.__t = performance.now(); });
    await a.mouse.move(x2, y2);
    await a.mouse.move(x7, y7);
    const apart = await a.evaluate(() => performance.now() - window.__t);
    await b.waitForFunction(() => document.querySelector('#cursors .cursor')?.dataset.step === '7', null, { timeout: 3000 })
      .catch(() => {});
    const shown = await b.evaluate(() => document.querySelector('#cursors .cursor')?.dataset.step ?? null);
    assert.equal(shown, '7', `b shows a's pointer on step 7, where it stopped (the two moves were ${apart.toFixed(0)} ms apart)`);
    assert.deepEqual([...a.errors, ...b.errors], []);
    await a.closeAll();
    await b.closeAll();
  });

  test('a click right after moves sends the held pointer first, in the same task, once', async () => {
    const { browser, server } = env;
    const a = await openPage(browser, `${server.url}/`);
    await addTrack(a, 'kick');
    const b = await openPage(browser, a.url());
    await cell(b, 0, 9).waitFor();
    // Every message a's page sends, with the synchronous run it was sent in.
    await a.evaluate(() => {
      window.__sent = [];
      let run = 0;
      let open = false;
      const send = WebSocket.prototype.send;
      WebSocket.prototype.send = function (data) {
        if (!open) { open = true; run += 1; queueMicrotask(() => { open = false; }); }
        window.__sent.push({ run, m: JSON.parse(data) });
        return send.call(this, data);
      };
    });
    // Moves over steps 2 and 9 and the click on 9 in one task, so the click
    // comes well inside the moves' 50 ms however slow the machine is.
    await a.evaluate(() => {
      const steps = document.querySelectorAll('#grid .row')[0].querySelectorAll('.step');
      for (const el of [steps[2], steps[9]]) {
        const r = el.getBoundingClientRect();
        el.dispatchEvent(new PointerEvent('pointermove', { bubbles: true, pointerType: 'mouse', clientX: r.left + r.width / 2, clientY: r.top + r.height / 2 }));
      }
      steps[9].click();
    });
    await b.waitForFunction(() => document.querySelectorAll('#grid .row')[0]?.querySelectorAll('.step')[9]?.classList.contains('on'), null, { timeout: 3000 });
    await b.waitForFunction(() => document.querySelector('#cursors .cursor')?.dataset.step === '9', null, { timeout: 3000 });
    await a.waitForTimeout(200); // past the move's window: a second copy would have gone out by now
    const sent = await a.evaluate(() => window.__sent.filter((s) => s.m.type !== 'state_hash' && s.m.type !== 'ping'));
    const at = sent.findIndex((s) => s.m.type === 'toggle_step' && s.m.step === 9);
    assert.ok(at > 0, `a sent the toggle after something (${JSON.stringify(sent)})`);
    assert.equal(sent[at - 1].m.type, 'cursor_move');
    assert.equal(sent[at - 1].m.position.step, 9);
    assert.equal(sent[at - 1].run, sent[at].run, 'the pointer and the toggle went out in the same task');
    assert.deepEqual(sent.filter((s) => s.m.type === 'cursor_move').map((s) => s.m.position.step), [9],
      'the pointer went out once, where it was at the click');
    assert.deepEqual([...a.errors, ...b.errors], []);
    await a.closeAll();
    await b.closeAll();
  });
});
