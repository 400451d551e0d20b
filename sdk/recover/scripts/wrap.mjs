// Turns an import-free ES module (src/core.mjs) into plain script text for a UMD wrapper: drops
// the leading comment block and the `export` keywords. Used by this package's build and by
// sinew-spine's, which bundles sinew-recover.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';

export function scriptBody(source, file) {
  if (/^\s*import\s/m.test(source)) throw new Error(`${file} must not import anything`);
  const lines = source.split('\n');
  let start = 0;
  while (start < lines.length && lines[start].startsWith('//')) start += 1;
  return lines
    .slice(start)
    .join('\n')
    .replace(/^export (function|const) /gm, '$1 ')
    .trim();
}

export const indent = (text, pad = '  ') => text.split('\n').map((l) => (l ? pad + l : l)).join('\n');

/** Writes `file`, or with --check exits 1 when the committed file differs from `text`. */
export function writeOrCheck(file, text, hint) {
  if (process.argv.includes('--check')) {
    let committed = '';
    try {
      committed = readFileSync(file, 'utf8');
    } catch {
      // missing counts as out of date
    }
    if (committed !== text) {
      console.error(`${path.relative(process.cwd(), file)} is out of date: ${hint}`);
      process.exitCode = 1;
    }
    return;
  }
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}
