// The last lines of a long run are what a CI log keeps when it keeps only a part: at the end, just
// before Jest's totals, one line per failing test (its file, its name, the first line of its error)
// and one per file that failed outside any test (a beforeAll, a syntax error), so a failure is never
// only in the middle of 80 minutes of output.
import { relative } from 'node:path';
import { stripVTControlCharacters } from 'node:util';

const firstLine = (text) =>
  // Jest's messages carry colour codes and start with the test's name on a line of its own.
  stripVTControlCharacters(text ?? '')
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l && !l.startsWith('●')) ?? '';

export default class FailuresReporter {
  constructor(globalConfig) {
    this.rootDir = globalConfig.rootDir;
  }

  onRunComplete(_contexts, results) {
    const lines = [];
    for (const file of results.testResults) {
      const path = relative(this.rootDir, file.testFilePath);
      const failed = file.testResults.filter((t) => t.status === 'failed');
      for (const t of failed)
        lines.push(
          `FAILED ${path} › ${t.fullName}: ${firstLine(t.failureMessages.join('\n')).slice(0, 240)}`,
        );
      if (failed.length === 0 && (file.testExecError || file.failureMessage))
        lines.push(
          `FAILED ${path} (outside a test): ${firstLine(file.testExecError?.message ?? file.failureMessage).slice(0, 240)}`,
        );
    }
    if (lines.length > 0) process.stderr.write(`\n${lines.length} failing:\n${lines.join('\n')}\n`);
  }
}
