// The admin API: routing groups (cap, snooze default and bounds, automatic message, overflow),
// routing rules, agents (groups, slots) and canned answers: read, create, change, delete. Every
// change is validated as the configuration file is (the whole configuration, references
// included) and written to the live configuration, which the workers apply without a restart.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { type TSchema, Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { type ConfigFile, ConfigFileSchema, type ConfigProblem } from '../../config.ts';
import { isParleyError, ParleyError } from '../../errors.ts';
import type { LiveConfig } from '../../nats/live-config.ts';
import { Open, responses } from '../schemas.ts';
import type { GatewayContext } from '../server.ts';

const tags = ['admin'];
const closed = { additionalProperties: false } as const;

type Collection = 'groups' | 'rules' | 'agents' | 'cannedAnswers';
type Item = { id: string } & Record<string, unknown>;

const COLLECTIONS: readonly { path: string; key: Collection; what: string; a: string }[] = [
  { path: 'groups', key: 'groups', what: 'routing group', a: 'a' },
  { path: 'rules', key: 'rules', what: 'routing rule', a: 'a' },
  { path: 'agents', key: 'agents', what: 'agent', a: 'an' },
  { path: 'canned-answers', key: 'cannedAnswers', what: 'canned answer', a: 'a' },
];

const itemSchema = (key: Collection): TSchema =>
  (ConfigFileSchema.properties[key] as unknown as { items: TSchema }).items ??
  (ConfigFileSchema.properties[key] as unknown as { anyOf: { items: TSchema }[] }).anyOf[0]!.items;

const IdParam = Type.Object(
  { id: Type.String({ pattern: '^[a-z0-9][a-z0-9-]*$', maxLength: 128 }) },
  closed,
);
const IfMatch = Type.Object(
  {
    'if-match': Type.Optional(
      Type.String({
        pattern: '^"?\\d+"?$',
        description: 'The revision the change is made against; refused with 412 if it moved on.',
      }),
    ),
  },
  { additionalProperties: true },
);

/** The configuration's problems, as a 422 naming each field. */
function invalidChange(error: unknown): never {
  if (isParleyError(error, 'PARLEY_ERR_CONFIG_INVALID')) {
    const problems = (error.details ?? []) as ConfigProblem[];
    const errors = problems.map((p) => ({ field: p.path, message: p.message }));
    throw new ParleyError(
      'PARLEY_ERR_INVALID_CONFIG_CHANGE',
      [errors.map((e) => `${e.field || '(top level)'}: ${e.message}`).join('; ')],
      { details: { errors } },
    );
  }
  throw error;
}

function revisionOf(request: FastifyRequest): number | undefined {
  const raw = request.headers['if-match'];
  if (typeof raw !== 'string') return undefined;
  return Number(raw.replaceAll('"', ''));
}

export function adminRoutes(ctx: GatewayContext, live: LiveConfig) {
  const { auth, backend } = ctx;
  return async (parent: FastifyInstance) => {
    const app = parent.withTypeProvider<TypeBoxTypeProvider>();
    app.addHook('onRequest', async (request) => {
      auth.authenticate(request, 'admin');
    });

    const change = async (
      request: FastifyRequest,
      edit: (document: ConfigFile) => ConfigFile,
    ): Promise<ConfigFile> => {
      try {
        const version = await live.update(edit, revisionOf(request));
        backend.settings = version.settings;
        return version.document;
      } catch (error) {
        return invalidChange(error);
      }
    };

    app.get(
      '/admin/config',
      {
        schema: {
          tags,
          summary: 'The whole live configuration and its revision',
          response: responses(
            { 200: Open({ revision: Type.Integer() }, 'The configuration.') },
            [403],
          ),
        },
      },
      async (_request, reply) => {
        const { document, revision } = live.current;
        reply.header('etag', `"${revision}"`);
        return { revision, config: document };
      },
    );

    app.put(
      '/admin/config',
      {
        schema: {
          tags,
          summary: 'Replace the whole live configuration (as `parley config apply` does)',
          headers: IfMatch,
          body: ConfigFileSchema,
          response: responses({ 200: Open({}, 'The configuration.') }, [403, 412, 422]),
        },
      },
      async (request) => {
        const body = request.body as ConfigFile;
        await change(request, () => body);
        return { revision: live.current.revision, config: live.current.document };
      },
    );

    for (const { path, key, what, a } of COLLECTIONS) {
      const Body = itemSchema(key);
      const list = (document: ConfigFile) => (document[key] ?? []) as Item[];
      const find = (id: string) => list(live.current.document).find((item) => item.id === id);

      app.get(
        `/admin/${path}`,
        {
          schema: {
            tags,
            summary: `Every ${what}`,
            response: responses({ 200: Open({ items: Type.Array(Body) }, 'A list.') }, [403]),
          },
        },
        async () => ({ revision: live.current.revision, items: list(live.current.document) }),
      );

      app.get(
        `/admin/${path}/:id`,
        {
          schema: {
            tags,
            summary: `One ${what}`,
            params: IdParam,
            response: responses({ 200: Body }, [403, 404]),
          },
        },
        async (request) => {
          const item = find(request.params.id);
          if (!item)
            throw new ParleyError('PARLEY_ERR_NOT_FOUND', [`${what} ${request.params.id}`]);
          return item;
        },
      );

      app.post(
        `/admin/${path}`,
        {
          schema: {
            tags,
            summary: `Create ${a} ${what}`,
            headers: IfMatch,
            body: Body,
            response: responses({ 201: Body }, [403, 409, 412, 422]),
          },
        },
        async (request, reply) => {
          const item = request.body as Item;
          await change(request, (document) => {
            if (list(document).some((x) => x.id === item.id)) {
              throw new ParleyError('PARLEY_ERR_COMMAND_REJECTED', [
                'exists',
                `${a} ${what} with id ${item.id} exists already`,
              ]);
            }
            return { ...document, [key]: [...list(document), item] };
          });
          return reply.code(201).send(item);
        },
      );

      app.put(
        `/admin/${path}/:id`,
        {
          schema: {
            tags,
            summary: `Change (or create) ${a} ${what}`,
            params: IdParam,
            headers: IfMatch,
            body: Body,
            response: responses({ 200: Body }, [403, 412, 422]),
          },
        },
        async (request) => {
          const item = request.body as Item;
          if (item.id !== request.params.id) {
            throw new ParleyError(
              'PARLEY_ERR_VALIDATION',
              ['body.id: must be the id of the path'],
              {
                details: { errors: [{ field: 'body.id', message: 'must be the id of the path' }] },
              },
            );
          }
          await change(request, (document) => {
            const items = list(document);
            const at = items.findIndex((x) => x.id === item.id);
            const next = at < 0 ? [...items, item] : items.map((x, i) => (i === at ? item : x));
            return { ...document, [key]: next };
          });
          return item;
        },
      );

      app.delete(
        `/admin/${path}/:id`,
        {
          schema: {
            tags,
            summary: `Delete ${a} ${what}`,
            params: IdParam,
            headers: IfMatch,
            response: responses({ 204: Type.Null() }, [403, 404, 409, 412, 422]),
          },
        },
        async (request, reply) => {
          const { id } = request.params;
          if (!find(id)) throw new ParleyError('PARLEY_ERR_NOT_FOUND', [`${what} ${id}`]);
          if (key === 'groups') {
            const [seats, open] = await Promise.all([
              backend.seatsTaken(id),
              backend.openConversations(id),
            ]);
            if (seats > 0 || open.length > 0) {
              throw new ParleyError('PARLEY_ERR_COMMAND_REJECTED', [
                'group-in-use',
                `routing group ${id} still has conversations; move or close them first`,
              ]);
            }
          }
          await change(request, (document) => ({
            ...document,
            [key]: list(document).filter((x) => x.id !== id),
          }));
          return reply.code(204).send();
        },
      );
    }
  };
}
