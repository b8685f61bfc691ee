import { Option, type Command } from 'commander';
import type { InvocationEvent, InvocationResult } from '../../core/routing/invocation.js';
import type { InvokeCall } from '../../core/routing/invoker.js';
import { action } from '../action.js';
import { completeWith, KNOWN_NODES } from '../completion/values.js';
import type { CommandContext } from '../context.js';
import { withExamples } from '../help-text.js';
import { durationOption, integerIn } from '../options.js';
import type { CliIo } from '../output/output.js';
import { withNode } from './shared.js';

interface InvokeOptions {
  node?: string;
  principal?: string;
  args?: string;
  timeout: number;
  retries?: number;
  correlationId?: string;
}

/** Arguments read from a file or stdin beyond this are refused before anything is sent. */
const MAX_ARGUMENTS_BYTES = 16 * 1024 * 1024;
const MAX_ARGUMENTS_SIZE = '16 MiB';

export function registerInvoke(program: Command, io: CliIo): void {
  const invoke = program
    .command('invoke')
    .description(
      'call a capability of a resource on the best node that offers it, over mutual TLS, and ' +
        'verify the signed receipt',
    )
    .argument('<resource>', 'resource ID')
    .argument('<capability>', 'capability ID')
    .addOption(
      completeWith(new Option('--node <node>', 'call this node, skipping routing'), KNOWN_NODES),
    )
    .option('--principal <id>', 'on whose behalf (default: your user name @ this node)')
    .option('--args <json|@file|->', 'arguments: JSON text, @file holding JSON, or - for stdin')
    .addOption(
      durationOption(
        '--timeout <duration>',
        'deadline for the whole call, retries included',
        '30s',
      ),
    )
    .option(
      '--retries <n>',
      'retries per node after the first attempt (default 2); only where safe',
      integerIn(0, 10),
    )
    .option('--correlation-id <uuid>', 'correlation ID to use (default: a new one)')
    .action(
      action<InvokeOptions>(io, async (context, options, [resource, capability]) => {
        const call = await prepareCall(context, options, resource as string, capability as string);
        const { call: sent, result } = await run(context, options, call);
        render(context, sent, result);
      }),
    );
  invoke.addHelpText(
    'after',
    [
      '',
      'Retries: exponential backoff with full jitter (100 ms base, 2 s cap) within',
      '--timeout, only when the call cannot have run (not sent, refused before running)',
      'or the capability is idempotent; then the next node of the route. The',
      'correlation ID goes to stderr, the result to stdout. Exit codes: 3 untrusted',
      'peer or bad receipt, 4 unknown resource, 5 no route, circuit open or timeout, 6',
      'denied or rate limited, 1 any other failure.',
    ].join('\n'),
  );
  withExamples(invoke, [
    ['Call echo on the best node', `sark-fed invoke echo echo --args '{"hello":"world"}'`],
    [
      'Arguments from a file, on a named node',
      'sark-fed invoke inventory lookup --args @query.json --node node-b',
    ],
    [
      'Arguments from stdin, the result for jq',
      `echo '{"sku":42}' | sark-fed invoke inventory lookup --args - | jq .`,
    ],
    ['The whole answer with its receipt', 'sark-fed invoke echo echo --args 1 --json'],
  ]);
}

async function prepareCall(
  context: CommandContext,
  options: InvokeOptions,
  resource: string,
  capability: string,
): Promise<Omit<InvokeCall, 'principal'> & { principal: string | undefined }> {
  const { assertResourceId, normalizeCorrelationId } =
    await import('../../core/routing/identifiers.js');
  const { assertNodeId } = await import('../../core/identity/spiffe.js');
  const { UsageError } = await import('../../core/errors.js');
  const { newCorrelationId } = await import('../../core/protocol/ids.js');
  assertResourceId(resource, 'resource');
  assertResourceId(capability, 'capability');
  if (options.node !== undefined) assertNodeId(options.node);
  if (
    options.principal !== undefined &&
    // The rule of the wire (principalId in schemas.ts), without loading zod for it.
    (options.principal === '' ||
      options.principal.length > 512 ||
      /[\u0000-\u001f\u007f-\u009f]/.test(options.principal))
  ) {
    throw new UsageError(
      'BAD_PRINCIPAL',
      'a principal is 1 to 512 characters, none of them a control character',
      { hint: 'e.g. --principal alice@org-a.example' },
    );
  }
  return {
    resource,
    capability,
    principal: options.principal,
    arguments: options.args === undefined ? null : await readArguments(context, options.args),
    correlationId:
      options.correlationId === undefined
        ? newCorrelationId()
        : normalizeCorrelationId(options.correlationId),
  };
}

/** --args: JSON text, @file, or - (stdin). Anything that is not JSON is a usage error. */
async function readArguments(context: CommandContext, value: string): Promise<unknown> {
  const { UsageError, errnoOf } = await import('../../core/errors.js');
  const { describeJsonError } = await import('../../node/config-file.js');
  // Each source has its own remedy: shell quoting only concerns JSON given inline.
  let text: string;
  let source: string;
  let empty: { message: string; hint: string };
  let hint: string;
  if (value === '-') {
    source = 'stdin';
    // At a terminal, reading stdin looks like a hang unless the person is told to type.
    if (context.io.stdin.isTTY === true) {
      context.output.info('reading the arguments from stdin; end with Ctrl-D on a new line');
    }
    text = await readStdin(context);
    empty = {
      message: 'no arguments on stdin: it was empty',
      hint: `send JSON on stdin, e.g. echo '{"key":"value"}' | sark-fed invoke … --args -, or leave --args out for null`,
    };
    hint = 'send one JSON value on stdin, e.g. {"key":"value"}';
  } else if (value.startsWith('@')) {
    const path = value.slice(1);
    if (path === '') {
      throw new UsageError('BAD_ARGS', '--args @ names no file', {
        hint: 'give a file name after @, e.g. --args @query.json',
      });
    }
    source = path;
    const { readFileSync, statSync } = await import('node:fs');
    try {
      if (statSync(path).size > MAX_ARGUMENTS_BYTES) throw new RangeError('too large');
      text = readFileSync(path, 'utf8');
    } catch (error) {
      throw error instanceof RangeError
        ? new UsageError('BAD_ARGS', `${path} is larger than ${MAX_ARGUMENTS_SIZE}`, {
            hint: 'send less at once',
          })
        : new UsageError('BAD_ARGS', `cannot read arguments from ${path} (${errnoOf(error)})`, {
            hint: 'give --args @file with a readable JSON file',
          });
    }
    empty = {
      message: `the arguments file ${path} is empty`,
      hint: `write one JSON value in it, e.g. {"key":"value"}, or leave --args out for null`,
    };
    hint = `--args @file reads JSON only (not YAML): write ${path} as JSON, e.g. {"key":"value"}`;
  } else {
    source = '--args';
    text = value;
    empty = {
      message: '--args is empty',
      hint: `give JSON, e.g. --args '{"key":"value"}', or leave --args out for null`,
    };
    hint = `quote JSON for the shell, e.g. --args '{"key":"value"}', or use --args @file`;
  }
  if (text.trim() === '') throw new UsageError('BAD_ARGS', empty.message, { hint: empty.hint });
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new UsageError(
      'BAD_ARGS',
      `the arguments from ${source} are not JSON: ${describeJsonError(error, text)}`,
      { hint },
    );
  }
}

async function readStdin(context: CommandContext): Promise<string> {
  const { UsageError } = await import('../../core/errors.js');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of context.io.stdin) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += buffer.length;
    if (size > MAX_ARGUMENTS_BYTES) {
      throw new UsageError('BAD_ARGS', `the arguments on stdin exceed ${MAX_ARGUMENTS_SIZE}`, {
        hint: 'send less at once',
      });
    }
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function run(
  context: CommandContext,
  options: InvokeOptions,
  prepared: Omit<InvokeCall, 'principal'> & { principal: string | undefined },
): Promise<{ call: InvokeCall; result: InvocationResult }> {
  const { invoke } = await import('../../core/routing/invocation.js');
  const { openRoutingSession } = await import('../../core/routing/session.js');
  const { DEFAULT_BACKOFF, realSleep } = await import('../../core/routing/retry.js');
  const { SarkError } = await import('../../core/errors.js');
  return withNode(context, async ({ store, identity, privateKey }) => {
    const call: InvokeCall = {
      ...prepared,
      principal: prepared.principal ?? (await defaultPrincipal(context, identity.nodeId)),
    };
    const session = openRoutingSession({
      store,
      identity,
      privateKey,
      now: context.now,
      env: context.io.env,
      timeoutMs: options.timeout,
    });
    const spinner = await context.output.spinner(
      `invoking ${call.resource}/${call.capability}${options.node ? ` on ${options.node}` : ''}`,
    );
    try {
      const result = await invoke(call, {
        store,
        identity,
        transport: session.transport,
        breakers: session.breakers,
        deadline: session.deadline,
        backoff: {
          ...DEFAULT_BACKOFF,
          ...(options.retries === undefined ? {} : { attempts: options.retries + 1 }),
        },
        random: Math.random,
        sleep: realSleep,
        now: context.now,
        node: options.node,
        onEvent: (event) => describe(context, event),
      });
      spinner.stop();
      announce(context, call.correlationId);
      return { call, result };
    } catch (error) {
      spinner.stop();
      announce(context, call.correlationId);
      // With --json the error is one JSON document on stderr, and --quiet leaves only the error
      // and its hint: either way the ID, the one handle on the failed call, travels in the hint.
      const { json, quiet } = context.output.options;
      if ((json || quiet) && error instanceof SarkError) {
        throw new SarkError(error.kind, error.code, error.message, {
          cause: error.cause,
          hint: `${error.hint ?? 'see the audit trail'} (correlation ID ${call.correlationId})`,
        });
      }
      throw error;
    } finally {
      await session.close();
    }
  });
}

/** The correlation ID on stderr, whatever happened: the key to both nodes' audit trails. */
function announce(context: CommandContext, correlationId: string): void {
  if (!context.output.json) context.output.info(`correlation ID: ${correlationId}`);
}

async function defaultPrincipal(context: CommandContext, nodeId: string): Promise<string> {
  const { userInfo } = await import('node:os');
  let user: string | undefined;
  try {
    user = userInfo().username;
  } catch {
    // A uid without a passwd entry (containers): fall back to what the shell says.
    user = context.io.env.USER ?? context.io.env.LOGNAME;
  }
  return `${user || 'unknown'}@${nodeId}`;
}

function describe(context: CommandContext, event: InvocationEvent): void {
  const { output } = context;
  switch (event.type) {
    case 'route':
      output.debug(
        `route: ${
          event.route.candidates
            .filter((candidate) => candidate.rank !== null)
            .map((candidate) => candidate.nodeId)
            .join(', ') || 'none'
        }`,
      );
      break;
    case 'attempt': {
      const { outcome } = event;
      const ms = Math.round(outcome.durationUs / 1000);
      output.debug(
        `attempt ${event.attempt} on ${event.nodeId}: ${
          outcome.error === null ? 'ok' : `${outcome.errorCode ?? outcome.error.code}`
        }${outcome.status === null ? '' : ` (HTTP ${outcome.status})`} in ${ms} ms`,
      );
      break;
    }
    case 'circuit-open':
      output.debug(`circuit to ${event.nodeId} refuses calls until ${event.retryAt}`);
      break;
    case 'wait':
      output.debug(`waiting ${event.ms} ms before retrying ${event.nodeId}`);
      break;
  }
}

function render(context: CommandContext, call: InvokeCall, result: InvocationResult): void {
  const { response } = result;
  if (context.output.json) {
    context.output.writeJson({
      correlationId: result.correlationId,
      node: result.nodeId,
      resource: call.resource,
      capability: call.capability,
      principal: call.principal,
      success: response.success,
      result: response.result ?? null,
      durationMs: response.duration_ms,
      attempts: result.attempts,
      receipt: response.receipt,
    });
    return;
  }
  // A person reads indented JSON; a pipe gets the result as one line of JSON, ready for jq.
  const value = response.result ?? null;
  context.output.line(
    context.output.stdoutIsTTY ? JSON.stringify(value, null, 2) : JSON.stringify(value),
  );
}
