// Talking to the API: one fetch wrapper, the user session (access token in memory, refresh token
// in sessionStorage only, refreshed before the access token expires) and the admin token.

const SESSION_KEY = 'rockit-edge.session';
const ADMIN_KEY = 'rockit-edge.admin-token';

/** A failed answer: HTTP status plus the envelope's `error`, `message`, `param`. */
export class ApiError extends Error {
  constructor(status, body, retryAfter = null) {
    super(body?.message || `The server answered with HTTP ${status}.`);
    this.status = status;
    this.code = body?.error || 'unknown';
    this.param = body?.param || null;
    this.resource = body?.resource || null;
    this.retryAfter = retryAfter ?? body?.retryAfter ?? null;
  }
}

// Server clock minus browser clock, in seconds, from the `Date` header of the last answer: token
// expiry times are the server's, and a browser clock that is off must not make us refresh in a loop.
let skew = 0;

function serverNow() {
  return Date.now() / 1000 + skew;
}

async function request(method, path, { body, headers = {} } = {}) {
  const init = { method, headers: { Accept: 'application/json', ...headers }, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, { error: 'network', message: 'The server cannot be reached. Check the connection and try again.' });
  }
  const date = Date.parse(res.headers.get('Date') || '');
  if (!Number.isNaN(date)) skew = date / 1000 - Date.now() / 1000;
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (!res.ok || data?.status !== 'success') throw new ApiError(res.status, data, res.headers.get('Retry-After'));
  return data;
}

// The session: {org, user, permissions, id, refresh: {token, expires}}. The access token stays in
// memory; after a reload the stored refresh token buys a new one.
let session = loadSession();
let access = null;
let refreshTimer = null;
let refreshing = null;
const endListeners = [];

function loadSession() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
    return stored?.refresh?.token ? stored : null;
  } catch {
    return null;
  }
}

function saveSession() {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

/** The signed-in user's session (without tokens worth showing), or null. */
export function currentSession() {
  return session ? { org: session.org, user: session.user, permissions: session.permissions, id: session.id } : null;
}

/** Called with a message whenever the session ends (sign-out, expiry, revocation). */
export function onSessionEnd(listener) {
  endListeners.push(listener);
}

function endSession(message) {
  clearTimeout(refreshTimer);
  session = null;
  access = null;
  sessionStorage.removeItem(SESSION_KEY);
  for (const listener of endListeners) listener(message);
}

function endMessage(err) {
  switch (err.code) {
    case 'token-expired':
      return 'Your session has expired. Please sign in again.';
    case 'token-revoked':
      return 'Your session was ended (signed out elsewhere or revoked). Please sign in again.';
    default:
      return `Your session is no longer valid: ${err.message} Please sign in again.`;
  }
}

// Refresh when about a third of the access token's life is left (at most a minute early, at
// least two seconds), so a slow answer still arrives in time.
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  const left = access.expires - serverNow();
  const lead = Math.min(60, Math.max(2, left / 3));
  const delay = Math.max(1, left - lead) * 1000;
  refreshTimer = setTimeout(() => refresh().catch(() => {}), delay);
}

function begin(answer, org) {
  session = { org, user: answer.user, permissions: answer.permissions, id: answer.session.id, refresh: answer.session.refresh };
  access = answer.session.access;
  saveSession();
  scheduleRefresh();
}

/** Step one of the two-step login: answers `{orgs, orgSelection}`. */
export async function loginWithPassword(username, password) {
  return request('POST', '/be/v1/login', { body: { username, password } });
}

/** Step two: the organization chosen with the selection token. */
export async function chooseOrg(selection, orgName) {
  const answer = await request('POST', '/be/v1/login', {
    body: { orgName },
    headers: { Authorization: `Bearer ${selection.token}` },
  });
  begin(answer, orgName);
}

/** The one-step shortcut: username, password and organization at once. */
export async function loginDirect(username, password, orgName) {
  begin(await request('POST', '/be/v1/login', { body: { username, password, orgName } }), orgName);
}

/**
 * Exchanges the refresh token for a new pair. Only one refresh runs at a time: a refresh token is
 * single-use, and presenting it twice would make the server revoke the whole session.
 */
export function refresh() {
  if (!refreshing) refreshing = doRefresh().finally(() => { refreshing = null; });
  return refreshing;
}

async function doRefresh() {
  if (!session) throw new ApiError(401, { error: 'token-missing', message: 'Not signed in.' });
  try {
    const answer = await request('POST', '/be/v1/refresh', {
      body: {},
      headers: { Authorization: `Bearer ${session.refresh.token}` },
    });
    session.id = answer.session.id;
    session.refresh = answer.session.refresh;
    access = answer.session.access;
    saveSession();
    scheduleRefresh();
  } catch (err) {
    if (err.status === 401 || err.status === 400) {
      endSession(endMessage(err));
    } else if (session) {
      // The server was unreachable or busy: the token may still be good, try again shortly.
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(() => refresh().catch(() => {}), 5000);
    }
    throw err;
  }
}

/** After a reload: true when the stored session still works. */
export async function resume() {
  if (!session) return false;
  try {
    await refresh();
  } catch {
    return session !== null;
  }
  await reloadPermissions();
  return session !== null;
}

/**
 * Reads the user's account and current permissions again (`GET /be/v1/me`): the copy stored at
 * sign-in goes stale when an administrator changes the user's roles, and menus must match what
 * the server will allow. A failure keeps the stored copy (the server checks every call anyway).
 */
export async function reloadPermissions() {
  try {
    const answer = await call('GET', '/be/v1/me');
    if (!session) return;
    session.user = answer.user;
    session.permissions = answer.permissions;
    saveSession();
  } catch {
    // Offline or the session just ended: nothing better to show than what is stored.
  }
}

/** A `/be/v1` request as the signed-in user. */
export async function call(method, path, body) {
  if (!session) throw new ApiError(401, { error: 'token-missing', message: 'Not signed in.' });
  if (!access || access.expires - serverNow() < 2) await refresh();
  const send = () => request(method, path, { body, headers: { Authorization: `Bearer ${access.token}` } });
  try {
    return await send();
  } catch (err) {
    if (err.status === 401 && err.code === 'token-expired' && session) {
      await refresh();
      return send();
    }
    if (err.status === 401 && session) endSession(endMessage(err));
    throw err;
  }
}

/** Ends the session on the server (`POST /be/v1/logout`) and here. */
export async function logout() {
  if (!session) return;
  try {
    await request('POST', '/be/v1/logout', { headers: { Authorization: `Bearer ${session.refresh.token}` } });
  } finally {
    endSession('You are signed out.');
  }
}

/** The instance administrator's token, pasted once and kept in sessionStorage. */
export const admin = {
  token() {
    return sessionStorage.getItem(ADMIN_KEY);
  },
  remember(token) {
    sessionStorage.setItem(ADMIN_KEY, token);
  },
  forget() {
    sessionStorage.removeItem(ADMIN_KEY);
  },
  call(method, path, body) {
    return request(method, path, { body, headers: { 'x-rockit-admin-token': this.token() || '' } });
  },
};

/** A query string from an object; empty and missing values are left out. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.append(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}
