'use strict'

// The demo's pages: functions of plain data returning HTML. Everything
// interpolated through `html` is escaped unless it is itself `html`, so a
// user agent or a user name cannot inject markup.

class Html {
  constructor(text) {
    this.text = text
  }
}

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }
const escape = (text) => text.replace(/[&<>"']/g, (c) => ESCAPES[c])

function render(value) {
  if (value instanceof Html) return value.text
  if (Array.isArray(value)) return value.map(render).join('')
  if (value === null || value === undefined || value === false) return ''
  return escape(String(value))
}

function html(strings, ...values) {
  return new Html(strings.reduce((out, s, i) => out + render(values[i - 1]) + s))
}

const STYLE = `
  body { font: 16px/1.5 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
  header { background: #1d2330; color: #fff; padding: .75rem 1.5rem; display: flex; gap: 1.25rem; align-items: center; }
  header a { color: #cfd8ff; text-decoration: none; }
  header .who { margin-left: auto; color: #aab3c5; }
  main { max-width: 52rem; margin: 2rem auto; padding: 0 1.5rem; }
  .card { background: #fff; border-radius: 8px; padding: 1.5rem; box-shadow: 0 1px 3px #0002; margin-bottom: 1.5rem; }
  h1 { font-size: 1.5rem; margin-top: 0; }
  label { display: block; margin: .75rem 0 .25rem; }
  input[type=text], input[type=password] { width: 100%; box-sizing: border-box; padding: .5rem; font: inherit; border: 1px solid #c5cad3; border-radius: 4px; }
  label.check { display: flex; gap: .5rem; align-items: center; }
  button { font: inherit; padding: .4rem .9rem; border-radius: 4px; border: 1px solid #3451b2; background: #3451b2; color: #fff; cursor: pointer; }
  button.quiet { background: transparent; color: inherit; border-color: #aab3c5; }
  button.danger { background: #b42334; border-color: #b42334; }
  form.inline { display: inline; margin: 0; }
  table { width: 100%; border-collapse: collapse; }
  th, td { text-align: left; padding: .5rem; border-bottom: 1px solid #e3e6eb; vertical-align: top; }
  .current { background: #eef6ee; }
  .badge { font-size: .8rem; background: #2e7d32; color: #fff; border-radius: 999px; padding: .1rem .5rem; }
  .muted { color: #5f6878; font-size: .9rem; }
  .flash { background: #fff8e1; border: 1px solid #f0d58c; padding: .75rem 1rem; border-radius: 6px; margin-bottom: 1.5rem; }
  .error { background: #fdecee; border-color: #f1b5bc; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: .5rem 1.5rem; margin: 0; }
  dt { color: #5f6878; } dd { margin: 0; font-weight: 600; }
`

// Every form carries the CSRF token, checked by the server on every POST.
const csrfField = (token) => html`<input type="hidden" name="_csrf" value="${token}">`

function layout({ title, user, csrfToken, flash }, body) {
  const nav = user
    ? html`<a href="/">Home</a><a href="/devices">My devices</a>${user.admin && html`<a href="/admin">Admin</a>`}
        <span class="who">${user.name}</span>
        <form class="inline" method="post" action="/logout">${csrfField(csrfToken)}<button class="quiet" style="color:#fff">Sign out</button></form>`
    : html`<strong>Session store demo</strong>`
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · session store demo</title><style>${new Html(STYLE)}</style></head>
<body><header>${nav}</header><main>${flash && html`<p class="flash" role="status">${flash}</p>`}${body}</main></body></html>`
}

function loginPage({ csrfToken, error, username, flash }) {
  return layout(
    { title: 'Sign in', csrfToken, flash },
    html`<div class="card" style="max-width:24rem;margin:auto">
  <h1>Sign in</h1>
  ${error && html`<p class="flash error" role="alert">${error}</p>`}
  <form method="post" action="/login">
    ${csrfField(csrfToken)}
    <label for="username">User name</label><input type="text" id="username" name="username" value="${username}" autocomplete="username" required autofocus>
    <label for="password">Password</label><input type="password" id="password" name="password" autocomplete="current-password" required>
    <label class="check"><input type="checkbox" name="remember" value="1"> Remember me for 30 days</label>
    <p><button>Sign in</button></p>
  </form>
  <p class="muted">Demo users: <code>ada</code> / <code>lovelace</code> (admin), <code>grace</code> / <code>hopper</code>.</p>
</div>`,
  )
}

function homePage({ user, csrfToken, flash, rememberMe, signedInAt, expiresAt, now }) {
  return layout(
    { title: 'Home', user, csrfToken, flash },
    html`<div class="card">
  <h1>Hello, ${user.name}</h1>
  <p>You signed in ${ago(signedInAt, now)}.
  ${rememberMe
    ? html`You asked to be remembered: this session lasts 30 days from sign-in, across browser and server restarts, unless you sign out.`
    : html`This session ends after 30 minutes without a request, a day after sign-in at most, or when you close the browser.`}</p>
  <p class="muted">The store ends it ${expiresAt ? html`at <time datetime="${expiresAt.toISOString()}">${when(expiresAt)}</time>${!rememberMe && ' unless you come back before'}` : 'never'}.</p>
  <p><a href="/devices">See where else you are signed in →</a></p>
</div>`,
  )
}

function devicesPage({ user, csrfToken, flash, devices, now }) {
  const others = devices.filter((d) => !d.current).length
  const rows = devices.map(
    (d) => html`<tr class="${d.current ? 'current' : ''}">
  <td title="${d.userAgent}"><strong>${describeAgent(d.userAgent)}</strong> ${d.current && html`<span class="badge">this device</span>`}
    <div class="muted">${d.rememberMe ? 'remembered' : 'until the browser closes'}</div></td>
  <td>${d.ip ?? '—'}${d.lastIp && d.lastIp !== d.ip && html`<div class="muted">now ${d.lastIp}</div>`}</td>
  <td><time datetime="${d.lastAccess.toISOString()}">${ago(d.lastAccess, now)}</time><div class="muted">since ${when(d.createdAt)}</div></td>
  <td>${d.current
    ? html`<span class="muted">—</span>`
    : html`<form class="inline" method="post" action="/devices/revoke">${csrfField(csrfToken)}<input type="hidden" name="handle" value="${d.handle}"><button class="danger">Sign out</button></form>`}</td>
</tr>`,
  )
  return layout(
    { title: 'My devices', user, csrfToken, flash },
    html`<div class="card">
  <h1>My devices</h1>
  <p class="muted">Where ${user.name} is signed in, most recently used first.</p>
  <table><thead><tr><th>Device</th><th>IP</th><th>Last seen</th><th></th></tr></thead><tbody>${rows}</tbody></table>
  ${others > 0 && html`<form method="post" action="/devices/revoke-others" style="margin-top:1rem">${csrfField(csrfToken)}<button class="danger">Sign out everywhere else (${others})</button></form>`}
</div>`,
  )
}

// How sessions ended, as 'sessionEnded' and stats().ended name it.
const REASONS = {
  logout: 'Signed out (or a new session at sign-in)',
  revoked: 'Revoked from another device',
  everywhere: 'Signed out everywhere else',
  limit: 'Over the per-user limit',
  idle: 'Idle too long',
  absolute: 'Too old',
  expired: 'Cookie expired',
  binding: 'Another browser used the cookie',
}

function endedList(ended, endedWithin) {
  if (ended.sessions === 0) return html`<p class="muted">No session ended in the last ${endedWithin / 60} minutes.</p>`
  return html`<dl>
    <dt>Ended in the last ${endedWithin / 60} minutes</dt><dd id="ended-sessions">${ended.sessions}</dd>
    <dt>Average length</dt><dd>${duration(ended.averageDuration)}</dd>
    ${Object.entries(ended.byReason).map(([reason, n]) => html`<dt>${REASONS[reason] ?? reason}</dt><dd id="ended-${reason}">${n}</dd>`)}
  </dl>`
}

function adminPage({ user, csrfToken, flash, stats, backend, activeWithin, endedWithin }) {
  return layout(
    { title: 'Admin', user, csrfToken, flash },
    html`<div class="card">
  <h1>Sessions in the store</h1>
  <dl>
    <dt>Backend</dt><dd>${backend}</dd>
    <dt>Live sessions</dt><dd id="stat-sessions">${stats.sessions}</dd>
    <dt>Signed-in users</dt><dd id="stat-users">${stats.users}</dd>
    <dt>Active in the last ${activeWithin / 60} minutes</dt><dd id="stat-active">${stats.active}</dd>
    <dt>Average session age</dt><dd>${duration(stats.averageAge)}</dd>
    <dt>Oldest session since</dt><dd>${stats.oldestCreatedAt ? when(stats.oldestCreatedAt) : '—'}</dd>
  </dl>
  <p class="muted">Live sessions include visitors who opened the sign-in page (their CSRF token is kept in a session).</p>
</div>
<div class="card">
  <h1>Sessions that ended</h1>
  ${endedList(stats.ended, endedWithin)}
</div>`,
  )
}

function errorPage({ status, message, user, csrfToken }) {
  return layout(
    { title: String(status), user, csrfToken },
    html`<div class="card"><h1>${status}</h1><p>${message}</p><p><a href="/">Back home</a></p></div>`,
  )
}

// "Chrome on Linux" from a user agent; the full text is in the title attribute.
function describeAgent(ua) {
  if (!ua) return 'Unknown device'
  const browser = /Edg\//.test(ua) ? 'Edge' : (/(Firefox|HeadlessChrome|Chrome|Safari)\//.exec(ua) || [, 'A browser'])[1]
  const os = (/(Windows|Android|iPhone|iPad|Mac OS X|Linux)/.exec(ua) || [, 'an unknown system'])[1]
  return `${browser} on ${os === 'Mac OS X' ? 'macOS' : os}`
}

const when = (date) => `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`

function duration(ms) {
  const s = Math.round(ms / 1000)
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.round(s / 60)} min`
  if (s < 86400) return `${(s / 3600).toFixed(1)} h`
  return `${(s / 86400).toFixed(1)} days`
}

const ago = (date, now) => (now - date < 60_000 ? 'just now' : `${duration(now - date)} ago`)

module.exports = { loginPage, homePage, devicesPage, adminPage, errorPage }
