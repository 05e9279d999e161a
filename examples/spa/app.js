// tokend example SPA: authorization code + PKCE (RFC 6749 §4.1, RFC 7636), silent refresh, the
// account API, and logout of one or every device. Plain fetch, no library: see docs/spa.md for why.
//
// Where things live:
// - the PKCE verifier and `state`: sessionStorage, only between the redirect out and back;
// - the access token: this module's memory only, never storage;
// - the refresh token: cookie mode, an HttpOnly cookie this script cannot read; body mode, this
//   module's memory only (a reload or a new tab signs in again).
// The delivery mode is the client's registration (`--refresh-cookie`), not a setting here: the
// first token response tells which one it is (a `refresh_token` field or not).
import defaults from './config.js';

const KEY_CONFIG = 'tokend-spa:config';
const KEY_PENDING = 'tokend-spa:pending';
const query = new URLSearchParams(location.search);
const config = loadConfig();
const cookieFlag = `tokend-spa:cookie-session:${config.clientId}`;

// Session state, in memory only.
let accessToken = null;
let refreshToken = null; // body mode only
let mode = null; // 'cookie' | 'body'
let expiresAt = 0;
let refreshTimer = null;
let refreshing = null;
let refreshCount = 0;
let generation = 0; // one more at every sign-out, so that an answer that arrives late is dropped

/** The session is over (revoked, expired, logged out elsewhere): the user must sign in again. */
class SessionEnded extends Error {}

/** An OAuth or API error answer. */
class HttpError extends Error {
  constructor(status, body) {
    super(`${status} ${body?.error ?? ''} ${body?.error_description ?? ''}`.trim());
    this.status = status;
    this.body = body;
  }
}

function loadConfig() {
  // Query parameters win over config.js and are kept for this tab, so that they survive the
  // round trip through the sign-in page (the redirect URI carries no query of its own).
  const saved = JSON.parse(sessionStorage.getItem(KEY_CONFIG) ?? '{}');
  const fromQuery = {};
  if (query.has('issuer')) fromQuery.issuer = query.get('issuer');
  if (query.has('client_id')) fromQuery.clientId = query.get('client_id');
  if (Object.keys(fromQuery).length > 0) {
    sessionStorage.setItem(KEY_CONFIG, JSON.stringify({ ...saved, ...fromQuery }));
  }
  const c = { ...defaults, ...saved, ...fromQuery };
  c.issuer = c.issuer.replace(/\/+$/, '');
  c.redirectUri ||= location.origin + location.pathname.replace(/index\.html$/, '');
  return c;
}

// ---------------------------------------------------------------------------------------------
// PKCE and sign-in

function base64url(bytes) {
  let s = '';
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomString(byteCount) {
  return base64url(crypto.getRandomValues(new Uint8Array(byteCount)));
}

async function signIn() {
  const verifier = randomString(32); // 43 characters, RFC 7636 §4.1
  const state = randomString(16);
  const challenge = base64url(
    await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)),
  );
  sessionStorage.setItem(KEY_PENDING, JSON.stringify({ state, verifier }));
  const url = new URL(`${config.issuer}/oauth/authorize`);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: config.clientId,
    redirect_uri: config.redirectUri,
    scope: config.scope,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  });
  location.assign(url);
}

/** Back from the sign-in page with `code` or `error`: check `state` and `iss`, then exchange. */
async function handleRedirect() {
  const pending = JSON.parse(sessionStorage.getItem(KEY_PENDING) ?? 'null');
  sessionStorage.removeItem(KEY_PENDING);
  // The code must not stay in the address bar, the history or a bookmark.
  history.replaceState(null, '', config.redirectUri);

  if (!pending || query.get('state') !== pending.state) {
    throw new Error('The sign-in answer does not match a sign-in this tab started (state). Sign in again.');
  }
  if (query.has('iss') && query.get('iss') !== config.issuer) {
    // RFC 9207: the answer came from another authorization server than the one asked.
    throw new Error(`The sign-in answer came from ${query.get('iss')}, not ${config.issuer}.`);
  }
  if (query.has('error')) {
    const message = query.get('error') === 'access_denied'
      ? 'Sign-in was cancelled.'
      : `Sign-in failed: ${query.get('error')} ${query.get('error_description') ?? ''}`;
    throw new SessionEnded(message);
  }
  const tokens = await tokenEndpoint('/oauth/token', {
    grant_type: 'authorization_code',
    code: query.get('code'),
    redirect_uri: config.redirectUri,
    code_verifier: pending.verifier,
    client_id: config.clientId,
  });
  accept(tokens);
  log(`signed in (${mode} mode)`);
}

// ---------------------------------------------------------------------------------------------
// Tokens

/**
 * A request to /oauth/token or /oauth/revoke. Always with credentials and X-Requested-With: in
 * cookie mode the browser sends and stores the refresh cookie only with credentials, and tokend
 * refuses cookie-mode requests without the header (a plain cross-site form cannot set it); in body
 * mode both are harmless.
 */
async function tokenEndpoint(path, form) {
  const response = await fetch(`${config.issuer}${path}`, {
    method: 'POST',
    credentials: 'include',
    cache: 'no-store',
    headers: { 'X-Requested-With': 'XMLHttpRequest', Accept: 'application/json' },
    body: new URLSearchParams(form),
  });
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    if (response.ok) throw new Error(`${path}: the answer is not JSON`);
  }
  if (!response.ok) throw new HttpError(response.status, body);
  return body;
}

function accept(tokens) {
  accessToken = tokens.access_token;
  if (tokens.refresh_token) {
    mode = 'body';
    refreshToken = tokens.refresh_token;
  } else {
    mode = 'cookie';
    // Not a secret: only "this browser may hold a refresh cookie", so a reload tries a refresh
    // instead of showing the sign-in button.
    localStorage.setItem(cookieFlag, '1');
  }
  const lifetime = tokens.expires_in * 1000;
  expiresAt = Date.now() + lifetime;
  // Refresh once three quarters of the lifetime have passed, and at most a minute early.
  scheduleRefresh(Math.max(lifetime * 0.75, lifetime - 60_000));
  show('#mode', mode === 'cookie'
    ? 'cookie (HttpOnly, Path=/oauth/token; not readable here)'
    : 'body (kept in this page\'s memory only)');
  show('#expires', new Date(expiresAt).toLocaleTimeString());
}

function scheduleRefresh(delay) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    refresh().catch((e) => {
      if (e instanceof SessionEnded) return signedOut(e.message);
      // A network error: the access token may still be good; try again a little later.
      status(`Could not refresh the access token (${e.message}); trying again in 10 s.`);
      scheduleRefresh(10_000);
    });
  }, delay);
}

/** One refresh at a time in this tab; across tabs too in cookie mode (they share one cookie). */
function refresh() {
  refreshing ??= withLock(refreshNow).finally(() => { refreshing = null; });
  return refreshing;
}

function withLock(fn) {
  // A cookie is shared by every tab of this origin. Two tabs refreshing at once would send the
  // same refresh token twice, and the second use is taken as theft (the session is revoked).
  // The Web Locks API serialises them: the second waits and then sends the new cookie.
  return navigator.locks ? navigator.locks.request(`tokend-refresh:${config.clientId}`, fn) : fn();
}

async function refreshNow() {
  const started = generation;
  const form = { grant_type: 'refresh_token', client_id: config.clientId };
  if (mode === 'body') {
    if (!refreshToken) throw new SessionEnded('Signed out. Sign in again.');
    form.refresh_token = refreshToken;
  }
  let tokens;
  try {
    tokens = await tokenEndpoint('/oauth/token', form);
  } catch (e) {
    if (generation !== started) return; // signed out meanwhile (log out, log out all devices)
    if (e instanceof HttpError && e.status === 400) {
      // invalid_grant: revoked (logout elsewhere), expired, or no cookie at all.
      forget();
      throw new SessionEnded('Your session has ended. Sign in again.');
    }
    throw e;
  }
  if (generation !== started) return;
  accept(tokens);
  refreshCount += 1;
  show('#refresh-count', String(refreshCount));
  log('access token refreshed');
}

function forget() {
  generation += 1;
  clearTimeout(refreshTimer);
  accessToken = null;
  refreshToken = null;
  expiresAt = 0;
  localStorage.removeItem(cookieFlag);
}

// ---------------------------------------------------------------------------------------------
// The account API

/** A call with the access token; on 401 refresh once and try again. */
async function api(path, init = {}) {
  if (!accessToken) await refresh();
  if (!accessToken) throw new SessionEnded('Signed out. Sign in again.');
  let response = await callWithToken(path, init);
  if (response.status === 401) {
    log(`${path}: 401, refreshing`);
    await refresh(); // throws SessionEnded if the session is gone
    if (!accessToken) throw new SessionEnded('Signed out. Sign in again.');
    response = await callWithToken(path, init);
    if (response.status === 401) {
      forget();
      throw new SessionEnded('Your session has ended. Sign in again.');
    }
  }
  if (!response.ok) {
    throw new HttpError(response.status, await response.json().catch(() => null));
  }
  return response.status === 204 ? null : response.json();
}

function callWithToken(path, init) {
  return fetch(`${config.issuer}${path}`, {
    ...init,
    cache: 'no-store',
    headers: { ...init.headers, Authorization: `Bearer ${accessToken}`, Accept: 'application/json' },
  });
}

async function loadAccount() {
  const me = await api('/api/me');
  show('#username', me.username);
  show('#client-id', me.client_id);
  show('#session-id', me.session_id);
  show('#scopes', me.scopes.join(' '));
  show('#last-call', `GET /api/me 200 at ${new Date().toLocaleTimeString()}`);
  view('signed-in');
  await loadSessions();
}

async function loadSessions() {
  const { sessions } = await api('/api/sessions');
  const rows = sessions.map((s) => {
    const tr = document.createElement('tr');
    if (s.current) tr.className = 'current';
    const device = s.device_name || s.user_agent || s.kind;
    for (const text of [device, s.client_id ?? '', s.ip ?? '', when(s.created_at), when(s.last_used_at)]) {
      const td = document.createElement('td');
      td.textContent = text; // never innerHTML: these strings come from other devices
      tr.append(td);
    }
    const td = document.createElement('td');
    if (s.current) {
      td.textContent = 'this browser';
    } else {
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = 'Log out';
      button.addEventListener('click', () => run(async () => {
        await api(`/api/sessions/${encodeURIComponent(s.id)}`, { method: 'DELETE' });
        await loadSessions();
      }));
      td.append(button);
    }
    tr.append(td);
    return tr;
  });
  document.querySelector('#sessions tbody').replaceChildren(...rows);
}

async function logout() {
  const token = accessToken;
  forget();
  try {
    // Revoking the access token ends its whole session; in cookie mode tokend also clears the cookie.
    if (token) await tokenEndpoint('/oauth/revoke', { token, client_id: config.clientId });
  } finally {
    signedOut('You are signed out.');
  }
}

async function logoutAll() {
  const counts = await api('/api/logout-all', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ except_current: false }),
  });
  const token = accessToken;
  forget();
  if (mode === 'cookie' && token) {
    // The cookie's refresh token is already revoked; this only asks tokend to clear the cookie.
    await tokenEndpoint('/oauth/revoke', { token, client_id: config.clientId }).catch(() => {});
  }
  signedOut(`Signed out on every device (${counts.sessions_revoked} sessions ended).`);
}

// ---------------------------------------------------------------------------------------------
// The page

function show(selector, text) {
  document.querySelector(selector).textContent = text;
}

function view(name) {
  document.getElementById('signed-in').hidden = name !== 'signed-in';
  document.getElementById('signed-out').hidden = name !== 'signed-out';
}

function status(text) {
  show('#status', text);
}

function signedOut(message) {
  forget();
  show('#message', message);
  status('');
  view('signed-out');
  log(message);
}

function when(rfc3339) {
  return rfc3339 ? new Date(rfc3339).toLocaleString() : '';
}

function log(text) {
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  document.getElementById('log').append(li);
}

/** Runs a user action: a session that ended shows the sign-in screen, other errors the status line. */
async function run(action) {
  try {
    status('');
    await action();
  } catch (e) {
    if (e instanceof SessionEnded || !accessToken) signedOut(e.message);
    else {
      status(e.message);
      log(`error: ${e.message}`);
    }
  }
}

function bind(id, action) {
  document.getElementById(id).addEventListener('click', () => run(action));
}

async function start() {
  bind('sign-in', signIn);
  bind('call-api', loadAccount);
  bind('load-sessions', loadSessions);
  bind('logout', logout);
  bind('logout-all', logoutAll);

  if (!config.clientId) {
    document.getElementById('sign-in').disabled = true;
    signedOut('Set clientId in config.js, or open this page with ?client_id=… (docs/spa.md).');
    return;
  }
  await run(async () => {
    if (query.has('code') || query.has('error')) {
      await handleRedirect();
    } else if (localStorage.getItem(cookieFlag)) {
      // Cookie mode survives a reload: the HttpOnly cookie may still hold a live refresh token.
      mode = 'cookie';
      await refresh();
    }
    if (accessToken) await loadAccount();
    else signedOut('Sign in with the authorization code flow and PKCE.');
  });
  document.body.dataset.ready = 'true';
}

start();
