'use strict'

// The demo app (npm run example) in a real Chromium: two browsers signed in
// as one user, one revoking the other; sign out everywhere else; a form
// without its CSRF token refused; remember me across a server restart and
// a browser restart, on a file:// store; the cookie's settings. Screenshots
// of each page go to .tmp/screenshots/ for a human to look at.
const test = require('ava')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { chromium } = require('playwright-core')
const { freePort } = require('./helpers/redis')
const { DemoApp } = require('./helpers/demo')

const CHROMIUM = '/usr/bin/chromium'
const SHOTS = path.join(__dirname, '..', '.tmp', 'screenshots')
const FIREFOX_ON_WINDOWS = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0'

let dir
let port
let app
let browser

test.before(async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: install Debian's package (apt-get install chromium), as .ci/run does`)
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'demo-browser-'))
  fs.rmSync(SHOTS, { recursive: true, force: true })
  fs.mkdirSync(SHOTS, { recursive: true })
  port = await freePort()
  app = await DemoApp.start({ port, url: `file://${path.join(dir, 'sessions.db')}` })
  // Playwright gives each launch a fresh temporary profile (--user-data-dir).
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
})

test.after.always(async () => {
  if (browser) await browser.close()
  if (app) await app.stop()
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
})

const shot = (page, name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true })

// A new browser context (its own cookies), holding `cookies` at the start.
async function newPage(options = {}, cookies = []) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 640 }, ...options })
  // A page that never comes fails its step well within the test's timeout.
  context.setDefaultTimeout(10_000)
  await context.addCookies(cookies)
  return context.newPage()
}

async function signIn(page, { user, password, remember = false, screenshot }) {
  await page.goto(`${app.base}/login`)
  await page.fill('#username', user)
  await page.fill('#password', password)
  if (remember) await page.check('input[name=remember]')
  if (screenshot) await shot(page, screenshot)
  await Promise.all([page.waitForURL(`${app.base}/`), page.click('form[action="/login"] button')])
}

// The session id behind a context's cookie (signed: "s:<sid>.<signature>").
async function sessionIdOf(page) {
  const cookie = (await page.context().cookies()).find((c) => c.name === 'sid')
  const value = decodeURIComponent(cookie.value)
  return value.slice(2, value.lastIndexOf('.'))
}

const deviceRows = (page) => page.locator('tbody tr')

test.serial('two browsers as one user: the first sees both and revokes the second, which is sent to sign in', async (t) => {
  const first = await newPage()
  const second = await newPage({ userAgent: FIREFOX_ON_WINDOWS })

  await first.goto(`${app.base}/login`)
  await first.fill('#username', 'ada')
  await first.fill('#password', 'wrong')
  await first.click('form[action="/login"] button')
  t.regex(await first.locator('[role=alert]').innerText(), /Wrong user name or password/)
  await shot(first, '01-login-wrong-password')

  await signIn(first, { user: 'ada', password: 'lovelace', screenshot: '02-login' })
  // Plain HTTP here: not Secure (behind a TLS proxy it is, see the restart test).
  const cookies = await first.context().cookies()
  t.deepEqual(cookies.map((c) => [c.name, c.httpOnly, c.sameSite, c.secure]), [['sid', true, 'Lax', false]])
  t.regex(await first.locator('h1').innerText(), /Hello, ada/)
  await shot(first, '03-home')
  await signIn(second, { user: 'ada', password: 'lovelace', remember: true })

  await first.goto(`${app.base}/devices`)
  await shot(first, '04-devices-two')
  const rows = deviceRows(first)
  t.is(await rows.count(), 2)
  // The current device is marked, and the other one is the Firefox.
  const current = rows.filter({ has: first.locator('.badge') })
  t.is(await current.count(), 1)
  t.regex(await current.innerText(), /HeadlessChrome on Linux/)
  const other = rows.filter({ hasNot: first.locator('.badge') })
  t.regex(await other.innerText(), /Firefox on Windows[\s\S]*remembered[\s\S]*127\.0\.0\.1/)

  // Handles name the devices; no session id is in the page.
  const html = await first.content()
  for (const sid of [await sessionIdOf(first), await sessionIdOf(second)]) t.false(html.includes(sid), 'a session id is in the devices page')

  await Promise.all([first.waitForURL(`${app.base}/devices`), other.locator('button').click()])
  t.regex(await first.locator('[role=status]').innerText(), /That device is signed out/)
  t.is(await deviceRows(first).count(), 1)
  await shot(first, '05-devices-revoked')

  await second.goto(`${app.base}/devices`)
  t.is(second.url(), `${app.base}/login`)
  await shot(second, '06-revoked-device-at-login')

  await first.context().close()
  await second.context().close()
})

test.serial('sign out everywhere else ends the other sessions, not this one; the admin page counts them', async (t) => {
  // A user agent is the client's text: shown, never run as markup.
  const pages = [await newPage(), await newPage(), await newPage({ userAgent: `${FIREFOX_ON_WINDOWS} "><b id=injected>x</b>` })]
  for (const page of pages) await signIn(page, { user: 'grace', password: 'hopper' })
  const [mine, ...others] = pages
  await mine.goto(`${app.base}/devices`)
  t.is(await deviceRows(mine).count(), 3)
  t.is(await mine.locator('#injected').count(), 0)
  await Promise.all([mine.waitForURL(`${app.base}/devices`), mine.click('form[action="/devices/revoke-others"] button')])
  t.regex(await mine.locator('[role=status]').innerText(), /Signed out 2 other devices/)
  t.is(await deviceRows(mine).count(), 1)
  for (const page of others) {
    await page.goto(`${app.base}/`)
    t.is(page.url(), `${app.base}/login`)
  }

  // grace is no admin.
  const refused = await mine.goto(`${app.base}/admin`)
  t.is(refused.status(), 403)

  const admin = await newPage()
  await signIn(admin, { user: 'ada', password: 'lovelace' })
  await admin.goto(`${app.base}/admin`)
  await shot(admin, '07-admin')
  // Signed in now: grace once, ada once (her first browser of the test before).
  t.is(await admin.locator('#stat-users').innerText(), '2')
  t.true(Number(await admin.locator('#stat-sessions').innerText()) >= 3)
  // The two devices signed out just now, among the sessions that ended.
  t.true(Number(await admin.locator('#ended-everywhere').innerText()) >= 2)
  t.true(Number(await admin.locator('#ended-sessions').innerText()) >= 2)
  for (const page of [...pages, admin]) await page.context().close()
})

test.serial('a form posted without its CSRF token, or with a wrong one, is refused with 403', async (t) => {
  const page = await newPage()
  await signIn(page, { user: 'ada', password: 'lovelace' })

  for (const forge of ['remove', 'replace']) {
    await page.goto(`${app.base}/`)
    await page.evaluate((how) => {
      for (const input of document.querySelectorAll('input[name=_csrf]')) {
        if (how === 'remove') input.remove()
        else input.value = 'f'.repeat(input.value.length)
      }
    }, forge)
    const [response] = await Promise.all([page.waitForResponse(`${app.base}/logout`), page.click('form[action="/logout"] button')])
    t.is(response.status(), 403, `token ${forge}d`)
    if (forge === 'remove') await shot(page, '08-csrf-refused')
  }

  // Nothing happened: still signed in.
  await page.goto(`${app.base}/`)
  t.is(page.url(), `${app.base}/`)
  await page.context().close()
})

test.serial('remember me survives a server restart and a browser restart; a session without it ends with the browser', async (t) => {
  const remembered = await newPage()
  const plain = await newPage()
  await signIn(remembered, { user: 'ada', password: 'lovelace', remember: true })
  await signIn(plain, { user: 'grace', password: 'hopper' })

  // The store's policies: 30 days from sign-in with remember me, else 30 idle minutes.
  const endsIn = async (page) => Date.parse(await page.locator('time').getAttribute('datetime')) - Date.now()
  t.true((await endsIn(remembered)) > 29 * 86400_000)
  t.true((await endsIn(plain)) < 31 * 60_000)

  await app.stop()
  app = await DemoApp.start({ port, url: app.url, env: { TRUST_PROXY: '1' } })
  // Behind a proxy that terminated TLS, the cookie is Secure.
  const proxied = await fetch(`${app.base}/login`, { headers: { 'X-Forwarded-Proto': 'https' } })
  t.regex(proxied.headers.get('set-cookie'), /^sid=.*; HttpOnly; Secure; SameSite=Lax$/)

  // The file kept both sessions.
  for (const page of [remembered, plain]) {
    await page.reload()
    t.is(page.url(), `${app.base}/`)
  }
  t.regex(await remembered.locator('h1').innerText(), /Hello, ada/)
  await shot(remembered, '09-home-after-server-restart')

  // A browser restart keeps only cookies with an expiry.
  const reopen = async (page) => {
    const kept = (await page.context().cookies()).filter((c) => c.expires !== -1)
    const reopened = await newPage({}, kept)
    await reopened.goto(`${app.base}/`)
    return reopened
  }
  const rememberedAgain = await reopen(remembered)
  t.is(rememberedAgain.url(), `${app.base}/`)
  t.regex(await rememberedAgain.locator('h1').innerText(), /Hello, ada/)
  const plainAgain = await reopen(plain)
  t.is(plainAgain.url(), `${app.base}/login`)
  for (const page of [remembered, plain, rememberedAgain, plainAgain]) await page.context().close()
})
