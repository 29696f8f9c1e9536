// The type check and the lint of `npm test` in one process, on one TypeScript program: what
// `tsc -p tsconfig.json --noEmit` reports, then what `eslint .` reports, with the typed lint rules
// given the program the type check built and checked (parserOptions.programs) in place of the
// project service eslint.config.js names, which would build and check the same program again
// (~13 s of CPU). The program is the one tsconfig.json describes, as for `npm run typecheck`;
// every file eslint.config.js lints with types is in it, as the project service requires too.
// `npm run typecheck` and `npm run lint` stay the two commands on their own.
// Prints each one's report under its name; exits non-zero when either failed.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import ts from 'typescript';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(ROOT);

const host = {
  getCanonicalFileName: (name) => (ts.sys.useCaseSensitiveFileNames ? name : name.toLowerCase()),
  getCurrentDirectory: () => ts.sys.getCurrentDirectory(),
  getNewLine: () => ts.sys.newLine,
};

/** tsc's own report: pretty on a terminal, plain otherwise, as tsc chooses. */
function formatDiagnostics(diagnostics) {
  return ts.sys.writeOutputIsTTY?.() ? ts.formatDiagnosticsWithColorAndContext(diagnostics, host) : ts.formatDiagnostics(diagnostics, host);
}

function typecheck() {
  let fatal;
  const parsed = ts.getParsedCommandLineOfConfigFile(path.join(ROOT, 'tsconfig.json'), { noEmit: true }, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (diagnostic) => (fatal = diagnostic),
  });
  if (parsed === undefined) return { program: undefined, diagnostics: fatal === undefined ? [] : [fatal] };
  const program = ts.createProgram({
    rootNames: parsed.fileNames,
    options: parsed.options,
    projectReferences: parsed.projectReferences,
    configFileParsingDiagnostics: ts.getConfigFileParsingDiagnostics(parsed),
  });
  // what tsc reports before it would emit: tsconfig.json's, the options', syntax, types
  return { program, diagnostics: ts.getPreEmitDiagnostics(program) };
}

let started = Date.now();
const { program, diagnostics } = typecheck();
const typeErrors = diagnostics.filter((diagnostic) => diagnostic.category === ts.DiagnosticCategory.Error);
const typecheckOk = typeErrors.length === 0 && program !== undefined;
process.stdout.write(`── typecheck (tsc -p tsconfig.json --noEmit): ${typecheckOk ? 'ok' : 'failed'}, ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
if (diagnostics.length > 0) process.stdout.write(formatDiagnostics(diagnostics));
if (typeErrors.length > 0) process.stdout.write(`\nFound ${typeErrors.length} error${typeErrors.length === 1 ? '' : 's'}.\n`);

started = Date.now();
let lintOk = false;
let report;
try {
  // without a program (tsconfig.json unreadable) the lint builds its own, as `eslint .` does
  const eslint = new ESLint(program === undefined ? {} : {
    overrideConfig: { files: ['**/*.ts'], languageOptions: { parserOptions: { projectService: false, programs: [program] } } },
  });
  const results = await eslint.lintFiles(['.']);
  const formatter = await eslint.loadFormatter('stylish');
  report = await formatter.format(results);
  lintOk = results.every((result) => result.errorCount === 0 && result.fatalErrorCount === 0);
} catch (error) {
  report = `${error instanceof Error ? error.stack : String(error)}\n`;
}
process.stdout.write(`── lint (eslint .): ${lintOk ? 'ok' : 'failed'}, ${((Date.now() - started) / 1000).toFixed(1)} s\n${report}`);
process.exit(typecheckOk && lintOk ? 0 : 1);
