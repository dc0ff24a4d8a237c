// Compile-only check of index.d.ts as an Express app uses it.
import express from 'express'
import session, { SessionData, Store } from 'express-session'
import {
  RedisSessionStore,
  RedisStore,
  RedisSessionStoreError,
  RedisSessionStoreOptions,
  ErrorCode,
  UserSession,
  SessionStats,
  SessionPolicy,
  DeviceInfo,
  captureDevice,
} from '../..'

declare module 'express-session' {
  interface SessionData {
    user?: string
  }
}

const options: RedisSessionStoreOptions = {
  url: 'redis://127.0.0.1:6379/0',
  prefix: 'myapp:',
  ttl: (sess: SessionData) => (sess.user ? 3600 : 60),
  scanCount: 200,
  commandTimeout: 500,
  connectTimeout: 500,
  serializer: { stringify: JSON.stringify, parse: JSON.parse },
  absoluteTimeout: 8 * 3600,
  idleTimeout: 0.5,
  maxSessionsPerUser: 3,
  userId: (sess: SessionData) => sess.user,
}
const withTls = new RedisSessionStore({ url: 'rediss://h:6380', tls: { ca: Buffer.from(''), cert: '', key: '', rejectUnauthorized: true, servername: 'redis.internal' } })
void withTls
const withLiveGauge = new RedisSessionStore({ url: 'memory://', metrics: { liveEvery: 60 } })
void withLiveGauge
// @ts-expect-error liveEvery is a number of seconds
new RedisSessionStore({ metrics: { liveEvery: '60' } })
const viaSentinel = new RedisSessionStore({ sentinel: { nodes: ['redis://h:26379'], name: 'mymaster' } })
void viaSentinel
const viaTlsSentinel = new RedisSessionStore({ sentinel: { nodes: ['rediss://:pw@h:26379'], name: 'mymaster', tls: true }, tls: { ca: '' } })
void viaTlsSentinel
const onCluster = new RedisSessionStore({ cluster: { nodes: ['redis://h:7000', 'redis://h:7001'] }, prefix: 'app:' })
void onCluster
const store = new RedisSessionStore(options)
const asBase: Store = store
const migrated: RedisSessionStore = new RedisStore({ ttl: 600, disableTouch: true })
new RedisSessionStore()

const app = express()
app.use(session({ store, secret: 's', resave: false, saveUninitialized: false, cookie: { maxAge: 60_000 } }))
app.use(session({ store: migrated, secret: ['new', 'old'], resave: false, saveUninitialized: false }))
app.use(captureDevice())
app.use(captureDevice({ ip: 'truncated', bind: 'userAgent', maxEntries: 1000 }))
app.use(captureDevice({ ip: false }))

// "My devices": the current one marked, another revoked by its handle.
app.get('/devices', async (req, res) => {
  const list: UserSession[] = await store.listUserSessions('ada')
  const current: string = store.handleOf(req.sessionID)
  res.json(list.map(({ handle, device }) => {
    const info: DeviceInfo | null = device
    return { handle, current: handle === current, userAgent: info?.userAgent ?? null, ip: info?.lastIp ?? null }
  }))
})
app.post('/devices/:handle/revoke', async (req, res) => {
  const revoked: boolean = await store.revokeUserSession('ada', req.params.handle)
  store.revokeUserSession('ada', req.params.handle, (err, done) => void (err ?? done))
  const recorded: boolean = await store.recordDevice(req.sessionID, { userAgent: 'x', ip: null })
  res.json({ revoked, recorded })
})

app.post('/login', (req, res, next) => {
  req.session.regenerate((err) => {
    if (err) return next(err)
    req.session.user = 'ada'
    res.json({ id: req.sessionID })
  })
})

async function admin(): Promise<void> {
  const sess: SessionData | null = await store.get('sid')
  if (sess) {
    const user: string | undefined = sess.user
    await store.set('sid', sess)
    await store.touch('sid', sess)
    void user
  }
  await store.destroy('sid')
  const all: Array<SessionData & { id: string }> = await store.all()
  const ids: string[] = await store.ids()
  const n: number = await store.length()
  await store.clear()
  await store.close()
  store.get('sid', (err, s) => void (err ?? s?.cookie.expires))
  store.destroy('sid', (err) => void err)
  void [all, ids, n]
}

// Active devices: list, log out the others, count.
async function devices(currentSid: string, userId: string | number): Promise<void> {
  const list: UserSession[] = await store.listUserSessions(userId)
  for (const { id, session, createdAt, lastAccess, expiresAt } of list) {
    const current: boolean = id === currentSid
    const who: string | undefined = session?.user
    const age: number = lastAccess.getTime() - createdAt.getTime()
    const left: number | null = expiresAt ? expiresAt.getTime() - Date.now() : null
    void [current, who, age, left]
  }
  const destroyed: number = await store.destroyUserSessions(userId, { except: currentSid })
  await store.destroyUserSessions(userId, { except: [currentSid, 'other'] })
  await store.destroyUserSessions(42)
  const stats: SessionStats = await store.stats({ activeWithin: 60 })
  const { indexed, skipped }: { indexed: number; skipped: number } = await store.reindex()
  void [indexed, skipped]
  const { sessions, users, active }: { sessions: number; users: number; active: number } = await store.stats()
  const idle: number | SessionPolicy<number> | undefined = store.idleTimeout
  const absolute: number | SessionPolicy<number> | undefined = store.absoluteTimeout
  const max: number | SessionPolicy<number> | undefined = store.maxSessionsPerUser
  const averageAge: number = stats.averageAge
  const oldest: Date | null = stats.oldestCreatedAt
  store.stats((err, s) => void [err, s?.averageAge])
  const { ended }: SessionStats = await store.stats({ endedWithin: 3600, activeWithin: 60 })
  const endedCounts: [number, number, number | undefined] | undefined = ended && [ended.sessions, ended.averageDuration, ended.byReason.logout]
  // @ts-expect-error not a reason
  void ended?.byReason.timeout
  // @ts-expect-error seconds, as a number
  void store.stats({ endedWithin: '60' })
  void endedCounts
  store.listUserSessions({ toString: () => 'objectid-hex' }, (err, list) => void [err, list?.length])
  void [destroyed, stats, sessions, users, active, idle, absolute, max, averageAge, oldest]
}

// Remember me and exclusive login for some users, per session.
export const policyStore = new RedisSessionStore({
  idleTimeout: (sess) => ((sess as { rememberMe?: boolean }).rememberMe ? undefined : 30 * 60),
  absoluteTimeout: (sess) => ((sess as { rememberMe?: boolean }).rememberMe ? 30 * 86400 : 24 * 3600),
  maxSessionsPerUser: (sess) => ((sess as { admin?: boolean }).admin ? 1 : undefined),
})

function report(err: unknown): ErrorCode | undefined {
  if (err instanceof RedisSessionStoreError) {
    const code: ErrorCode = err.code
    return code
  }
  return undefined
}

const prefix: string = store.prefix
const ttl: number | ((sess: SessionData) => number) = store.ttl

// @ts-expect-error ttl is seconds or a function, not a string
new RedisSessionStore({ ttl: '1d' })
// @ts-expect-error cluster nodes are a list of URLs
new RedisSessionStore({ cluster: { nodes: 'redis://h:7000' } })
// @ts-expect-error the store owns its connection: no client option
new RedisSessionStore({ client: {} })
// @ts-expect-error get returns a promise of a session, not a string
const wrong: Promise<string> = store.get('sid')
// @ts-expect-error maxSessionsPerUser is a number
new RedisSessionStore({ maxSessionsPerUser: '3' })
// @ts-expect-error userId is a function of the session, not a field name
new RedisSessionStore({ userId: 'userId' })
// @ts-expect-error a user id is a string or a number
store.listUserSessions({ id: 'ada' })
// @ts-expect-error except is a sid or an array of sids
store.destroyUserSessions('ada', { except: 5 })
// @ts-expect-error ip is 'full', 'truncated' or false
captureDevice({ ip: true })
// @ts-expect-error bind is 'userAgent' only
captureDevice({ bind: 'ip' })
// @ts-expect-error listUserSessions resolves to sessions with metadata, not bare sessions
const bare: Promise<SessionData[]> = store.listUserSessions('ada')

void [asBase, admin, devices, report, prefix, ttl, wrong, bare]
