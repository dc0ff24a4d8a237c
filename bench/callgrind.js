'use strict'

// What bench/instructions.js and bench/http-instructions.js share: the
// valgrind arguments that count a node process's instructions, and the
// count read from valgrind's report.

// JIT-compiled code is written at run time: valgrind must check it.
const CALLGRIND = ['--tool=callgrind', '--callgrind-out-file=/dev/null', '--smc-check=all-non-file']

// The instruction count in valgrind's report `text`, or an error naming `what`.
function instructions(text, what) {
  const refs = /I\s+refs:\s+([\d,]+)/.exec(text)
  if (!refs) throw new Error(`no instruction count from valgrind (${what}):\n${text}`)
  return Number(refs[1].replace(/,/g, ''))
}

module.exports = { CALLGRIND, instructions }
