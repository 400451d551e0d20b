// ESM entry of sinew-recover (the same code as the UMD bundle in dist/).
import { recover } from './core.mjs';

export { recover };
export default { recover };
