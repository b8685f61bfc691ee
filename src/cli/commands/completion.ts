import { Argument, type Command } from 'commander';
import { withExamples, type Example } from '../help-text.js';
import type { Shell } from '../completion/generate.js';
import type { CliIo } from '../output/output.js';

/**
 * How to install each shell's script: shown by `completion --help` and atop the scripts. The
 * folders in a home directory need not exist yet (on a fresh account they do not), so those
 * lines make them; the system folders come with the shell or bash-completion, which read them.
 */
export function installExamples(name: string): Record<Shell, Example[]> {
  const bashUser = '~/.local/share/bash-completion/completions';
  const fishUser = '~/.config/fish/completions';
  return {
    bash: [
      ['bash, for all users', `${name} completion bash > /etc/bash_completion.d/${name}`],
      [
        'bash, for yourself',
        `mkdir -p ${bashUser} && ${name} completion bash > ${bashUser}/${name}`,
      ],
    ],
    zsh: [
      [
        'zsh: into the first folder of $fpath, then start a new shell',
        `${name} completion zsh > "\${fpath[1]}/_${name}"`,
      ],
    ],
    fish: [['fish', `mkdir -p ${fishUser} && ${name} completion fish > ${fishUser}/${name}.fish`]],
  };
}

/** `completion <shell>`: a completion script generated from the whole command tree. */
export function registerCompletion(program: Command, io: CliIo): void {
  const command = program
    .command('completion')
    .description('print a shell completion script (bash, zsh or fish) to stdout')
    .addArgument(
      new Argument('<shell>', 'the shell to complete for').choices(['bash', 'zsh', 'fish']),
    )
    .action(async (shell: Shell, _options: object, self: Command) => {
      // Loaded only when a script is asked for, so that --help stays cheap.
      const { completionScript } = await import('../completion/generate.js');
      let root = self;
      while (root.parent) root = root.parent;
      io.stdout.write(completionScript(root, shell));
    });
  withExamples(command, Object.values(installExamples(program.name())).flat());
}
