#!/usr/bin/env node
// The `writ` command: runs the compiled CLI (npm install builds dist/ through the prepare script).
import { main } from '../dist/src/cli/main.js';

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(`ERR_INTERNAL: ${err && err.message ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
