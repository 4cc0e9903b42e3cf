/**
 * `downstream.clients`: a name per bearer token (or per value of `downstream.clientHeader`),
 * each with its own policy; `downstream.unknownClients`: what happens to requests from
 * no listed client (docs/gateway.md, "Clients and policies"). The cross-field rules
 * (names and secrets unique, `value` needs `clientHeader`) are checkClients, run by the
 * downstream schema. No problem ever shows a token.
 */
import { z } from 'zod';
import { integer, names, options, secret, text } from './fields.ts';

/** The label of requests from no listed client, in logs, metrics and spans: reserved. */
export const UNKNOWN_CLIENT = 'unknown';

/** Client names are metric labels and log fields: short, plain. */
const CLIENT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export const clientPolicy = {
  rateLimit: options(
    {
      rate: z.number({ error: 'a number > 0' }).gt(0, { error: 'a number > 0' }).meta({ description: 'Requests per second, refilled continuously.' }),
      burst: integer(1).meta({ description: 'Requests admitted at once on a full bucket (the bucket size).' }),
    },
    'A token bucket shared by all of the client\'s sessions, one token per JSON-RPC request (notifications and answers are free). Over it: HTTP 429 with Retry-After, or a -32057 error with data.retryAfterMs. Default: none.',
  ).optional(),
  maxInFlight: integer(1).optional().meta({ description: 'Requests in flight at once across the client\'s sessions; more are refused at once with -32051 (never queued). Default: no limit.' }),
  upstreams: names('upstream name or glob').optional().meta({ description: 'Upstreams the client may use (globs; the single `upstream:` is named `default`). Default: all.' }),
  tools: names('tool name or glob').optional().meta({ description: 'Tools the client may see and call (globs over the names as the client sees them); others are hidden from tools/list and refused with -32058. Default: all.' }),
};

export const clientEntry = options(
  {
    name: text('a client name').regex(CLIENT_NAME, { error: 'a client name: letters, digits, "_", "." or "-", at most 64, starting with a letter or digit' }).meta({ description: 'Labels the client\'s logs, metrics and spans.' }),
    token: secret('a bearer token').optional().meta({ description: 'The client sends `Authorization: Bearer <token>`. Use ${ENV_VAR}.' }),
    value: secret('a header value').optional().meta({ description: 'The client sends `<downstream.clientHeader>: <value>`. Use ${ENV_VAR}.' }),
    ...clientPolicy,
  },
  'One client: its name, how it is recognized (exactly one of token or value) and its policy.',
);

export const unknownClients = z
  .union([z.literal('refuse'), options(clientPolicy)], { error: '"refuse" or a policy ({ rateLimit, maxInFlight, upstreams, tools })' })
  .meta({
    description:
      'Requests from no listed client: refuse (401), or admit them under the label `unknown` with this policy. Holders of a downstream.bearerTokens token are always admitted as `unknown`. Default: refuse when downstream.clients is set, else admit with no limits.',
  });

export type ClientEntry = z.output<typeof clientEntry>;
export type ClientPolicyConfig = Omit<ClientEntry, 'name' | 'token' | 'value'>;

interface ClientsInput {
  clients?: readonly ClientEntry[] | undefined;
  clientHeader?: string | undefined;
  bearerTokens?: readonly string[] | undefined;
}

/** The rules across clients: one way to recognize each, names and secrets unique, `value` only with a header to read it from. */
export function checkClients(downstream: ClientsInput, ctx: z.RefinementCtx): void {
  const clients = downstream.clients ?? [];
  const names = new Map<string, number>();
  const tokens = new Map<string, string>();
  for (const [i, token] of (downstream.bearerTokens ?? []).entries()) tokens.set(token, `downstream.bearerTokens[${i}]`);
  const values = new Map<string, number>();
  clients.forEach((client, i) => {
    const given = [client.token, client.value].filter((v) => v !== undefined).length;
    if (given !== 1) ctx.addIssue({ code: 'custom', message: `expected exactly one of token (Authorization: Bearer) or value (the downstream.clientHeader header), got ${given === 0 ? 'neither' : 'both'}`, path: ['clients', i] });
    if (client.name === UNKNOWN_CLIENT) ctx.addIssue({ code: 'custom', message: `"${UNKNOWN_CLIENT}" is the label of requests from no listed client (downstream.unknownClients); pick another name`, path: ['clients', i, 'name'] });
    const first = names.get(client.name);
    if (first !== undefined) ctx.addIssue({ code: 'custom', message: `"${client.name}" is already the name of downstream.clients[${first}]; each client needs its own (it labels metrics)`, path: ['clients', i, 'name'] });
    else names.set(client.name, i);
    if (client.token !== undefined) {
      const same = tokens.get(client.token);
      if (same !== undefined) ctx.addIssue({ code: 'custom', message: `the same token as ${same}: each token must name one client`, path: ['clients', i, 'token'] });
      else tokens.set(client.token, `downstream.clients[${i}].token`);
    }
    if (client.value !== undefined) {
      const same = values.get(client.value);
      if (same !== undefined) ctx.addIssue({ code: 'custom', message: `the same value as downstream.clients[${same}].value: each value must name one client`, path: ['clients', i, 'value'] });
      else values.set(client.value, i);
      if (downstream.clientHeader === undefined) ctx.addIssue({ code: 'custom', message: 'needs downstream.clientHeader (the header the value is sent in, e.g. x-api-key)', path: ['clients', i, 'value'] });
    }
  });
  if (downstream.clientHeader !== undefined && values.size === 0) {
    ctx.addIssue({ code: 'custom', message: 'applies only when a client in downstream.clients has a value', path: ['clientHeader'] });
  }
}
