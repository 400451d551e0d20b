// ESM entry: the adapter bound to the `spine` package the application imports.
import Spine from 'spine';
import { sync as syncWith, parseChange, applyChange, fetchModel } from './core.mjs';

/** Keeps Spine models in step with a Sinew channel. */
export function sync(options) {
  return syncWith({ ...options, spine: (options && options.spine) || Spine });
}

export { parseChange, applyChange, fetchModel };
export default { sync, parseChange, applyChange, fetchModel };
