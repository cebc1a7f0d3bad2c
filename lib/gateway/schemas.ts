// The gateway's request and response schemas (TypeBox: one schema gives the type, fastify's
// validation and the OpenAPI document), and the checks shared by the visitor and agent routes.
import { createHash } from 'node:crypto';
import { type TSchema, Type } from '@sinclair/typebox';
import type { FastifyReply } from 'fastify';
import type { Attachment, MessageInput } from '../../actors/events.ts';
import { AttachmentSchema, CLIENT_ID_PATTERN, TOKEN_PATTERN } from '../commands.ts';
import { ParleyError } from '../errors.ts';

const closed = { additionalProperties: false } as const;

export const IdParam = Type.Object(
  { id: Type.String({ pattern: TOKEN_PATTERN, description: 'Conversation id' }) },
  closed,
);

/** `?token=` for EventSource, which cannot send an Authorization header. */
export const TokenQuery = Type.Object(
  { token: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })) },
  closed,
);

export const ClientMessageId = Type.String({
  pattern: CLIENT_ID_PATTERN,
  description:
    "The client's id of the message (1 to 128 printable ASCII characters): a retry with the same id is the same message.",
});

export const MessageBody = Type.Object(
  {
    id: ClientMessageId,
    text: Type.String({ maxLength: 10_000, description: 'Text, links and emojis included.' }),
    attachments: Type.Optional(Type.Array(AttachmentSchema, { maxItems: 10 })),
  },
  closed,
);

export const ProblemSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String(),
  },
  { additionalProperties: true, description: 'An RFC 9457 problem (application/problem+json).' },
);

/** Responses with the problems a route may answer, for the OpenAPI document. */
export function responses(
  ok: Record<number, TSchema>,
  problems: readonly number[] = [],
): Record<number, TSchema> {
  const out: Record<number, TSchema> = { ...ok };
  for (const status of [400, 401, 429, 503, ...problems]) out[status] = ProblemSchema;
  return out;
}

/** A loose object schema: documents the fields, serialises every field given. */
export const Open = (properties: Record<string, TSchema>, description: string) =>
  Type.Object(properties, { additionalProperties: true, description });

/**
 * A command id derived from what makes a request the same request (the conversation and the
 * client's message id, say), so that a retry is de-duplicated whatever its length.
 */
export function derivedId(kind: string, ...parts: string[]): string {
  return `${kind}:${createHash('sha256').update(parts.join('\u0000')).digest('base64url').slice(0, 32)}`;
}

export interface AttachmentLimits {
  readonly imageMaxBytes: number;
  readonly fileMaxBytes: number;
  /** Media types accepted for files; images must be `image/*`. */
  readonly fileTypes: readonly string[];
}

export const DEFAULT_ATTACHMENT_LIMITS: AttachmentLimits = {
  imageMaxBytes: 10 * 1024 * 1024,
  fileMaxBytes: 25 * 1024 * 1024,
  fileTypes: [
    'application/pdf',
    'text/plain',
    'text/csv',
    'application/zip',
    'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
    'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  ],
};

/** Checks each attachment's type and size against the limits; throws PARLEY_ERR_VALIDATION. */
export function checkAttachments(
  attachments: readonly Attachment[] | undefined,
  limits: AttachmentLimits,
): void {
  (attachments ?? []).forEach((a, i) => {
    const fail = (field: 'mimeType' | 'sizeBytes', why: string) => {
      const at = `body.attachments[${i}].${field}`;
      throw new ParleyError('PARLEY_ERR_VALIDATION', [`${at}: ${why}`], {
        details: { errors: [{ field: at, message: why }] },
      });
    };
    if (a.kind === 'offer') return;
    if (a.mimeType === undefined) fail('mimeType', 'required for images and files');
    if (a.sizeBytes === undefined) fail('sizeBytes', 'required for images and files');
    if (a.kind === 'image') {
      if (!a.mimeType?.startsWith('image/'))
        fail('mimeType', `an image must be image/*, not ${a.mimeType}`);
      if ((a.sizeBytes ?? 0) > limits.imageMaxBytes)
        fail('sizeBytes', `an image may be at most ${limits.imageMaxBytes} bytes`);
    } else {
      if (!limits.fileTypes.includes(a.mimeType ?? ''))
        fail(
          'mimeType',
          `files of type ${a.mimeType} are not accepted (${limits.fileTypes.join(', ')})`,
        );
      if ((a.sizeBytes ?? 0) > limits.fileMaxBytes)
        fail('sizeBytes', `a file may be at most ${limits.fileMaxBytes} bytes`);
    }
  });
}

/** The message as the engine takes it. */
export function messageInput(body: {
  id: string;
  text: string;
  attachments?: Attachment[];
}): MessageInput {
  if (body.text.trim() === '' && (body.attachments ?? []).length === 0) {
    throw new ParleyError('PARLEY_ERR_VALIDATION', ['body.text: must not be blank'], {
      details: { errors: [{ field: 'body.text', message: 'must not be blank' }] },
    });
  }
  return {
    id: body.id,
    text: body.text,
    ...(body.attachments ? { attachments: body.attachments } : {}),
  };
}

export const Accepted = Open(
  { id: Type.String(), status: Type.Literal('accepted') },
  'Stored: it will be applied, once, in order; its outcome comes on the event stream.',
);

/** Stored and not applied yet (or a retry of a command already stored): 202 with its id. */
export function accepted(reply: FastifyReply, id: string) {
  return reply.code(202).send({ id, status: 'accepted' });
}
