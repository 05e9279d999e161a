// The example SPA (examples/spa) in headless Chromium against a real tokend. run.sh starts tokend
// and a static server and sets the variables below; run it, not this file.
//
// Cookie mode: sign in through tokend's sign-in page, /api/me, survive an access-token expiry by
// refreshing (on 401 in one tab, by the timer before expiry in another), the refresh cookie is
// HttpOnly and invisible to the page, a reload keeps the session, and "log out all devices" in a
// second browser makes the first one's next call fail and show the sign-in screen.
// Body mode: the refresh token comes in the body and lives in memory: refresh on 401, a reload
// forgets the session, logout revokes it; and Cancel on the sign-in page.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run tests/browser/run.sh`);
  return value;
}

const ISSUER = env('ISSUER');
const SPA = env('SPA_URL');
const USERNAME = env('SPA_USERNAME');
const PASSWORD = env('SPA_PASSWORD');
const COOKIE_CLIENT = env('COOKIE_CLIENT_ID');
const BODY_CLIENT = env('BODY_CLIENT_ID');
const TTL_SECONDS = Number(env('ACCESS_TOKEN_TTL_SECONDS'));
const ARTIFACTS = process.env.ARTIFACTS_DIR;
const TOKEN_URL = `${ISSUER}/oauth/token`;
const ME_URL = `${ISSUER}/api/me`;

// --headless comes from `headless: true`.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let browser;
const contexts = [];

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
});

after(async () => {
  await browser?.close();
});

/** A fresh browser profile (cookies, storage); its pages are screenshotted if the test fails. */
async function newContext(t) {
  const context = await browser.newContext();
  contexts.push(context);
  t.after(async () => {
    if (ARTIFACTS && !t.passed) await screenshots(context, t.name);
    await context.close();
  });
  return context;
}

async function screenshots(context, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  let n = 0;
  for (const page of context.pages()) {
    const file = `${ARTIFACTS}/${name.replace(/\W+/g, '-')}-${contexts.indexOf(context)}-${n++}.png`;
    await page.screenshot({ path: file, fullPage: true }).catch(() => {});
    console.error(`screenshot: ${file}`);
  }
}

/** Every response from tokend to this page, in order, with the request's form if it had one. */
function recordTraffic(page) {
  const events = [];
  page.on('response', (response) => {
    const url = new URL(response.url());
    if (url.origin !== ISSUER) return;
    const request = response.request();
    if (request.method() === 'OPTIONS') return; // CORS preflights, if the browser reports them
    const form = request.method() === 'POST' && url.pathname.startsWith('/oauth/')
      ? new URLSearchParams(request.postData() ?? '')
      : null;
    events.push({
      method: request.method(),
      path: url.pathname,
      grant: form?.get('grant_type') ?? null,
      form,
      status: response.status(),
      request,
      response,
    });
  });
  return events;
}

const refreshes = (events) => events.filter((e) => e.path === '/oauth/token' && e.grant === 'refresh_token');
const isRefresh = (r) => r.url() === TOKEN_URL && /(^|&)grant_type=refresh_token(&|$)/.test(r.request().postData() ?? '');
const isExchange = (r) => r.url() === TOKEN_URL && /(^|&)grant_type=authorization_code(&|$)/.test(r.request().postData() ?? '');

async function openSpa(context, clientId) {
  const page = await context.newPage();
  const events = recordTraffic(page);
  await page.goto(`${SPA}/?issuer=${encodeURIComponent(ISSUER)}&client_id=${encodeURIComponent(clientId)}`);
  await page.locator('body[data-ready="true"]').waitFor();
  return { page, events };
}

async function fieldHasLabel(page, id) {
  return page.locator(`#${id}`).evaluate((el) => el.labels !== null && el.labels.length > 0);
}

/**
 * From the SPA's sign-in screen through tokend's sign-in page and back. Returns the code
 * exchange's response (its JSON body included) and the redirect's query.
 */
async function signIn(page, { wrongPasswordFirst = false } = {}) {
  await page.locator('#signed-out').waitFor();
  await page.click('#sign-in');
  await page.waitForURL((u) => u.href.startsWith(`${ISSUER}/oauth/authorize?`));
  const authorize = new URL(page.url());
  assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256');
  assert.match(authorize.searchParams.get('code_challenge'), /^[A-Za-z0-9_-]{43}$/);
  assert.ok(authorize.searchParams.get('state'), 'the SPA sends a state');
  assert.equal(await page.locator('script').count(), 0, 'the sign-in page runs no script');
  assert.ok(await fieldHasLabel(page, 'username'), '#username has a <label>');
  assert.ok(await fieldHasLabel(page, 'password'), '#password has a <label>');
  assert.equal(await page.getAttribute('#password', 'type'), 'password');

  if (wrongPasswordFirst) {
    await page.fill('#username', USERNAME);
    await page.fill('#password', 'not the password');
    await page.click('button[name="action"][value="sign_in"]');
    await page.getByText('Invalid username or password.').waitFor();
    assert.ok(page.url().startsWith(`${ISSUER}/oauth/authorize`), 'a wrong password stays on the sign-in page');
  }

  await page.fill('#username', USERNAME);
  await page.fill('#password', PASSWORD);
  const back = page.waitForRequest((r) => r.isNavigationRequest() && r.url().startsWith(`${SPA}/?`));
  const exchange = page.waitForResponse(isExchange);
  await page.click('button[name="action"][value="sign_in"]');
  const redirect = new URL((await back).url());
  assert.ok(redirect.searchParams.get('code'), 'the redirect carries a code');
  assert.equal(redirect.searchParams.get('state'), authorize.searchParams.get('state'), 'state round-trips');
  assert.equal(redirect.searchParams.get('iss'), ISSUER, 'the redirect names the issuer (RFC 9207)');
  const response = await exchange;
  assert.equal(response.status(), 200, `code exchange: ${await response.text()}`);
  const body = await response.json();
  assert.equal(body.token_type, 'Bearer');
  assert.equal(body.expires_in, TTL_SECONDS);
  await page.locator('#signed-in').waitFor();
  assert.equal(await page.textContent('#username'), USERNAME);
  assert.ok(!page.url().includes('code='), 'the SPA removed the code from the address bar');
  return { response, body, redirect };
}

/** Clicks "Call /api/me" and waits for the SPA to show the answer, an error or the sign-in screen. */
async function callApi(page) {
  const before = await page.textContent('#last-call');
  await page.click('#call-api');
  await page.waitForFunction(
    (previous) => !document.getElementById('signed-out').hidden
      || document.getElementById('status').textContent !== ''
      || document.getElementById('last-call').textContent !== previous,
    before,
  );
  const error = await page.textContent('#status');
  assert.equal(error, '', `the SPA shows an error: ${error}`);
}

/** Waits until tokend refuses `accessToken` at /api/me (its lifetime plus the fixed leeway). */
async function waitUntilExpired(accessToken) {
  const deadline = Date.now() + (TTL_SECONDS + 15) * 1000;
  for (;;) {
    const r = await fetch(ME_URL, { headers: { Authorization: `Bearer ${accessToken}` } });
    if (r.status === 401) return;
    assert.equal(r.status, 200);
    if (Date.now() > deadline) assert.fail('the access token did not expire');
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

async function sessionRows(page) {
  return page.locator('#sessions tbody tr').count();
}

test('cookie mode: sign in, refresh across an expiry, reload, log out all devices', async (t) => {
  // Browser A: its page timers are frozen after sign-in (like a laptop asleep), so its access token
  // really expires and the next API call has to recover by refreshing on 401.
  const contextA = await newContext(t);
  await contextA.clock.install();
  const a = await openSpa(contextA, COOKIE_CLIENT);
  const signedInA = await signIn(a.page, { wrongPasswordFirst: true });
  await contextA.clock.pauseAt(Date.now() + 1000);

  // The refresh token is not in the body: it is an HttpOnly cookie scoped to the token endpoint.
  assert.equal(signedInA.body.refresh_token, undefined, 'cookie mode: no refresh_token in the body');
  const setCookie = await signedInA.response.headerValue('set-cookie');
  assert.ok(setCookie, 'the code exchange sets a cookie');
  for (const part of [`tokend_rt_${COOKIE_CLIENT}=`, 'HttpOnly', 'Secure', 'SameSite=Strict', 'Path=/oauth/token', 'Max-Age=']) {
    assert.ok(setCookie.toLowerCase().includes(part.toLowerCase()), `Set-Cookie has ${part}: ${setCookie}`);
  }
  const cookieName = `tokend_rt_${COOKIE_CLIENT}`;
  const stored = (await contextA.cookies()).find((c) => c.name === cookieName);
  assert.ok(stored, `Chromium did not store the Secure cookie ${cookieName} set over http://127.0.0.1`);
  assert.equal(stored.httpOnly, true);
  assert.equal(stored.secure, true);
  assert.equal(stored.sameSite, 'Strict');
  assert.equal(stored.path, '/oauth/token');
  assert.equal(stored.domain, new URL(ISSUER).hostname);
  assert.equal(await a.page.textContent('#mode'), 'cookie (HttpOnly, Path=/oauth/token; not readable here)');

  // Script cannot read it: not from the SPA, and not even from a page on tokend's own path.
  assert.ok(!(await a.page.evaluate(() => document.cookie)).includes('tokend_rt_'), 'document.cookie in the SPA');
  const probe = await contextA.newPage();
  await probe.goto(TOKEN_URL); // a GET answers 405, but the page is at the cookie's path
  assert.ok(!(await probe.evaluate(() => document.cookie)).includes('tokend_rt_'), 'document.cookie at /oauth/token');
  await probe.close();

  assert.equal(await a.page.textContent('#client-id'), COOKIE_CLIENT);
  assert.equal(await sessionRows(a.page), 1);

  // Browser B signs in as the same user, meanwhile; its timers run, so it refreshes before expiry.
  const contextB = await newContext(t);
  const b = await openSpa(contextB, COOKIE_CLIENT);
  const signedInB = await signIn(b.page);
  const silent = await b.page.waitForResponse(isRefresh, { timeout: TTL_SECONDS * 1000 + 5000 });
  assert.equal(silent.status(), 200, `B's silent refresh: ${await silent.text()}`);
  assert.equal((await silent.json()).refresh_token, undefined);
  assert.ok(await silent.headerValue('set-cookie'), 'a refresh sets the rotated cookie');
  await waitUntilExpired(signedInB.body.access_token);
  await callApi(b.page);
  assert.ok(!b.events.some((e) => e.path.startsWith('/api/') && e.status === 401), 'B refreshed before any 401');
  assert.equal(await sessionRows(b.page), 2, 'B lists both browsers\' sessions');

  // A: its first access token has expired; the next call gets 401, refreshes with the cookie, retries.
  await waitUntilExpired(signedInA.body.access_token);
  assert.equal(refreshes(a.events).length, 0, 'A has not refreshed yet (its timers are frozen)');
  const mark = a.events.length;
  await callApi(a.page);
  assert.ok(await a.page.isVisible('#signed-in'), 'A survived the expiry');
  const afterExpiry = a.events.slice(mark).map((e) => `${e.method} ${e.path}${e.grant ? ` ${e.grant}` : ''} ${e.status}`);
  assert.deepEqual(afterExpiry.slice(0, 3), [
    'GET /api/me 401',
    'POST /oauth/token refresh_token 200',
    'GET /api/me 200',
  ]);
  const refresh = refreshes(a.events)[0];
  assert.equal(refresh.form.get('client_id'), COOKIE_CLIENT);
  assert.equal(refresh.form.get('refresh_token'), null, 'cookie mode: the refresh token is not in the form');
  const refreshHeaders = await refresh.request.allHeaders();
  assert.ok(refreshHeaders['x-requested-with'], 'X-Requested-With is sent');
  assert.ok((refreshHeaders.cookie ?? '').includes(`${cookieName}=`), 'the refresh cookie is sent');
  assert.equal(await a.page.textContent('#refresh-count'), '1');

  // A reload forgets the in-memory access token; the cookie brings the session back.
  await a.page.reload();
  await a.page.locator('body[data-ready="true"]').waitFor();
  assert.ok(await a.page.isVisible('#signed-in'), 'cookie mode: a reload stays signed in');
  assert.equal(await a.page.textContent('#username'), USERNAME);
  assert.ok(!a.page.url().startsWith(ISSUER), 'no trip through the sign-in page');

  // B logs out every device, itself included.
  const logoutAll = b.page.waitForResponse((r) => r.url() === `${ISSUER}/api/logout-all`);
  const clearB = b.page.waitForResponse(`${ISSUER}/oauth/revoke`); // the SPA asks tokend to clear the cookie
  await b.page.click('#logout-all');
  const counts = await (await logoutAll).json();
  assert.ok(counts.sessions_revoked >= 2, `logout-all revoked ${JSON.stringify(counts)}`);
  await b.page.locator('#signed-out').waitFor();
  assert.match(await b.page.textContent('#message'), /every device/);
  assert.equal((await clearB).status(), 200);
  assert.ok(!(await contextB.cookies()).some((c) => c.name === cookieName), 'B\'s refresh cookie is cleared');

  // A's next call fails (401, then the refresh is refused) and A is back at its sign-in screen.
  const markA = a.events.length;
  await callApi(a.page);
  await a.page.locator('#signed-out').waitFor();
  assert.match(await a.page.textContent('#message'), /session has ended/);
  const afterLogout = a.events.slice(markA);
  assert.equal(afterLogout[0].path, '/api/me');
  assert.equal(afterLogout[0].status, 401);
  const refused = afterLogout.find((e) => e.grant === 'refresh_token');
  assert.ok(refused, 'A tried to refresh');
  assert.equal(refused.status, 400);
  assert.equal((await refused.response.json()).error, 'invalid_grant');

  // And a reload does not bring it back.
  await a.page.reload();
  await a.page.locator('body[data-ready="true"]').waitFor();
  assert.ok(await a.page.isVisible('#signed-out'), 'after logout-all a reload shows the sign-in screen');

  // Log out (this device only) revokes the session and clears the cookie.
  const again = await signIn(a.page);
  assert.ok((await contextA.cookies()).some((c) => c.name === cookieName));
  const revoke = a.page.waitForResponse(`${ISSUER}/oauth/revoke`);
  await a.page.click('#logout');
  assert.equal((await revoke).status(), 200);
  await a.page.locator('#signed-out').waitFor();
  assert.ok(!(await contextA.cookies()).some((c) => c.name === cookieName), 'Log out clears the refresh cookie');
  const r = await fetch(ME_URL, { headers: { Authorization: `Bearer ${again.body.access_token}` } });
  assert.equal(r.status, 401, 'the access token is revoked');
  await a.page.reload();
  await a.page.locator('body[data-ready="true"]').waitFor();
  assert.ok(await a.page.isVisible('#signed-out'), 'after Log out a reload shows the sign-in screen');
});

test('body mode: cancel, sign in, refresh on 401, reload forgets, log out', async (t) => {
  const context = await newContext(t);
  await context.clock.install();
  const { page, events } = await openSpa(context, BODY_CLIENT);

  // Cancel on the sign-in page comes back with access_denied.
  await page.click('#sign-in');
  await page.waitForURL((u) => u.href.startsWith(`${ISSUER}/oauth/authorize?`));
  await page.click('button[name="action"][value="cancel"]');
  await page.waitForURL((u) => u.href.startsWith(`${SPA}/`));
  await page.locator('body[data-ready="true"]').waitFor();
  assert.match(await page.textContent('#message'), /cancelled/);

  const signedIn = await signIn(page);
  await context.clock.pauseAt(Date.now() + 1000);
  assert.ok(signedIn.body.refresh_token?.startsWith('tokend_rt_'), 'body mode: refresh_token in the body');
  assert.equal(await signedIn.response.headerValue('set-cookie'), null, 'body mode sets no cookie');
  assert.deepEqual((await context.cookies()).filter((c) => c.name.startsWith('tokend_rt_')), [], 'no refresh cookie');
  assert.equal(await page.textContent('#mode'), 'body (kept in this page\'s memory only)');

  await waitUntilExpired(signedIn.body.access_token);
  const mark = events.length;
  await callApi(page);
  assert.ok(await page.isVisible('#signed-in'), 'survived the expiry');
  const refresh = refreshes(events.slice(mark))[0];
  assert.ok(refresh, 'a refresh happened');
  assert.equal(refresh.status, 200);
  assert.equal(refresh.form.get('refresh_token'), signedIn.body.refresh_token, 'the body-mode refresh sends the token');
  const rotated = (await refresh.response.json()).refresh_token;
  assert.ok(rotated && rotated !== signedIn.body.refresh_token, 'the refresh token rotated');

  // Memory only: a reload forgets the session.
  await page.reload();
  await page.locator('body[data-ready="true"]').waitFor();
  assert.ok(await page.isVisible('#signed-out'), 'body mode: a reload needs a new sign-in');

  // Log out revokes the session: its access token stops working at once.
  const again = await signIn(page);
  const revoke = page.waitForResponse(`${ISSUER}/oauth/revoke`);
  await page.click('#logout');
  assert.equal((await revoke).status(), 200);
  await page.locator('#signed-out').waitFor();
  const r = await fetch(ME_URL, { headers: { Authorization: `Bearer ${again.body.access_token}` } });
  assert.equal(r.status, 401, 'the access token is revoked');
});
