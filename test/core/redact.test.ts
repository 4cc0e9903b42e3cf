/**
 * Redactor: secrets are removed by key, by path and from text; the input is never
 * modified; redacting twice changes nothing (logging redacts payloads, then the record).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { REDACTED, Redactor } from '#middleware/observability/redact.ts';

const secret = fc.stringMatching(/^[A-Za-z0-9]{6,24}$/).map((s) => `S3CR${s}`);

/** The shapes secrets take inside text: headers, query strings, form bodies, JSON, JWTs. */
const inText: Array<(s: string) => string> = [
  (s) => `Authorization: Bearer ${s}`,
  (s) => `authorization=Basic ${Buffer.from(`user:${s}`).toString('base64')}`,
  (s) => `POST /token refresh_token=${s}&grant_type=refresh_token`,
  (s) => `client_secret=${s}`,
  (s) => `upstream said {"access_token":"${s}","token_type":"Bearer"}`,
  (s) => JSON.stringify(JSON.stringify({ id_token: s })),
  (s) => `password: ${s} was rejected`,
  (s) => `Cookie: session=${s}; theme=dark`,
  (s) => `set-cookie: a=${s}`,
  (s) => `x-api-key: ${s}`,
  (s) => `DPoP: eyJ0eXAiOiJkcG9wK2p3dCJ9.${s}`,
  (s) => `got eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.${s}`,
];

describe('Redactor.text', () => {
  it('removes a secret from every shape it takes in text', () => {
    const redactor = new Redactor();
    fc.assert(
      fc.property(secret, fc.integer({ min: 0, max: inText.length - 1 }), fc.string(), (s, shape, noise) => {
        const out = redactor.text(`${noise} ${(inText[shape] as (s: string) => string)(s)} ${noise}`);
        expect(out).not.toContain(s);
        expect(out).toContain(REDACTED);
      }),
    );
  });

  it('is idempotent', () => {
    const redactor = new Redactor([/\d{3}-\d{2}-\d{4}/]);
    const text = fc.oneof(fc.string(), fc.tuple(secret, fc.integer({ min: 0, max: inText.length - 1 })).map(([s, i]) => (inText[i] as (s: string) => string)(s)));
    fc.assert(
      fc.property(text, (t) => {
        const once = redactor.text(t);
        expect(redactor.text(once)).toBe(once);
      }),
    );
  });

  it('leaves ordinary text alone', () => {
    const redactor = new Redactor();
    for (const text of ['tools/call search: ok in 12 ms', 'progressToken=7', 'Token refresh scheduled', 'Basic usage', 'retries-exhausted']) {
      expect(redactor.text(text)).toBe(text);
    }
  });

  it('applies configured patterns', () => {
    expect(new Redactor([/\d{3}-\d{2}-\d{4}/]).text('ssn 078-05-1120 on file')).toBe(`ssn ${REDACTED} on file`);
  });
});

describe('Redactor.redact', () => {
  it('replaces secret keys anywhere, whatever their case or separator, and never touches the input', () => {
    fc.assert(
      fc.property(secret, fc.constantFrom('Authorization', 'cookie', 'Set-Cookie', 'DPoP', 'access_token', 'refreshToken', 'CLIENT_SECRET', 'password', 'X-Api-Key', 'token'), (s, key) => {
        const input = { a: { b: [{ [key]: s, keep: 'visible' }] }, headers: new Map([[key, s]]) };
        const frozen = structuredClone(input);
        const out = new Redactor().redact(input);
        expect(JSON.stringify(out)).not.toContain(s);
        expect(JSON.stringify(out)).toContain('visible');
        expect(input).toEqual(frozen);
      }),
    );
  });

  it('replaces configured keys and paths (with * for any key)', () => {
    const redactor = new Redactor(['ssn', 'params.arguments.card', 'result.*.pin']);
    expect(redactor.redact({ ssn: 1, params: { arguments: { card: '4111', name: 'x' }, card: 'kept' }, result: { a: { pin: 1, ok: 2 } } })).toEqual({
      ssn: REDACTED,
      params: { arguments: { card: REDACTED, name: 'x' }, card: 'kept' },
      result: { a: { pin: REDACTED, ok: 2 } },
    });
  });

  it('reads fetch Headers, survives cycles, deep trees, errors and binary', () => {
    const headers = new Headers({ authorization: 'Bearer abcdefgh', accept: 'application/json' });
    const cyclic: Record<string, unknown> = { name: 'loop' };
    cyclic['self'] = cyclic;
    let deep: Record<string, unknown> = {};
    const root = deep;
    for (let i = 0; i < 100; i++) deep = (deep['next'] = {}) as Record<string, unknown>;
    const out = new Redactor().redact({ headers, cyclic, root, error: new Error('password=hunter22'), bytes: new Uint8Array(4), n: 10n }) as Record<string, unknown>;
    expect(out['headers']).toEqual({ authorization: REDACTED, accept: 'application/json' });
    expect(out['cyclic']).toEqual({ name: 'loop', self: '[Circular]' });
    expect(JSON.stringify(out['root'])).toContain('[Truncated]');
    expect(out['error']).toEqual({ name: 'Error', message: `password=${REDACTED}` });
    expect(out['bytes']).toBe('[4 bytes]');
    expect(out['n']).toBe('10');
  });

  it('rejects rules that are neither names, paths nor RegExps', () => {
    expect(() => new Redactor(['' as string])).toThrow('redact[0]: expected a key name, a dotted path (params.arguments.ssn) or a RegExp, got ""');
    expect(() => new Redactor(['a.' as string], 'logging.redact')).toThrow('logging.redact[0]');
    expect(() => new Redactor('password' as never)).toThrow('redact: expected an array');
  });
});
