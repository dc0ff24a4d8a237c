import cjs from './index.js'

export const { RedisSessionStore, RedisStore, RedisSessionStoreError, captureDevice } = cjs
