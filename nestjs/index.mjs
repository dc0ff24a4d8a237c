import nest from './index.js'

export const { SessionModule, SessionsService, SessionGuard, Public, FreshSession, CurrentUser, SESSION_STORE } = nest
