// Reads vitest's JSON report and prints "passed failed skipped". A test file that failed without any
// failed test in it (it did not load, or a hook threw) counts as one failure.
import { readFileSync } from 'node:fs';

const r = JSON.parse(readFileSync(process.argv[2], 'utf8'));
let failed = r.numFailedTests;
for (const f of r.testResults ?? []) {
  const failedInFile = (f.assertionResults ?? []).filter((a) => a.status === 'failed').length;
  if (f.status === 'failed' && failedInFile === 0) failed++;
}
console.log(r.numPassedTests, failed, (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0));
