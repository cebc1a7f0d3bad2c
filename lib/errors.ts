// Every error Parley can raise: a PARLEY_ERR_* code, a message template and an HTTP status.
// The gateway turns them into problem+json bodies, the CLI into one line and an exit status.

interface ErrorSpec {
  /** `%s` placeholders are filled, in order, by the arguments given to `new ParleyError`. */
  readonly message: string;
  readonly statusCode: number;
}

/**
 * The catalogue. To add an error, add a line here: the code, its template and its status.
 * The number of `%s` in a template is checked at compile time against the arguments given.
 */
export const ERRORS = {
  // Configuration, read once at start (a server-side fault: 500 if it ever reaches HTTP).
  PARLEY_ERR_CONFIG_NOT_FOUND: {
    message: 'Configuration file not found: %s (%s)',
    statusCode: 500,
  },
  PARLEY_ERR_CONFIG_UNREADABLE: {
    message: 'Cannot read configuration file %s: %s',
    statusCode: 500,
  },
  PARLEY_ERR_CONFIG_SYNTAX: {
    message: 'Configuration file %s is not valid YAML or JSON:\n%s',
    statusCode: 500,
  },
  PARLEY_ERR_CONFIG_INVALID: {
    message: 'Invalid configuration in %s (%s):\n%s',
    statusCode: 500,
  },

  // The command line: options that contradict each other or the environment (exit status 2).
  PARLEY_ERR_USAGE: {
    message: '%s: %s',
    statusCode: 400,
  },

  // Input from visitors, agents and integrators.
  PARLEY_ERR_INVALID_DURATION: {
    message: 'Invalid duration %s: %s',
    statusCode: 400,
  },
  PARLEY_ERR_INVALID_COMMAND: {
    message: 'Invalid command: %s',
    statusCode: 400,
  },
  PARLEY_ERR_NOT_FOUND: {
    message: '%s not found',
    statusCode: 404,
  },
  PARLEY_ERR_INVALID_ID: {
    message: 'Invalid %s %s: %s',
    statusCode: 400,
  },

  // The HTTP gateway.
  PARLEY_ERR_VALIDATION: {
    message: 'Invalid request: %s',
    statusCode: 400,
  },
  PARLEY_ERR_UNAUTHORIZED: {
    message: 'Missing or invalid credential: %s',
    statusCode: 401,
  },
  PARLEY_ERR_FORBIDDEN: {
    message: 'Not allowed: %s',
    statusCode: 403,
  },
  PARLEY_ERR_BODY_TOO_LARGE: {
    message: 'Request body larger than %s bytes',
    statusCode: 413,
  },
  PARLEY_ERR_RATE_LIMITED: {
    message: 'Too many requests: %s',
    statusCode: 429,
  },
  PARLEY_ERR_COMMAND_REJECTED: {
    message: 'Refused (%s): %s',
    statusCode: 409,
  },
  PARLEY_ERR_OUT_OF_RANGE: {
    message: 'Refused (%s): %s',
    statusCode: 422,
  },
  PARLEY_ERR_INVALID_CONFIG_CHANGE: {
    message: 'The change would make the configuration invalid: %s',
    statusCode: 422,
  },
  PARLEY_ERR_CONFIG_CHANGED: {
    message:
      'The live configuration changed meanwhile (now at revision %s): read it again and retry',
    statusCode: 412,
  },
  PARLEY_ERR_NOT_STORED: {
    message: 'The command was not stored (%s); nothing was changed, retry with the same id',
    statusCode: 503,
  },

  // NATS, at start and while running (the service is unavailable, not the request wrong).
  PARLEY_ERR_NATS_UNREACHABLE: {
    message:
      'Cannot reach a NATS server at %s (%s). Start nats-server, or set NATS_URL to a reachable one.',
    statusCode: 503,
  },
  PARLEY_ERR_JETSTREAM_DISABLED: {
    message:
      'JetStream is not enabled on the NATS server at %s. Run nats-server with JetStream (-js, or a jetstream {} block in its configuration), or set NATS_URL to a server that has it.',
    statusCode: 503,
  },
  PARLEY_ERR_NATS_SETUP: {
    message: 'Cannot set up %s on NATS: %s',
    statusCode: 503,
  },

  // Live inspection: the CLI and the gateway ask the worker that hosts a routing group.
  PARLEY_ERR_NOT_HOSTED: {
    message: 'No live worker hosts routing group %s',
    statusCode: 503,
  },
  PARLEY_ERR_INSPECTION_FAILED: {
    message: 'The inspection of routing group %s failed: %s',
    statusCode: 502,
  },

  // The operators' commands (parley status, inspect, watch, top, send).
  PARLEY_ERR_UNKNOWN_CONVERSATION: {
    message:
      'Conversation %s not found: no routing group holds it in parley-conversations. Check the id (parley watch shows conversations as they start).',
    statusCode: 404,
  },
  PARLEY_ERR_UNKNOWN_GROUP: {
    message:
      'Routing group %s is not in the live configuration (its groups: %s). parley config show prints it.',
    statusCode: 404,
  },
  PARLEY_ERR_NOT_SET_UP: {
    message:
      'Parley is not set up on the NATS server at %s (%s): no worker has started on it yet. Start one (parley worker, or parley dev), or set NATS_URL to the server your workers use.',
    statusCode: 503,
  },
} as const satisfies Record<`PARLEY_ERR_${string}`, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** One argument per `%s` of the template of `C`. */
export type ErrorArgs<C extends ErrorCode> = Placeholders<(typeof ERRORS)[C]['message']>;

type Placeholders<S extends string> = S extends `${string}%s${infer Rest}`
  ? [unknown, ...Placeholders<Rest>]
  : [];

export interface ErrorOptions {
  /** Structured data for machines (the gateway's problem+json, tests): e.g. a list of problems. */
  readonly details?: unknown;
  readonly cause?: unknown;
}

/** An error with a code from {@link ERRORS}, its HTTP status and optional structured details. */
export class ParleyError<C extends ErrorCode = ErrorCode> extends Error {
  override readonly name = 'ParleyError';
  readonly code: C;
  readonly statusCode: number;
  readonly details?: unknown;

  constructor(code: C, args: ErrorArgs<C>, options: ErrorOptions = {}) {
    const spec: ErrorSpec = ERRORS[code];
    super(fillTemplate(spec.message, args), { cause: options.cause });
    this.code = code;
    this.statusCode = spec.statusCode;
    if (options.details !== undefined) this.details = options.details;
  }
}

/** True when `error` is a ParleyError, with the given code if one is given. */
export function isParleyError<C extends ErrorCode>(
  error: unknown,
  code?: C,
): error is ParleyError<C> {
  return error instanceof ParleyError && (code === undefined || error.code === code);
}

function fillTemplate(template: string, args: readonly unknown[]): string {
  let next = 0;
  return template.replace(/%s/g, () => String(args[next++]));
}
