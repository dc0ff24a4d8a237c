'use strict'

// lib/iso-date.js writes cookie.expires on a get instead of
// Date.prototype.toISOString: it must give the same text for every time.
const test = require('ava')
const { isoDate } = require('../lib/iso-date')
const { prng } = require('./helpers/prng')

const same = (t, ms) => t.is(isoDate(ms), new Date(ms).toISOString(), `at ${ms}`)

test('the same text as toISOString at the edges of days, months, leap years and the range', (t) => {
  const at = (text) => Date.parse(text)
  for (const text of [
    '1970-01-01T00:00:00.000Z',
    '1972-02-29T23:59:59.999Z',
    '1999-12-31T23:59:59.999Z',
    '2000-02-29T12:00:00.000Z',
    '2000-03-01T00:00:00.000Z',
    '2026-12-31T23:59:59.999Z',
    '2100-02-28T23:59:59.999Z',
    '2100-03-01T00:00:00.000Z',
    '2400-02-29T00:00:00.001Z',
    '9999-12-31T23:59:59.999Z',
  ]) {
    t.is(isoDate(at(text)), text)
    same(t, at(text) - 1)
    same(t, at(text) + 1)
  }
})

test('the same text as toISOString for 200,000 random times from 1970 to 9999', (t) => {
  const seed = Date.now() >>> 0
  const rnd = prng(seed)
  let mismatches = 0
  for (let i = 0; i < 200_000; i++) {
    const ms = Math.floor(rnd() * 253402300800000)
    if (isoDate(ms) !== new Date(ms).toISOString()) mismatches++
  }
  t.is(mismatches, 0, `seed ${seed}`)
})

test('outside that range, or not a whole ms, the text is toISOString\'s (or its RangeError)', (t) => {
  for (const ms of [-1, -86400001, 253402300800000, 8.64e15, 1.5, 1700000000000.25]) same(t, ms)
  t.throws(() => isoDate(NaN), { instanceOf: RangeError })
  t.throws(() => isoDate(Infinity), { instanceOf: RangeError })
})
