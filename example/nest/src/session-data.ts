// What this app keeps in a session: typed once, seen by req.session,
// @CurrentUser() and the service.
declare module 'express-session' {
  interface SessionData {
    userId: string
    rememberMe: boolean
  }
}

export {}
