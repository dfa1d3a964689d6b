/**
 * The live dashboard in a real browser: Debian's Chromium (`/usr/bin/chromium`) driven by
 * playwright-core, headless, with a fresh profile and nothing downloaded. The page is loaded from the
 * host with the operator token in its fragment; the test sees the domains, runs I/O in the guest and
 * watches blkback's counters move on the page, uses a control listed by GET /controls, and keeps a
 * screenshot (test-results/dashboard.png). Without Chromium the tests are skipped (and counted so);
 * CI installs it (.ci/run).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { deriveGuestToken } from '@pvblk/runtime';
import { SECRETS, startSystem } from './helpers.ts';
import { sh } from './blkif-peers.ts';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
const RESULTS = new URL('../../test-results/', import.meta.url);

type System = Awaited<ReturnType<typeof startSystem>>;
let sys: System;
let guest: Awaited<ReturnType<System['guest']>>;
let domid: number;
let browser: BrowserContext;
let profile: string;

async function open(token: string): Promise<Page> {
  const page = await browser.newPage();
  await page.goto(`${sys.api}/dashboard#token=${encodeURIComponent(token)}`);
  return page;
}

describe.skipIf(!hasChromium)('the dashboard in Chromium', () => {
  beforeAll(async () => {
    sys = await startSystem();
    guest = await sys.guest('guest');
    domid = Number((await guest.waitFor((r) => r.event === 'ready')).domid);
    profile = mkdtempSync(join(tmpdir(), 'pvblk-chromium-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-background-networking',
        '--disable-gpu',
        '--no-first-run',
        '--disable-sync',
        '--disable-component-update',
      ],
      viewport: { width: 1400, height: 1800 },
      // the page's CSP forbids eval; the test's own probes (waitForFunction) need it
      bypassCSP: true,
    });
  });
  afterAll(async () => {
    await browser?.close();
    await sys?.stop();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it('shows the domains, the vbd, the XenStore tree; I/O in the guest moves the counters', async () => {
    const page = await open(SECRETS.PVBLK_TOOLSTACK_TOKEN);
    await page.waitForSelector('#status.ok');
    expect(await page.textContent('#status')).toBe('live');
    // the token left the address bar
    expect(page.url()).toBe(`${sys.api}/dashboard`);
    await page.waitForSelector(`tr[data-name="guest"][data-domid="${domid}"]`);
    const row = await page.$$eval(`tr[data-name="guest"] td`, (tds) => tds.map((t) => t.textContent));
    expect(row.slice(0, 5)).toEqual(['guest', String(domid), '0', '1', '-b----']);
    expect(await page.$$eval('tr[data-name="Domain-0"] td', (tds) => tds[4].textContent)).toBe('r-----');
    const counter = `[data-counter="${domid}/51712/wr_req"]`;
    await page.waitForSelector(counter);
    const before = Number(await page.textContent(counter));
    const io = await sh(
      guest.socket,
      'dd if=/dev/urandom of=/dev/xvda bs=4096 count=200 oflag=direct status=none',
    );
    expect(io.code).toBe(0);
    // the page hears it over the socket: wr_req grows by the 200 writes
    await page.waitForFunction(
      `Number(document.querySelector(${JSON.stringify(counter)})?.textContent) >= ${before + 200}`,
      undefined,
      { timeout: 15_000 },
    );
    expect(await page.textContent(`[data-ring="${domid}/51712/0"]`)).toMatch(/^ring 0: \d+\/32 in use/);
    await page.waitForFunction(`document.querySelector('#xenstore')?.textContent?.includes('vbd = ""')`);
    const tree = (await page.textContent('#xenstore'))!;
    expect(tree).toContain(`backend = "/local/domain/0/backend/vbd/${domid}/51712"`);
    expect(tree).toMatch(/ state = "4" [. ]+ \(n\d+,r0\)/);
    expect(await page.textContent('#hist')).toMatch(/xs\d+ calls, mean [0-9.]+ µs, median [≤>][0-9.]+ µs/);
    mkdirSync(RESULTS, { recursive: true });
    await page.screenshot({ path: new URL('dashboard.png', RESULTS).pathname, fullPage: true });
    expect(existsSync(new URL('dashboard.png', RESULTS))).toBe(true);
    await page.close();
  });

  it('the controls come from GET /controls: a disk parameter, a dm-dust layer and a bad block set from the page', async () => {
    const page = await open(SECRETS.PVBLK_TOOLSTACK_TOKEN);
    const form = 'form[data-control="disk-param:/dev/sdg"]';
    await page.waitForSelector(form);
    expect(
      await page.$(
        `form[data-control="vbd-fault:vbd-${domid}-51712"] select[name="fault"] option[value="bad-response-id"]`,
      ),
    ).not.toBeNull();
    await page.selectOption(`${form} select[name="key"]`, 'delay');
    await page.fill(`${form} input[name="value"]`, '0');
    await page.click(`${form} button`);
    await page.waitForFunction(`document.querySelector('#control-result')?.textContent?.includes('→')`);
    expect(await page.textContent('#control-result')).toMatch(/^POST \/disks\/sdg\/params → 200\n/);
    await page.waitForFunction(
      `document.querySelector('tr[data-disk="/dev/sdg"]')?.textContent?.includes('delay=0')`,
    );
    // fault injection from the page: a dm-dust layer under the disk, then a bad block in it
    const sectors = (await (
      await fetch(`${sys.api}/dm`, { headers: { authorization: `Bearer ${SECRETS.PVBLK_TOOLSTACK_TOKEN}` } })
    ).json()) as { disks: Array<{ disk: string; sectors: number }> };
    const sdg = sectors.disks.find((d) => d.disk === 'sdg')!;
    const create = 'form[data-control="dm-create:/dev/sdg"]';
    await page.fill(`${create} input[name="name"]`, 'dust1');
    await page.fill(`${create} input[name="table"]`, `0 ${sdg.sectors} dust /dev/sdg 0 4096`);
    await page.click(`${create} button`);
    await page.waitForFunction(
      `document.querySelector('#control-result')?.textContent?.startsWith('POST /dm/sdg →')`,
    );
    expect(await page.textContent('#control-result')).toMatch(/^POST \/dm\/sdg → 201\n/);
    const message = 'form[data-control="dm-message:/dev/sdg"]';
    await page.fill(`${message} input[name="name"]`, 'dust1');
    await page.fill(`${message} input[name="message"]`, 'addbadblock 7');
    await page.click(`${message} button`);
    await page.waitForFunction(
      `document.querySelector('#control-result')?.textContent?.includes('/message →')`,
    );
    expect(await page.textContent('#control-result')).toMatch(
      /^POST \/dm\/sdg\/dust1\/message → 200\n[^]*badblock added at block 7/,
    );
    await page.click('form[data-control="dm-remove-all:/dev/sdg"] button');
    await page.waitForFunction(
      `document.querySelector('#control-result')?.textContent?.startsWith('DELETE')`,
    );
    expect(await page.textContent('#control-result')).toMatch(/^DELETE \/dm\/sdg → 200\n/);
    await page.close();
  });

  it('a guest token or a wrong token gets no data: the socket is closed with 4403 or 4401', async () => {
    const asGuest = await open(deriveGuestToken(SECRETS.PVBLK_TOOLSTACK_TOKEN, 'guest'));
    await asGuest.waitForSelector('#status.bad');
    await asGuest.waitForFunction(`document.querySelector('#status')?.textContent?.includes('4403')`);
    expect(await asGuest.$$('tr[data-name]')).toHaveLength(0);
    const wrong = await open('not-the-token');
    await wrong.waitForFunction(`document.querySelector('#status')?.textContent?.includes('4401')`);
    expect(await wrong.$$('tr[data-name]')).toHaveLength(0);
    await asGuest.close();
    await wrong.close();
  });
});
