// How pvblk's processes load their TypeScript: tsx's loader, with its function-name helper made a
// no-op for our own sources (see names-hook.mjs). bin/pvblk.mjs imports this first; so can any
// script (`node --import ./bin/register.mjs …`) that should run the code as pvblk's processes do.
import { register as registerHooks } from 'node:module';
import { register } from 'tsx/esm/api';

register();
// registered after tsx's, so it runs first and post-processes what tsx's loader returns
registerHooks('./names-hook.mjs', import.meta.url);
