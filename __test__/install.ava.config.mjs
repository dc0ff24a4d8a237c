// The registry install test runs on its own after the other suites: its
// release builds two binaries, which would stretch the fault tests' bounds.
export default {
  files: ['__test__/install.test.js'],
  timeout: '15m',
  workerThreads: false,
}
