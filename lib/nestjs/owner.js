'use strict'

// The signed-in user of a request: the store's own `userId(session)`, so the
// guard, the decorators and the service agree with the indexes.
function ownerOf(req, store) {
  if (!req.session) return undefined
  const id = store.userId(req.session)
  return id === undefined || id === null || id === '' ? undefined : id
}

module.exports = { ownerOf }
