// Writes the completion scripts shipped in completions/ (`npm run completions`, after a build).
// They come from the built CLI itself, `sark-fed completion <shell>`, so they match what users
// would generate; test/unit/completion.test.ts fails when they are out of date.
import { writeFileSync } from 'node:fs';
import { main } from '../dist/cli/main.js';

const files = { bash: 'sark-fed.bash', zsh: '_sark-fed', fish: 'sark-fed.fish' };

for (const [shell, file] of Object.entries(files)) {
  let script = '';
  const io = {
    stdin: process.stdin,
    stdout: { write: (chunk) => (script += chunk) },
    stderr: process.stderr,
    env: {},
  };
  const exitCode = await main(['node', 'sark-fed', 'completion', shell], io);
  if (exitCode !== 0) throw new Error(`sark-fed completion ${shell} exited with ${exitCode}`);
  const path = new URL(`../completions/${file}`, import.meta.url);
  writeFileSync(path, script);
  process.stdout.write(`wrote completions/${file}\n`);
}
