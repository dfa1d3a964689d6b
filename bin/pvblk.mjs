#!/usr/bin/env node
// The pvblk command. The sources are TypeScript run as they are: register tsx's loader, then start.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
