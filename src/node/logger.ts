/** Structured JSON log lines on a stream (stderr for the daemon), one event per line. */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export function jsonLogger(
  stream: { write(chunk: string): unknown },
  now: () => Date = () => new Date(),
): Logger {
  const write = (level: string, message: string, fields?: Record<string, unknown>) => {
    stream.write(
      `${JSON.stringify({ time: now().toISOString(), level, msg: message, ...fields })}\n`,
    );
  };
  return {
    info: (message, fields) => write('info', message, fields),
    warn: (message, fields) => write('warn', message, fields),
    error: (message, fields) => write('error', message, fields),
  };
}
