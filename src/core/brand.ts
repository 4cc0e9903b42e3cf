/**
 * Brands: `instanceof` that holds across two copies of the package in one process (two
 * versions in node_modules, a bundled copy beside an installed one). An application's
 * `error instanceof TimeoutError` must not depend on which copy made the error, nor a
 * transport's `events instanceof EventBus` on which copy made the bus.
 *
 * A branded class owns a registered symbol (`Symbol.for`, shared by every copy); its
 * prototype carries it, and `Symbol.hasInstance` looks for it instead of walking the
 * prototype chain, as undici does for its errors. A subclass without a brand of its own
 * (an application's) keeps the ordinary check.
 */

const OWN_BRAND = Symbol.for('mcp-layers.brand');

type Class = abstract new (...args: never[]) => unknown;

/** Brands `target` as `mcp-layers.<key>`; call it once, in the class's static block. */
export function brand(target: Class, key: string): void {
  const symbol = Symbol.for(`mcp-layers.${key}`);
  Object.defineProperty(target, OWN_BRAND, { value: symbol });
  Object.defineProperty(target.prototype, symbol, { value: true });
}

/** What `value instanceof target` answers for a branded class (its `Symbol.hasInstance`). */
export function isBranded(target: Class, value: unknown): boolean {
  const symbol = Object.hasOwn(target, OWN_BRAND) ? (target as unknown as Record<symbol, symbol>)[OWN_BRAND] : undefined;
  if (symbol === undefined) return Function.prototype[Symbol.hasInstance].call(target, value);
  return (typeof value === 'object' || typeof value === 'function') && value !== null && (value as Record<symbol, unknown>)[symbol] === true;
}
