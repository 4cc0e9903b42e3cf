/**
 * The one classification of HTTP and connection failures (src/core/failure.ts), row by
 * row as docs/errors.md writes it; the callers' own tests show each follows it.
 */
import { describe, expect, it } from 'vitest';
import { classifyConnectionError, classifyStatus } from '#core/failure.ts';

describe('classifyStatus', () => {
  it.each([
    [408, true],
    [425, true],
    [429, true],
    [500, true],
    [502, true],
    [503, true],
    [504, true],
    [507, true],
    [599, true],
    [501, false],
    [505, false],
    [400, false],
    [401, false],
    [403, false],
    [404, false],
    [409, false],
    [413, false],
    [415, false],
    [426, false],
    [301, false],
    [200, false],
    [600, false],
    [0, false],
  ])('HTTP %i: retryable %s, Retry-After honoured only then, never proof of "not sent"', (status, retryable) => {
    expect(classifyStatus(status)).toEqual({ retryable, retryAfter: retryable, neverSent: false });
  });
});

describe('classifyConnectionError', () => {
  it.each([
    ['ECONNREFUSED', true],
    ['ENOTFOUND', true],
    ['EAI_AGAIN', true],
    ['ERR_STREAM_DESTROYED', true],
    ['ERR_STREAM_WRITE_AFTER_END', true],
    ['ECONNRESET', false],
    ['ETIMEDOUT', false],
    ['EPIPE', false],
    ['ECONNABORTED', false],
    ['UND_ERR_SOCKET', false],
    [undefined, false],
    [503, false],
  ])('%s: retryable, no Retry-After, never sent %s', (code, neverSent) => {
    expect(classifyConnectionError(code)).toEqual({ retryable: true, retryAfter: false, neverSent });
  });
});
