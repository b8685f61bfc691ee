/**
 * Defaults of the invocation limits, in a module of their own so that `serve --help` can show
 * them without loading the daemon.
 */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
export const DEFAULT_RATE_LIMIT_PER_HOUR = 36_000;
export const DEFAULT_RATE_LIMIT_BURST = 100;
export const DEFAULT_MAX_CONCURRENT_PER_NODE = 16;
