// Keyboard and screen readers: the grid is one Tab stop with arrow keys
// (roving tabindex), focus stays after a toggle, Space plays and stops
// outside fields, Escape closes pop-ups and gives focus back, every control
// has an accessible name, and connection changes and joins are announced
// politely.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, openPage, cell, head, addTrack, privateServer, sessionId, restState, until } from './harness.mjs';

let env;
before(async () => { env = await setup(); });
after(async () => { await env?.close(); });

const focused = (page) => page.evaluate(() => {
  const el = document.activeElement;
  const row = el.closest('.row');
  return {
    id: el.id, cls: el.className, step: el.dataset.step ?? null,
    row: row ? [...document.querySelectorAll('#grid .row')].indexOf(row) : null,
  };
});

// The tests are independent (own sessions; a test that restarts a server
// has its own), so they run at once: they mostly wait.
describe('keyboard and screen readers', { concurrency: true }, () => {
  test('the grid is one Tab stop, arrows move, Enter toggles and focus stays; Space plays; Escape closes pop-ups', async () => {
    const { browser, server } = env;
    const a = await openPage(browser, `${server.url}/`);
    for (const s of ['kick', 'snare', 'hihat', 'synth:bass']) await addTrack(a, s);
    assert.equal(await a.locator('#grid .step[tabindex="0"]').count(), 1, 'exactly one step is tabbable');

    // From the last transport button, one Tab reaches the grid, the next leaves it.
    await a.locator('#remix').focus();
    await a.keyboard.press('Tab');
    assert.deepEqual(await focused(a), { id: '', cls: 'step', step: '0', row: 0 });
    await a.keyboard.press('Tab');
    assert.equal((await focused(a)).row, null, 'Tab leaves the grid');
    await a.keyboard.press('Shift+Tab');
    assert.equal((await focused(a)).step, '0', 'Shift+Tab comes back to the same cell');

    // Track 4's first step is three arrows away; Enter toggles it and focus stays.
    for (const k of ['ArrowDown', 'ArrowDown', 'ArrowDown', 'ArrowRight', 'ArrowRight', 'ArrowLeft']) await a.keyboard.press(k);
    assert.deepEqual(await focused(a), { id: '', cls: 'step', step: '1', row: 3 });
    await a.keyboard.press('Enter');
    assert.equal(await cell(a, 3, 1).getAttribute('aria-pressed'), 'true');
    assert.deepEqual(await focused(a), { id: '', cls: 'step on', step: '1', row: 3 });
    await a.keyboard.press('End');
    assert.equal((await focused(a)).step, '15');
    await a.keyboard.press('Control+Home');
    assert.deepEqual(await focused(a), { id: '', cls: 'step', step: '0', row: 0 });
    assert.equal(await a.locator('#grid .step[tabindex="0"]').count(), 1);

    // Space plays and stops from the grid and from the page, not from a field.
    await a.keyboard.press('Space');
    assert.equal(await a.getAttribute('#play', 'aria-pressed'), 'true');
    assert.equal(await cell(a, 0, 0).getAttribute('aria-pressed'), 'false', 'Space does not toggle the step');
    await a.keyboard.press('Space');
    assert.equal(await a.getAttribute('#play', 'aria-pressed'), 'false');
    await a.locator('#tempo').focus();
    await a.keyboard.press('Space');
    assert.equal(await a.getAttribute('#play', 'aria-pressed'), 'false', 'Space in a field is typing');

    // Shift+Enter opens the lock editor in the grid; Escape closes it and
    // puts focus back on the step.
    await cell(a, 2, 6).focus();
    await a.keyboard.press('Shift+Enter');
    await a.locator('#lock-editor').waitFor();
    assert.equal(await a.evaluate(() => document.activeElement.name), 'pitch');
    await a.keyboard.press('Escape');
    assert.equal(await a.locator('#lock-editor').count(), 0);
    assert.deepEqual(await focused(a), { id: '', cls: 'step', step: '6', row: 2 });

    // Escape closes the effects panel and the publish dialog, focus returns.
    await a.click('#fx-toggle');
    assert.equal(await a.isVisible('#fx-panel'), true);
    await a.keyboard.press('Escape');
    assert.equal(await a.isVisible('#fx-panel'), false);
    assert.equal((await focused(a)).id, 'fx-toggle');
    await a.click('#publish');
    assert.equal(await a.isVisible('#dialog'), true);
    await a.keyboard.press('Escape');
    assert.equal(await a.isVisible('#dialog'), false);
    assert.equal((await focused(a)).id, 'publish');
    assert.deepEqual(a.errors, []);
    await a.closeAll();
  });

  test('a mouse click toggles without taking the focus: the step becomes the tab stop, a keyboard user keeps their place, a typed field commits', async () => {
    const { browser, server } = env;
    const a = await openPage(browser, `${server.url}/`);
    for (const s of ['kick', 'snare']) await addTrack(a, s);
    const tabStops = () => a.evaluate(() => [...document.querySelectorAll('#grid .step[tabindex="0"]')]
      .map((el) => `${[...document.querySelectorAll('#grid .row')].indexOf(el.closest('.row'))}:${el.dataset.step}`));

    // A half-typed session name commits when a step is clicked; the focus
    // goes nowhere, and the clicked step is where Tab enters the grid.
    await a.locator('#name').fill('Clicked away');
    await cell(a, 1, 4).click();
    assert.equal(await cell(a, 1, 4).getAttribute('aria-pressed'), 'true');
    assert.equal(await a.evaluate(() => document.activeElement === document.body), true, 'the click moved the focus nowhere');
    assert.deepEqual(await tabStops(), ['1:4']);
    const id = sessionId(a);
    assert.ok(await until(async () => (await restState(server, id)).name === 'Clicked away'), 'the name field committed');
    await a.locator('#remix').focus();
    await a.keyboard.press('Tab');
    assert.deepEqual(await focused(a), { id: '', cls: 'step on', step: '4', row: 1 });

    // With the keyboard in the grid, a click elsewhere toggles that step and
    // the keyboard keeps its place: focus and tab stop stay, arrows go on.
    await a.keyboard.press('ArrowRight');
    await cell(a, 0, 9).click();
    assert.equal(await cell(a, 0, 9).getAttribute('aria-pressed'), 'true');
    assert.deepEqual(await focused(a), { id: '', cls: 'step', step: '5', row: 1 });
    assert.deepEqual(await tabStops(), ['1:5']);
    await a.keyboard.press('ArrowLeft');
    assert.deepEqual(await focused(a), { id: '', cls: 'step on', step: '4', row: 1 });
    assert.deepEqual(a.errors, []);
    await a.closeAll();
  });

  test('every control has an accessible name; status and joins are announced politely', async () => {
    const { browser } = env;
    const server = await privateServer(); // stopped and started below
    const a = await openPage(browser, `${server.url}/`);
    await addTrack(a, 'kick');
    await addTrack(a, 'tone:fm-epiano');
    // Open everything that can be opened, so its controls are in the tree.
    await head(a, 1).locator('.more').click();
    await head(a, 1).locator('.pitch').click();
    await a.click('#fx-toggle');
    const cdp = await a.context().newCDPSession(a);
    const { nodes } = await cdp.send('Accessibility.getFullAXTree');
    const interactive = new Set(['button', 'checkbox', 'slider', 'spinbutton', 'combobox', 'textbox', 'link', 'grid', 'gridcell', 'switch', 'menuitem']);
    const unnamed = nodes.filter((n) => !n.ignored && interactive.has(n.role?.value) && !String(n.name?.value || '').trim())
      .map((n) => n.role.value);
    assert.deepEqual(unnamed, [], 'controls without an accessible name');
    const names = nodes.filter((n) => !n.ignored && n.role?.value === 'button').map((n) => n.name.value);
    for (const want of ['Mute Kick', 'Solo Kick', 'Delete FM Piano', 'Clear FM Piano', 'Pitch view, FM Piano']) {
      assert.ok(names.includes(want), `a button named "${want}"`);
    }
    assert.ok(!names.some((n) => ['M', 'S', '✕', '⋯', '♪'].includes(n)), `no button is named by its glyph: ${names.join(' | ')}`);
    const grid = nodes.find((n) => n.role?.value === 'grid' && /Pattern/.test(n.name?.value));
    assert.ok(grid, 'the pattern is exposed as a grid');

    // Polite announcements: joins, leaves, connection changes.
    assert.equal(await a.getAttribute('#announcer', 'aria-live'), 'polite');
    const b = await openPage(browser, a.url());
    const bName = await b.evaluate(() => document.querySelector('#players li.me').textContent.replace(' (you)', ''));
    await a.waitForFunction((n) => document.querySelector('#announcer').textContent.includes(`${n} joined`), bName, { timeout: 3000 });
    await b.closeAll();
    await a.waitForFunction((n) => document.querySelector('#announcer').textContent.includes(`${n} left`), bName, { timeout: 3000 });
    await server.stop();
    await a.waitForFunction(() => /Connection lost/.test(document.querySelector('#announcer').textContent), null, { timeout: 5000 });
    await server.start();
    await a.waitForFunction(() => /Connected/.test(document.querySelector('#announcer').textContent), null, { timeout: 20000 });
    assert.deepEqual(a.errors, []);
    await a.closeAll();
    await server.dispose();
  });
});
