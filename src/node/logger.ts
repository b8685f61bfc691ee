/** The daemon's log: one event per line on a stream (stderr), as JSON or as text for a person. */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export interface LoggerOptions {
  now?: () => Date;
  /** Warnings and errors only (`serve --quiet`): no line per request, no start and stop lines. */
  quiet?: boolean;
}

type Level = 'info' | 'warn' | 'error';

function leveledLogger(
  options: LoggerOptions,
  write: (time: Date, level: Level, message: string, fields?: Record<string, unknown>) => void,
): Logger {
  const now = options.now ?? (() => new Date());
  return {
    info:
      options.quiet === true
        ? () => {}
        : (message, fields) => write(now(), 'info', message, fields),
    warn: (message, fields) => write(now(), 'warn', message, fields),
    error: (message, fields) => write(now(), 'error', message, fields),
  };
}

/** JSON lines, for log collectors and scripts: `{"time","level","msg",...fields}`. */
export function jsonLogger(
  stream: { write(chunk: string): unknown },
  options: LoggerOptions = {},
): Logger {
  return leveledLogger(options, (time, level, message, fields) => {
    stream.write(
      `${JSON.stringify({ time: time.toISOString(), level, msg: message, ...fields })}\n`,
    );
  });
}

/** How a text log line is coloured on a terminal (identity functions elsewhere). */
export interface LogStyles {
  dim(text: string): string;
  yellow(text: string): string;
  red(text: string): string;
}

/**
 * The same events as text, for a person watching `serve` in a terminal: the time, the level, the
 * message, then the fields as key=value (logfmt: a value with a space, a quote or an "=" is
 * quoted; objects and arrays are written as compact JSON).
 *   2026-11-26T14:52:01.123Z INFO  listening address=127.0.0.1 port=8443 node_id=node-a
 */
export function textLogger(
  stream: { write(chunk: string): unknown },
  options: LoggerOptions & { styles?: LogStyles } = {},
): Logger {
  const styles = options.styles;
  const paintLevel: Record<Level, (text: string) => string> = {
    info: (text) => text,
    warn: (text) => styles?.yellow(text) ?? text,
    error: (text) => styles?.red(text) ?? text,
  };
  return leveledLogger(options, (time, level, message, fields) => {
    const parts = [
      styles?.dim(time.toISOString()) ?? time.toISOString(),
      paintLevel[level](level.toUpperCase().padEnd(5)),
      message,
    ];
    for (const [key, value] of Object.entries(fields ?? {})) {
      if (value !== undefined) parts.push(`${key}=${logfmtValue(value)}`);
    }
    stream.write(`${parts.join(' ')}\n`);
  });
}

function logfmtValue(value: unknown): string {
  if (typeof value === 'string') {
    return value === '' || /[\s"=\\]/.test(value) ? JSON.stringify(value) : value;
  }
  if (value === null || typeof value !== 'object') return String(value);
  return JSON.stringify(value);
}
