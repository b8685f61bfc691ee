import { z } from 'zod';
import type { CatalogResource } from '../core/protocol/schemas.js';
import { dirname } from 'node:path';
import { loadConfigFile, parseDuration } from './config-file.js';
import { loadUpstreamTls, UpstreamTlsProblem, type UpstreamTls } from './upstream-tls.js';

/**
 * The resources a node serves (`serve --resources`, DESIGN §5): each resource has capabilities,
 * each capability one backend, either the built-in `echo` or an HTTP upstream called with undici.
 */

export const DEFAULT_BACKEND_TIMEOUT_MS = 10_000;
/** No upstream call may outlive the daemon's patience with anything: ten minutes. */
const MAX_BACKEND_TIMEOUT_MS = 600_000;

const identifier = z
  .string()
  .regex(/^[A-Za-z0-9._-]{1,128}$/, 'expected 1 to 128 characters of A-Z a-z 0-9 . _ -')
  // The audit trail and the receipt name a request whose body could not be read with "-" for
  // its resource and capability (invoke.ts, UNREAD): a served "-" would be mistaken for it.
  .refine((id) => id !== '-', {
    message: '"-" is reserved: the audit trail names with it the resource of an unread request',
  });

const duration = z.union([z.string(), z.number()]).transform((value, context) => {
  const milliseconds = parseDuration(value);
  if (milliseconds === undefined || milliseconds <= 0 || milliseconds > MAX_BACKEND_TIMEOUT_MS) {
    context.addIssue({
      code: 'custom',
      message: 'expected a duration above 0 and at most 10m, such as 500ms, 5s or 2m',
    });
    return z.NEVER;
  }
  return milliseconds;
});

/** Headers the HTTP client sets itself, or that would change how the body is framed. */
const RESERVED_HEADERS = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'expect',
  'te',
  'trailer',
]);

/** Checked here rather than as a record key schema, whose failures zod reports without a reason. */
function checkHeaderNames(headers: Record<string, string>, context: z.RefinementCtx): void {
  for (const name of Object.keys(headers)) {
    const problem = !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)
      ? 'expected an HTTP header name'
      : RESERVED_HEADERS.has(name.toLowerCase())
        ? 'this header is set by the HTTP client itself'
        : undefined;
    if (problem) context.addIssue({ code: 'custom', message: problem, path: [name] });
  }
}

const EchoBackend = z.object({ type: z.literal('echo') }).strict();

/** `backend.tls`: files read when the resources file loads (upstream-tls.ts). */
const UpstreamTlsFiles = z
  .object({
    /** CA certificates (PEM) to trust instead of the system's. */
    ca: z.string().min(1).optional(),
    /** A client certificate (PEM), for an upstream that asks for one; with `key`. */
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    /** The name to send (SNI) and to check the upstream's certificate for. */
    server_name: z
      .string()
      .regex(
        /^(?=.{1,253}$)[A-Za-z0-9*]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/,
        'expected a DNS name',
      )
      .optional(),
  })
  .strict()
  .superRefine((tls, context) => {
    if ((tls.cert === undefined) !== (tls.key === undefined)) {
      context.addIssue({
        code: 'custom',
        message: 'a client certificate needs its key: give both cert and key, or neither',
        path: [tls.cert === undefined ? 'cert' : 'key'],
      });
    }
  });

const HttpBackend = z
  .object({
    type: z.literal('http'),
    method: z
      .string()
      .transform((method) => method.toUpperCase())
      .pipe(z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']))
      .default('POST'),
    url: z
      .string()
      .refine(isHttpUrl, { message: 'expected an http:// or https:// URL' })
      .transform((url) => new URL(url).toString()),
    headers: z
      .record(
        z.string(),
        z
          .string()
          .max(8192)
          .regex(/^[^\r\n]*$/, 'no line breaks'),
      )
      .superRefine(checkHeaderNames)
      .default({}),
    timeout: duration.default(DEFAULT_BACKEND_TIMEOUT_MS),
    idempotent: z.boolean().default(false),
    tls: UpstreamTlsFiles.optional(),
  })
  .strict()
  .superRefine((backend, context) => {
    if (backend.tls !== undefined && !backend.url.startsWith('https:')) {
      context.addIssue({
        code: 'custom',
        message: 'tls applies to an https:// URL only',
        path: ['tls'],
      });
    }
  });

const Backend = z.discriminatedUnion('type', [EchoBackend, HttpBackend]);

const Capability = z
  .object({
    id: identifier,
    description: z.string().max(1024).optional(),
    backend: Backend,
  })
  .strict();

const Resource = z
  .object({
    id: identifier,
    description: z.string().max(1024).optional(),
    capabilities: z
      .array(Capability)
      .min(1, 'a resource needs at least one capability')
      .max(1000)
      .superRefine((capabilities, context) =>
        refuseDuplicates(capabilities, context, 'capability'),
      ),
  })
  .strict();

export const ResourcesFile = z
  .object({
    resources: z
      .array(Resource)
      .max(10_000)
      .superRefine((resources, context) => refuseDuplicates(resources, context, 'resource')),
  })
  .strict();

export type ResourcesFile = z.infer<typeof ResourcesFile>;
export type ServedResource = ResourcesFile['resources'][number];
export type ServedCapability = ServedResource['capabilities'][number];
export type BackendSpec = ServedCapability['backend'];
export type HttpBackendSpec = Extract<BackendSpec, { type: 'http' }>;

function refuseDuplicates(
  items: ReadonlyArray<{ id: string }>,
  context: z.RefinementCtx,
  what: string,
): void {
  const seen = new Set<string>();
  items.forEach((item, index) => {
    if (seen.has(item.id)) {
      context.addIssue({
        code: 'custom',
        message: `${what} ${item.id} is declared twice`,
        path: [index, 'id'],
      });
    }
    seen.add(item.id);
  });
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
  } catch {
    return false;
  }
}

/**
 * Reads a resources file. Header values may name environment variables as `${NAME}`, so that an
 * upstream's credentials need not be written into the file; an unset variable refuses the file.
 */
export async function loadResourcesFile(
  path: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ResourceCatalog> {
  const upstreamTls = new Map<HttpBackendSpec, UpstreamTls>();
  const file = await loadConfigFile(
    path,
    ResourcesFile.transform((parsed, context) => {
      const expanded = expandHeaders(parsed, env, context);
      loadBackendTls(expanded, dirname(path), upstreamTls, context);
      return expanded;
    }),
    'resources',
    'BAD_RESOURCES_FILE',
  );
  return new ResourceCatalog(file.resources, upstreamTls);
}

/** Reads each HTTP backend's `tls` files, relative to the resources file's folder. */
function loadBackendTls(
  file: ResourcesFile,
  baseDir: string,
  into: Map<HttpBackendSpec, UpstreamTls>,
  context: z.RefinementCtx,
): void {
  file.resources.forEach((resource, r) =>
    resource.capabilities.forEach((capability, c) => {
      const backend = capability.backend;
      if (backend.type !== 'http' || backend.tls === undefined) return;
      try {
        into.set(backend, loadUpstreamTls(backend.tls, baseDir));
      } catch (error) {
        if (!(error instanceof UpstreamTlsProblem)) throw error;
        context.addIssue({
          code: 'custom',
          message: error.message,
          path: [
            'resources',
            r,
            'capabilities',
            c,
            'backend',
            'tls',
            ...(error.field === null ? [] : [error.field]),
          ],
        });
      }
    }),
  );
}

function expandHeaders(
  file: ResourcesFile,
  env: NodeJS.ProcessEnv,
  context: z.RefinementCtx,
): ResourcesFile {
  file.resources.forEach((resource, r) =>
    resource.capabilities.forEach((capability, c) => {
      if (capability.backend.type !== 'http') return;
      const headers = capability.backend.headers;
      for (const [name, value] of Object.entries(headers)) {
        headers[name] = value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_whole, variable) => {
          const replacement = env[variable as string];
          if (replacement === undefined) {
            context.addIssue({
              code: 'custom',
              message: `environment variable ${variable as string} is not set`,
              path: ['resources', r, 'capabilities', c, 'backend', 'headers', name],
            });
            return '';
          }
          return replacement;
        });
      }
    }),
  );
  return file;
}

/** The resources a node serves, looked up by ID. */
export class ResourceCatalog {
  private readonly byId: Map<string, ServedResource>;

  constructor(
    readonly resources: readonly ServedResource[] = [],
    /** The TLS material of the HTTP backends that have `tls`, read when the file loaded. */
    private readonly upstreamTls: ReadonlyMap<HttpBackendSpec, UpstreamTls> = new Map(),
  ) {
    this.byId = new Map(resources.map((resource) => [resource.id, resource]));
  }

  /** What a backend's `tls` named, as read at load; undefined without `tls` (system CAs). */
  tlsOf(backend: BackendSpec): UpstreamTls | undefined {
    return backend.type === 'http' ? this.upstreamTls.get(backend) : undefined;
  }

  /** Every HTTP backend with its TLS material: the upstream pools worth keeping. */
  httpBackends(): Array<{ backend: HttpBackendSpec; tls: UpstreamTls | undefined }> {
    return this.resources.flatMap((resource) =>
      resource.capabilities.flatMap(({ backend }) =>
        backend.type === 'http' ? [{ backend, tls: this.upstreamTls.get(backend) }] : [],
      ),
    );
  }

  resource(id: string): ServedResource | undefined {
    return this.byId.get(id);
  }

  capability(resource: ServedResource, id: string): ServedCapability | undefined {
    return resource.capabilities.find((capability) => capability.id === id);
  }

  /**
   * The catalog as a caller sees it, limited to the capabilities `visible` admits (resources
   * with none left are left out). Backends are never shown: their URLs and headers are the
   * serving organization's business.
   */
  catalogFor(visible: (resource: string, capability: string) => boolean): CatalogResource[] {
    const catalog: CatalogResource[] = [];
    for (const resource of this.resources) {
      const entry = catalogEntry(resource, visible);
      if (entry) catalog.push(entry);
    }
    return catalog;
  }
}

export function catalogEntry(
  resource: ServedResource,
  visible: (resource: string, capability: string) => boolean,
): CatalogResource | undefined {
  const capabilities = resource.capabilities
    .filter((capability) => visible(resource.id, capability.id))
    .map((capability) => ({
      id: capability.id,
      description: capability.description ?? null,
      idempotent: isIdempotent(capability.backend),
    }));
  if (capabilities.length === 0) return undefined;
  return { id: resource.id, description: resource.description ?? null, capabilities };
}

/** `echo` has no effect beyond its answer, so it is always safe to repeat. */
export function isIdempotent(backend: BackendSpec): boolean {
  return backend.type === 'echo' ? true : backend.idempotent;
}
