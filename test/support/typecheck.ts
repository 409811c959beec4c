import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

/**
 * Writes `source` as `<dir>/<name>.ts` and type-checks it as a consumer's strict project would (NodeNext, the DOM
 * for `fetch`, no ambient @types); answers the diagnostics as text, empty when it compiles. `skipLibCheck` only
 * where the test is not about the declarations themselves.
 *
 * @example expect(typecheck(dir, 'bad-call', source).length).toBeGreaterThan(0);
 */
export function typecheck(dir: string, name: string, source: string, options: { skipLibCheck?: boolean } = {}): string[] {
  const file = join(dir, `${name}.ts`);
  writeFileSync(file, source);
  const program = ts.createProgram([file], {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    allowImportingTsExtensions: true,
    skipLibCheck: options.skipLibCheck ?? false,
    types: [],
    lib: ['lib.es2022.d.ts', 'lib.dom.d.ts', 'lib.dom.iterable.d.ts', 'lib.dom.asynciterable.d.ts'],
  });
  return ts
    .getPreEmitDiagnostics(program)
    .map((d) => `${d.file ? d.file.fileName.replace(dir, '') : ''}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
}
