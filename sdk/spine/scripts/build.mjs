// Writes, from src/core.mjs and sinew-recover's source (../recover/src/core.mjs):
// - src/recover.mjs: a copy of sinew-recover for the ESM entry (so sinew-spine needs no other package);
// - dist/sinew-spine.umd.js: a plain <script> sets window.SinewSpine, CommonJS gets
//   module.exports, AMD gets a module. No bundler: the output is the sources wrapped.
//   node scripts/build.mjs          write both
//   node scripts/build.mjs --check  exit 1 when a committed file is out of date
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { scriptBody, indent, writeOrCheck } from '../../recover/scripts/wrap.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const recoverRoot = path.resolve(root, '..', 'recover');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
const recoverPkg = JSON.parse(readFileSync(path.join(recoverRoot, 'package.json'), 'utf8'));
const recoverSource = readFileSync(path.join(recoverRoot, 'src', 'core.mjs'), 'utf8');
const body = scriptBody(readFileSync(path.join(root, 'src', 'core.mjs'), 'utf8'), 'src/core.mjs');
const recoverBody = scriptBody(recoverSource, '../recover/src/core.mjs');
const hint = 'run npm run build in sdk/spine';

const copy = `// GENERATED from sdk/recover/src/core.mjs (${recoverPkg.name} ${recoverPkg.version}) by scripts/build.mjs: edit that file, not this one.\n${recoverSource}`;
writeOrCheck(path.join(root, 'src', 'recover.mjs'), copy, hint);

const out = `/*! ${pkg.name} ${pkg.version} | ${pkg.license} | generated from src/core.mjs and ${recoverPkg.name} ${recoverPkg.version} by scripts/build.mjs */
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
  // ${recoverPkg.name} ${recoverPkg.version}, in its own scope.
  var SinewRecover = (function () {
${indent(recoverBody, '    ')}

    return { recover: recover };
  })();

${indent(body)}

  function syncWithSpine(options) {
    var spine = (options && options.spine) || Spine || (typeof globalThis !== 'undefined' ? globalThis.Spine : undefined);
    return sync(Object.assign({}, options, { spine: spine }), { recover: SinewRecover.recover });
  }

  return {
    sync: syncWithSpine,
    parseChange: parseChange,
    applyChange: applyChange,
    fetchModel: fetchModel,
    recover: SinewRecover.recover,
    version: ${JSON.stringify(pkg.version)},
  };
});
`;
writeOrCheck(path.join(root, 'dist', 'sinew-spine.umd.js'), out, hint);
