#!/usr/bin/env node
// A shim only: all work happens in the compiled CLI, loaded without doing anything at top level.
import { run } from '../dist/cli/main.js';

await run();
