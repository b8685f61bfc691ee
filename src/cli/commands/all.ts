import type { CommandDefinition } from '../program.js';
import { registerAudit } from './audit.js';
import { registerCircuit } from './circuit.js';
import { registerCompletion } from './completion.js';
import { registerDemo } from './demo.js';
import { registerDiscover } from './discover.js';
import { registerHelp } from './help.js';
import { registerInit } from './init.js';
import { registerInvoke } from './invoke.js';
import { registerNodes } from './nodes.js';
import { registerPki } from './pki.js';
import { registerRoute } from './route.js';
import { registerServe } from './serve.js';
import { registerStatus } from './status.js';
import { registerTrust } from './trust.js';

/**
 * Every top-level command, in the order `sark-fed --help` lists them. scripts/build.mjs builds one
 * bundle per name here (but `help` and `completion`, which read the whole tree), so the names
 * must be the command names and each module must export `register<Name>`.
 */
export const ALL_COMMANDS: readonly CommandDefinition[] = [
  ['init', registerInit],
  ['status', registerStatus],
  ['pki', registerPki],
  ['discover', registerDiscover],
  ['nodes', registerNodes],
  ['trust', registerTrust],
  ['route', registerRoute],
  ['invoke', registerInvoke],
  ['circuit', registerCircuit],
  ['audit', registerAudit],
  ['serve', registerServe],
  ['completion', registerCompletion],
  ['demo', registerDemo],
  ['help', registerHelp],
];
