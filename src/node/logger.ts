/** Structured JSON log lines on a stream (stderr for the daemon), one event per line. */
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

export function jsonLogger(
  stream: { write(chunk: string): unknown },
  options: LoggerOptions = {},
): Logger {
  const now = options.now ?? (() => new Date());
  const write = (level: string, message: string, fields?: Record<string, unknown>) => {
    stream.write(
      `${JSON.stringify({ time: now().toISOString(), level, msg: message, ...fields })}\n`,
    );
  };
  return {
    info: options.quiet === true ? () => {} : (message, fields) => write('info', message, fields),
    warn: (message, fields) => write('warn', message, fields),
    error: (message, fields) => write('error', message, fields),
  };
}
