// Writes dist/sinew-spine.umd.js from src/core.mjs: a plain <script> sets window.SinewSpine,
// CommonJS gets module.exports, AMD gets a module. No bundler: the output is the source wrapped.
//   node scripts/build.mjs          write the bundle
//   node scripts/build.mjs --check  exit 1 when the committed bundle is out of date
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
const core = readFileSync(path.join(root, 'src', 'core.mjs'), 'utf8');
if (/^\s*import\s/m.test(core)) throw new Error('src/core.mjs must not import anything');
const body = core.replace(/^export (function|const) /gm, '$1 ').replace(/^\/\/.*\n/gm, (line, offset) => (offset < 200 ? '' : line));

const indent = (text) => text.split('\n').map((l) => (l ? `  ${l}` : l)).join('\n');
const out = `/*! ${pkg.name} ${pkg.version} | ${pkg.license} | generated from src/core.mjs by scripts/build.mjs */
(function (root, factory) {
  if (typeof define === 'function' && define.amd) {
    define(['spine'], factory);
  } else if (typeof module === 'object' && module.exports) {
    var spine;
    try {
      spine = require('spine');
    } catch (e) {
      spine = undefined;
    }
    module.exports = factory(spine);
  } else {
    root.SinewSpine = factory(root.Spine);
  }
})(typeof self !== 'undefined' ? self : this, function (Spine) {
  'use strict';
${indent(body.trimEnd())}

  function syncWithSpine(options) {
    var spine = (options && options.spine) || Spine || (typeof globalThis !== 'undefined' ? globalThis.Spine : undefined);
    return sync(Object.assign({}, options, { spine: spine }));
  }

  return { sync: syncWithSpine, parseChange: parseChange, applyChange: applyChange, fetchModel: fetchModel, version: ${JSON.stringify(pkg.version)} };
});
`;

const file = path.join(root, 'dist', 'sinew-spine.umd.js');
if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(file, 'utf8');
  } catch {
    // missing counts as out of date
  }
  if (current !== out) {
    console.error('dist/sinew-spine.umd.js is out of date: run npm run build in sdk/spine');
    process.exit(1);
  }
} else {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, out);
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}
