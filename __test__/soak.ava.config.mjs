// The soak runs on its own after the other suites, so its load does not
// stretch the time bounds the fault tests check, and its RSS is its own.
export default {
  files: ['__test__/soak.test.js'],
  timeout: '5m',
  workerThreads: false,
}
