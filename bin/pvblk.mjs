#!/usr/bin/env node
// The pvblk command. The sources are TypeScript run as they are: register the loader, then start.
import './register.mjs';

await import('../src/cli/main.ts');
