import { InvalidArgumentError, Option } from 'commander';

/** An option parser for whole numbers within a range; commander reports the failure as usage. */
export function integerIn(min: number, max: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value))
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    const parsed = Number(value);
    if (parsed < min || parsed > max) {
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    }
    return parsed;
  };
}

/** Collects a repeatable option (`--dns a --dns b`) into an array. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Durations as CLI.md writes them: 500ms, 10s, 2m (a bare number is seconds). */
export function duration(value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!match) throw new InvalidArgumentError('expected a duration such as 500ms, 10s or 2m');
  const milliseconds = Number(match[1]) * (DURATION_UNITS[match[2] ?? 's'] as number);
  if (milliseconds <= 0 || milliseconds > 86_400_000) {
    throw new InvalidArgumentError('expected a duration above 0 and at most 24h');
  }
  return Math.round(milliseconds);
}

/**
 * A duration option whose help shows its default as the operator would type it ("10s"), not as
 * the milliseconds the command receives.
 */
export function durationOption(flags: string, description: string, defaultText: string): Option {
  return new Option(flags, description)
    .argParser(duration)
    .default(duration(defaultText), defaultText);
}

/**
 * A parser for host:port and [v6]:port; the port may be 0 (any free port). The example shown on a
 * bad value is the option's own, so that `--metrics` does not suggest the TLS port of `--listen`.
 */
export function hostPort(example: string) {
  return (value: string): { host: string; port: number } => {
    const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value.trim());
    const port = Number(match?.[3]);
    if (!match || port > 65535) {
      throw new InvalidArgumentError(`expected host:port with a port up to 65535, e.g. ${example}`);
    }
    return { host: (match[1] ?? match[2]) as string, port };
  };
}

/** `serve --listen`: the TLS address peers call. */
export const listenAddress = hostPort('127.0.0.1:8443');
