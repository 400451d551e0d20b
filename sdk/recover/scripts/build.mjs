// Writes dist/sinew-recover.umd.js from src/core.mjs: a plain <script> sets window.SinewRecover,
// CommonJS gets module.exports, AMD gets a module. No bundler: the output is the source wrapped.
//   node scripts/build.mjs          write the bundle
//   node scripts/build.mjs --check  exit 1 when the committed bundle is out of date
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { scriptBody, indent, writeOrCheck } from './wrap.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
const body = scriptBody(readFileSync(path.join(root, 'src', 'core.mjs'), 'utf8'), 'src/core.mjs');

const out = `/*! ${pkg.name} ${pkg.version} | ${pkg.license} | generated from src/core.mjs by scripts/build.mjs */
(function (root, factory) {
  if (typeof define === 'function' && define.amd) {
    define([], factory);
  } else if (typeof module === 'object' && module.exports) {
    module.exports = factory();
  } else {
    root.SinewRecover = factory();
  }
})(typeof self !== 'undefined' ? self : this, function () {
  'use strict';
${indent(body)}

  return { recover: recover, version: ${JSON.stringify(pkg.version)} };
});
`;

writeOrCheck(path.join(root, 'dist', 'sinew-recover.umd.js'), out, 'run npm run build in sdk/recover');
