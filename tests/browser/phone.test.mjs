// Phones and melodies. At 390 × 844 (touch) every step is on screen without
// sideways scrolling, every tap target is at least 44 px, a track's
// controls fold away, and a long press does what Shift-click does. The
// pitch view (a small piano roll) writes a melody a click per note, on the
// desktop and on the phone, and plays each note placed.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, openPage, cell, head, addTrack, sessionId, restState, until, PHONE } from './harness.mjs';

let env;
before(async () => { env = await setup(); });
after(async () => { await env?.close(); });

// Counts oscillators the page creates (a note being previewed).
const COUNT_OSCILLATORS = () => {
  window.__oscs = 0;
  const make = BaseAudioContext.prototype.createOscillator;
  BaseAudioContext.prototype.createOscillator = function createOscillator(...args) { window.__oscs++; return make.apply(this, args); };
};

// The tests are independent (own sessions; a test that restarts a server
// has its own), so they run at once: they mostly wait.
describe('phones and melodies', { concurrency: true }, () => {
  test('on a phone the steps fit, targets are 44 px, controls fold away, and a long press edits a step', async () => {
    const { browser, server } = env;
    const desk = await openPage(browser, `${server.url}/`);
    await addTrack(desk, 'kick');
    await addTrack(desk, 'synth:lead');
    await head(desk, 1).locator('.count').selectOption('32');
    const p = await openPage(browser, desk.url(), PHONE);
    await p.locator('#grid .row').nth(1).locator('.step').nth(31).waitFor();

    const layout = await p.evaluate(() => {
      const vw = document.documentElement.clientWidth;
      const steps = [...document.querySelectorAll('#grid .step')].map((el) => el.getBoundingClientRect());
      const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
      const targets = [...document.querySelectorAll('button, select, input:not([type=checkbox]), .transport label')]
        .filter(visible).map((el) => { const r = el.getBoundingClientRect(); return { what: el.getAttribute('aria-label') || el.id || el.className || el.textContent, w: r.width, h: r.height }; });
      return {
        vw, scrollW: document.documentElement.scrollWidth,
        stepsInView: steps.every((r) => r.left >= 0 && r.right <= vw), minStep: Math.min(...steps.map((r) => Math.min(r.width, r.height))),
        small: targets.filter((t) => t.w < 44 || t.h < 44),
        firstStepTop: steps[0].top,
      };
    });
    assert.equal(layout.vw, 390);
    assert.ok(layout.scrollW <= 390, `no sideways scrolling (${layout.scrollW})`);
    assert.ok(layout.stepsInView, 'every step is within the screen');
    assert.ok(layout.minStep >= 44, `steps are ${layout.minStep} px`);
    assert.deepEqual(layout.small, [], 'every tap target is at least 44 × 44');
    assert.ok(layout.firstStepTop < 844, 'the first step is on the first screen');

    // A track's controls are folded away until asked for.
    assert.equal(await head(p, 0).locator('.vol').isVisible(), false);
    assert.equal(await head(p, 0).locator('.transpose').isVisible(), false);
    await head(p, 0).locator('.more').tap();
    assert.equal(await head(p, 0).locator('.vol').isVisible(), true);
    assert.equal(await p.locator('.drawer').first().locator('.sound').isVisible(), true);
    await head(p, 0).locator('.more').tap();
    assert.equal(await head(p, 0).locator('.vol').isVisible(), false);

    // A tap toggles; a long press opens the lock editor and toggles nothing.
    await cell(p, 0, 5).tap();
    await cell(p, 0, 5).and(p.locator('.on')).waitFor({ timeout: 2000 });
    const box = await cell(p, 0, 9).boundingBox();
    const cdp = await p.context().newCDPSession(p);
    const at = [{ x: box.x + box.width / 2, y: box.y + box.height / 2 }];
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: at });
    await p.waitForTimeout(800);
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
    await p.locator('#lock-editor').waitFor({ timeout: 2000 });
    assert.equal(await cell(p, 0, 9).getAttribute('aria-pressed'), 'false', 'the long press did not toggle the step');
    const editor = await p.locator('#lock-editor').boundingBox();
    assert.ok(editor.x >= 0 && editor.x + editor.width <= 390, 'the editor fits the screen');
    await p.locator('#lock-editor [name=pitch]').fill('5');
    await p.locator('#lock-editor [name=set]').tap();
    await cell(p, 0, 9).and(p.locator('.locked')).waitFor({ timeout: 2000 });
    assert.equal(await p.isVisible('.touch-hint'), true, 'the hint speaks of long presses');
    const id = sessionId(p);
    const t = await until(async () => { const s = (await restState(server, id)).state.tracks[0]; return s.parameterLocks[9] ? s : null; });
    assert.deepEqual(t.parameterLocks[9], { pitch: 5, volume: 1 });
    assert.equal(t.steps[9], false);
    assert.equal(t.steps[5], true);
    assert.deepEqual([...p.errors, ...desk.errors], []);
    await p.closeAll();
    await desk.closeAll();
  });

  test('the pitch view writes a melody a click per note, plays each note, and follows other players\' edits', async () => {
    const { browser, server } = env;
    const a = await openPage(browser, `${server.url}/`);
    const b = await openPage(browser, a.url());
    await a.evaluate(COUNT_OSCILLATORS);
    await addTrack(a, 'kick');
    await addTrack(a, 'synth:rhodes');
    assert.equal(await head(a, 0).locator('.pitch').isVisible(), false, 'drums have no pitch view');
    await head(a, 1).locator('.pitch').click();
    const roll = a.locator('.roll').nth(1);
    await roll.locator('.rollgrid').waitFor();
    assert.equal(await head(a, 1).locator('.pitch').getAttribute('aria-expanded'), 'true');
    const rc = (step, pitch) => roll.locator(`.rrow[data-pitch="${pitch}"] .rc[data-step="${step}"]`);
    await rc(0, 0).click(); // root on step 0: no lock needed
    await rc(2, 7).click();
    await rc(4, 12).click();
    await rc(6, -5).click();
    await rc(4, 12).click(); // a second click removes the note
    assert.ok(await a.evaluate(() => window.__oscs) > 0, 'notes were previewed');
    const id = sessionId(a);
    const t = await until(async () => {
      const s = (await restState(server, id)).state.tracks[1];
      return s.steps[6] && !s.steps[4] ? s : null;
    });
    assert.deepEqual(t.steps.slice(0, 8), [true, false, true, false, false, false, true, false]);
    assert.deepEqual([t.parameterLocks[0], t.parameterLocks[2], t.parameterLocks[6]], [null, { pitch: 7 }, { pitch: -5 }]);
    assert.deepEqual(await roll.locator('.rc.note').evaluateAll((els) => els.map((e) => `${e.dataset.step}:${e.parentElement.dataset.pitch}`)),
      ['2:7', '0:0', '6:-5']);
    assert.equal(await cell(a, 1, 2).textContent(), '+7', 'the step shows its pitch');

    // Another player's lock moves the note in the open pitch view.
    await cell(b, 1, 2).click({ modifiers: ['Shift'] });
    await b.fill('#lock-editor [name=pitch]', '3');
    await b.click('#lock-editor [name=set]');
    await rc(2, 3).and(a.locator('.note')).waitFor({ timeout: 3000 });
    assert.equal(await rc(2, 7).getAttribute('aria-selected'), 'false');

    // From the keyboard: up two semitones from the cursor, Enter places a note.
    await roll.locator('.rollgrid').focus();
    for (const k of ['ArrowRight', 'ArrowRight', 'ArrowRight', 'ArrowUp', 'ArrowUp']) await a.keyboard.press(k);
    await a.keyboard.press('Enter');
    await rc(3, 2).and(a.locator('.note')).waitFor({ timeout: 2000 });
    await head(a, 1).locator('.pitch').click();
    assert.equal(await roll.isVisible(), false);
    assert.deepEqual([...a.errors, ...b.errors], []);
    const url = a.url();
    await a.closeAll();
    await b.closeAll();

    // On a phone the pitch view has 44 px cells and a tap places a note.
    const p = await openPage(browser, url, PHONE);
    await head(p, 1).locator('.pitch').tap();
    const pr = p.locator('.roll').nth(1);
    await pr.locator('.rollgrid').waitFor();
    const size = await pr.locator('.rc').first().boundingBox();
    assert.ok(size.width >= 44 && size.height >= 44, `pitch cells are ${size.width} × ${size.height}`);
    await pr.locator('.rrow[data-pitch="4"] .rc[data-step="8"]').tap();
    await until(async () => (await restState(server, id)).state.tracks[1].steps[8]);
    assert.deepEqual((await restState(server, id)).state.tracks[1].parameterLocks[8], { pitch: 4 });
    assert.deepEqual(p.errors, []);
    await p.closeAll();
  });
});
