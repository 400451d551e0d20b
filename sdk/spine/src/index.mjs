// ESM entry: the adapter bound to the `spine` package the application imports, with sinew-recover
// (src/recover.mjs, a copy scripts/build.mjs keeps in step with sdk/recover) for reconnects.
import Spine from 'spine';
import { sync as syncWith, parseChange, applyChange, fetchModel } from './core.mjs';
import { recover } from './recover.mjs';

/** Keeps Spine models in step with a Sinew channel. */
export function sync(options) {
  return syncWith({ ...options, spine: (options && options.spine) || Spine }, { recover });
}

export { parseChange, applyChange, fetchModel, recover };
export default { sync, parseChange, applyChange, fetchModel, recover };
