import { InterruptedError, UsageError } from '../../core/errors.js';

export interface ConfirmRequest {
  /** The question, e.g. "Overwrite ca.pem and ca.key?" */
  message: string;
  /** What a script passes instead of answering, e.g. "--yes". */
  flag: string;
  /** What is being confirmed, for the error when no prompt is possible. */
  action: string;
}

export interface Prompter {
  confirm(request: ConfirmRequest): Promise<boolean>;
}

/**
 * Asks with @inquirer/prompts when a person is there; otherwise fails naming the flag that would
 * have answered, so a script learns what it forgot.
 */
export function createPrompter(options: {
  interactive: boolean;
  assumeYes: boolean;
  /** Read only when a prompt is shown. */
  input: () => NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
}): Prompter {
  const { interactive, assumeYes, input, output } = options;
  return {
    async confirm(request) {
      if (assumeYes) return true;
      if (!interactive) {
        throw new UsageError('CONFIRMATION_REQUIRED', `${request.action} needs confirmation`, {
          hint: `pass ${request.flag} to confirm without a prompt`,
        });
      }
      const { confirm } = await import('@inquirer/prompts');
      try {
        return await confirm(
          { message: request.message, default: false },
          { input: input(), output },
        );
      } catch (error) {
        if ((error as Error).name === 'ExitPromptError')
          throw new InterruptedError('prompt cancelled');
        throw error;
      }
    },
  };
}
