/**
 * A `fetch` that authorizes every HTTP request with the token source's current token:
 * the way the token reaches the wire for HTTP transports that do not take it per
 * message (the SDKs' StreamableHTTPClientTransport: v1 ignores per-message headers, v2
 * refuses to let them set `Authorization`). It covers every request the transport makes:
 * the POSTs, the GET of the standalone SSE stream, the DELETE that ends a session.
 *
 * On a 401 whose challenge says the token is bad (`Bearer error="invalid_token"`, or no
 * error at all) it refreshes — once, for all requests that saw the same token rejected —
 * and sends the request again: a 401 proves the server did not act on it. A second 401
 * ends in an UnauthorizedError instead of a loop. Request bodies are replayed only when
 * they can be (strings, bytes, form data; not streams).
 */
import { UnauthorizedError } from './unauthorized.ts';
import type { AccessToken } from './access-token.ts';
import type { FetchLike } from './token-endpoint.ts';
import type { TokenSource } from './token-source.ts';

export function authorizedFetch(source: TokenSource, base: FetchLike = (input, init) => fetch(input, init)): FetchLike {
  const authorized: FetchLike = async (input, init) => {
    const signal = init?.signal ?? (input instanceof Request ? input.signal : undefined) ?? undefined;
    // A Request's body can be read once: keep a copy for the replay.
    const spare = input instanceof Request && input.body !== null ? input.clone() : undefined;
    const token = await source.token(signal);
    const response = await base(input, withToken(input, init, token));
    if (!rejectsToken(response) || !replayable(input, init)) return response;
    await response.body?.cancel().catch(() => {});
    const url = new URL(input instanceof Request ? input.url : String(input));
    const fresh = await source.rejected(token, { reason: 'rejected', response, url }, signal);
    const again = await base(spare ?? input, withToken(spare ?? input, init, fresh));
    if (!rejectsToken(again)) return again;
    await again.body?.cancel().catch(() => {});
    throw new UnauthorizedError(
      `${url.origin}${url.pathname} rejected the access token with HTTP 401${challengeError(again)} even after a refresh; check that the token is meant for this server (resource / audience) and carries the scopes it needs`,
      { reason: 'token-rejected', neverSent: true, data: { status: 401 } },
    );
  };
  // Keep what the base fetch advertises (mcp-layers/http's createFetch exposes a wire control under a symbol).
  for (const key of Object.getOwnPropertySymbols(base)) {
    Object.defineProperty(authorized, key, { value: (base as unknown as Record<symbol, unknown>)[key], enumerable: false });
  }
  return authorized;
}

function withToken(input: string | URL | Request, init: RequestInit | undefined, token: AccessToken): RequestInit {
  const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
  headers.set('authorization', token.authorization());
  return { ...init, headers };
}

/** 401, and nothing in the challenge says it is about something a new token cannot fix. */
export function rejectsToken(response: Response): boolean {
  if (response.status !== 401) return false;
  const error = bearerError(response.headers.get('www-authenticate'));
  return error === undefined || error === 'invalid_token';
}

function replayable(input: string | URL | Request, init: RequestInit | undefined): boolean {
  const body = init?.body;
  if (body === undefined || body === null) return true;
  return !(body instanceof ReadableStream) && !(typeof body === 'object' && Symbol.asyncIterator in body);
}

function challengeError(response: Response): string {
  const error = bearerError(response.headers.get('www-authenticate'));
  return error === undefined ? '' : ` (${error})`;
}

/**
 * The `error` parameter of the Bearer challenge in a WWW-Authenticate header
 * (RFC 6750 §3), or undefined when there is none. Only this one parameter is read.
 */
export function bearerError(header: string | null): string | undefined {
  if (header === null) return undefined;
  const bearer = /(?:^|,)\s*Bearer\b(.*)$/i.exec(header);
  if (bearer === null) return undefined;
  // Parameters run until the next challenge (a scheme token followed by a space).
  const params = (bearer[1] as string).split(/,\s*[A-Za-z][\w-]*\s+(?=[\w-]+=)/)[0] as string;
  const match = /(?:^|[\s,])error\s*=\s*(?:"([^"]*)"|([^\s,]+))/i.exec(params);
  return match === null ? undefined : (match[1] ?? match[2]);
}
