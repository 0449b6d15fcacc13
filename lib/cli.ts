#!/usr/bin/env node
// The thread pool size and the heap limits hold only if set before anything else is loaded (parsing the
// modules alone grows the heap), so the commands are loaded after them.
import './small-heap.js';

await import('./cli-commands.js');
