'use strict'

// Two digits for 0..99.
const D2 = Array.from({ length: 100 }, (_, i) => (i < 10 ? '0' : '') + i)

// Date.prototype.toISOString for epoch ms in years 1970..9999, about twice
// as fast: V8 formats it through a printf, and a get refreshes
// cookie.expires on almost every request (see _refreshExpires in index.js).
// The civil date from days since the epoch is Howard Hinnant's
// civil_from_days; other times fall back to Date.
function isoDate(ms) {
  if (!(ms >= 0 && ms < 253402300800000) || ms !== Math.floor(ms)) return new Date(ms).toISOString()
  const days = Math.floor(ms / 86400000)
  let rest = ms - days * 86400000
  const z = days + 719468
  const era = Math.floor(z / 146097)
  const doe = z - era * 146097
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365)
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100))
  const mp = Math.floor((5 * doy + 2) / 153)
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1
  const month = mp < 10 ? mp + 3 : mp - 9
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0)
  const h = Math.floor(rest / 3600000)
  rest -= h * 3600000
  const m = Math.floor(rest / 60000)
  rest -= m * 60000
  const s = Math.floor(rest / 1000)
  const milli = rest - s * 1000
  const ms3 = milli < 10 ? '00' + milli : milli < 100 ? '0' + milli : '' + milli
  return year + '-' + D2[month] + '-' + D2[day] + 'T' + D2[h] + ':' + D2[m] + ':' + D2[s] + '.' + ms3 + 'Z'
}

module.exports = { isoDate }
