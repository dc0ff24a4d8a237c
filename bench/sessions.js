'use strict'

// Realistic express-session objects of a target JSON size: the cookie as
// express-session stores it, a user, a CSRF secret, then preferences, a cart
// and recently viewed items until the size is reached.
const { prng } = require('../__test__/helpers/prng')

const DAY_MS = 86400e3

const ALPHA = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_'
function token(rnd, n) {
  let s = ''
  for (let i = 0; i < n; i++) s += ALPHA[(rnd() * 64) | 0]
  return s
}
const WORDS = ['blue', 'cotton', 'shirt', 'linen', 'oak', 'table', 'lamp', 'steel', 'mug', 'wool', 'scarf', 'desk', 'chair', 'green', 'large', 'small']
function words(rnd, n) {
  const out = []
  for (let i = 0; i < n; i++) out.push(WORDS[(rnd() * WORDS.length) | 0])
  return out.join(' ')
}

function cookie() {
  return { originalMaxAge: DAY_MS, expires: new Date(Date.now() + DAY_MS), httpOnly: true, path: '/' }
}

function makeSession(targetBytes, seed) {
  const rnd = prng(seed * 7919 + targetBytes)
  const sess = {
    cookie: cookie(),
    user: { id: 100000 + seed, name: `user${seed}`, role: 'member' },
    csrfSecret: token(rnd, 24),
  }
  const size = () => JSON.stringify(sess).length
  // Grow step by step, stopping as soon as the target is reached.
  const steps = [
    () => (sess.lastSeen = Date.now()),
    () => (sess.preferences = { lang: 'en-GB', theme: 'dark', currency: 'EUR', tz: 'Europe/Berlin' }),
    () => {
      sess.flash = []
      sess.cart = []
      sess.recentlyViewed = []
    },
  ]
  for (const step of steps) {
    if (size() >= targetBytes) return sess
    step()
  }
  // Each array element adds its JSON plus a comma: count instead of re-serialising.
  let bytes = size()
  let n = 0
  while (bytes < targetBytes) {
    let item
    if (n % 3 === 2) {
      item = { sku: `SKU-${token(rnd, 8)}`, at: Date.now() - ((rnd() * 1e7) | 0) }
      sess.recentlyViewed.push(item)
    } else {
      item = { sku: `SKU-${token(rnd, 8)}`, title: words(rnd, 4), qty: 1 + ((rnd() * 3) | 0), price: Math.round(rnd() * 10000) / 100 }
      sess.cart.push(item)
    }
    bytes += JSON.stringify(item).length + 1
    n++
  }
  return sess
}

// Label for a size in bytes: 200 B, 2 KB, 20 KB.
function sizeLabel(bytes) {
  return bytes >= 1000 ? `${Math.round(bytes / 100) / 10} KB`.replace('.0 KB', ' KB') : `${bytes} B`
}

module.exports = { makeSession, sizeLabel, DAY_MS }
