/**
 * A URL as messages and logs may show it: scheme, host and path. Credentials hide in the
 * userinfo, tokens in the query and the fragment; none of them tells a reader where the
 * request went.
 */
export function redactUrl(url: string | URL): string {
  try {
    const { protocol, host, pathname } = typeof url === 'string' ? new URL(url) : url;
    return `${protocol}//${host}${pathname}`;
  } catch {
    return '(unparseable URL)';
  }
}
