/**
 * Two copies of the package in one process (two versions in node_modules, a bundled copy
 * beside an installed one) still recognise each other's errors and event buses:
 * `instanceof` checks the brand, not the prototype chain. A module imported again under a
 * query string is evaluated again, so its classes are a second copy.
 */
import { describe, expect, it } from 'vitest';
import * as root from '#mcp-layers';
import * as errors from '#core/errors.ts';
import * as events from '#core/events.ts';
import { createFetch } from '#transports/http/fetch.ts';
import * as http from '#transports/http/index.ts';
import * as ws from '#transports/ws/index.ts';
import * as gateway from '#gateway/index.ts';
import { UsageError } from '#gateway/cli/usage.ts';
import { TraceExportUnavailableError } from '#gateway/otel.ts';
import { StackProblemsError } from '#gateway/stack.ts';
import * as breaker from '#middleware/circuit-breaker.ts';
import { LoadShedError } from '#middleware/concurrency.ts';

const second = <T>(path: string): Promise<T> => import(/* @vite-ignore */ `${path}?copy=2`) as Promise<T>;
const other = await second<typeof errors>('../../src/core/errors.ts');
const otherEvents = await second<typeof events>('../../src/core/events.ts');
const { EventBus } = events;
const { CircuitOpenError } = breaker;
const otherBreaker = await second<typeof breaker>('../../middleware/circuit-breaker.ts');

describe('errors made by another copy of the package', () => {
  it('are a second copy (the classes differ)', () => {
    expect(other.TimeoutError).not.toBe(errors.TimeoutError);
    expect(Object.getPrototypeOf(new other.TimeoutError('late'))).not.toBe(errors.TimeoutError.prototype);
  });

  it('are instances of this copy’s classes, and the other way round', () => {
    const timeout = new other.TimeoutError('late', { reason: 'attempt-timeout' });
    expect(timeout instanceof errors.TimeoutError).toBe(true);
    expect(timeout instanceof errors.McpLayersError).toBe(true);
    expect(timeout instanceof Error).toBe(true);
    expect(new errors.ConnectionClosedError() instanceof other.ConnectionClosedError).toBe(true);
    expect(new otherBreaker.CircuitOpenError('open') instanceof CircuitOpenError).toBe(true);
  });

  it('are not instances of another error class, nor is an unrelated error one of ours', () => {
    const timeout = new other.TimeoutError('late');
    expect(timeout instanceof errors.ConnectionClosedError).toBe(false);
    expect(timeout instanceof CircuitOpenError).toBe(false);
    expect(new otherBreaker.CircuitOpenError('open') instanceof LoadShedError).toBe(false);
    expect(new errors.McpLayersError(-32000, 'base') instanceof errors.TimeoutError).toBe(false);
    expect(new Error('plain') instanceof errors.McpLayersError).toBe(false);
    expect(Object.assign(new Error('look-alike'), { name: 'TimeoutError', code: -32001 }) instanceof errors.TimeoutError).toBe(false);
    expect((null as unknown) instanceof errors.McpLayersError).toBe(false);
  });

  it('end an exchange with their own code, not as an internal error', () => {
    const error = errors.toErrorObject(new other.TimeoutError('late', { reason: 'total-timeout' }), 2);
    expect(error).toEqual({ code: errors.ErrorCode.RequestTimeout, message: 'late', data: { layer: 'core', reason: 'total-timeout', attempts: 2 } });
  });

  it('an application’s subclass without a brand keeps the ordinary instanceof', () => {
    class MyError extends errors.McpLayersError {}
    expect(new MyError(-32099, 'mine') instanceof MyError).toBe(true);
    expect(new MyError(-32099, 'mine') instanceof errors.McpLayersError).toBe(true);
    expect(new errors.McpLayersError(-32099, 'base') instanceof MyError).toBe(false);
    expect(new other.McpLayersError(-32099, 'base') instanceof MyError).toBe(false);
  });
});

describe('an EventBus made by another copy of the package', () => {
  it('is an EventBus here, and a look-alike is not', () => {
    expect(otherEvents.EventBus).not.toBe(EventBus);
    expect(new otherEvents.EventBus() instanceof EventBus).toBe(true);
    expect({ on: () => () => {}, emit: () => {}, has: () => false } instanceof EventBus).toBe(false);
  });

  it('is accepted where a transport takes a bus', async () => {
    const bus = new otherEvents.EventBus();
    const fetch = createFetch({ events: bus as events.EventBus });
    try {
      expect(fetch.events).toBe(bus);
    } finally {
      await fetch.close();
    }
    expect(() => createFetch({ events: {} as events.EventBus })).toThrow(errors.InvalidOptionError);
  });
});

describe('every error class the package exports', () => {
  const classes = [root, http, ws, gateway, { UsageError, TraceExportUnavailableError, StackProblemsError }]
    .flatMap((module) => Object.entries(module))
    .filter((entry): entry is [string, new (...args: never[]) => Error] => typeof entry[1] === 'function' && entry[1].prototype instanceof Error);

  it('is found', () => {
    expect(classes.map(([name]) => name)).toEqual(expect.arrayContaining(['McpLayersError', 'InvalidOptionError', 'CircuitOpenError', 'UnauthorizedError', 'AuthenticationError', 'ConfigError', 'UsageError']));
  });

  it.each(classes.filter(([name]) => name !== 'McpLayersError'))('%s extends McpLayersError, ends in Error and has its own brand', (name, ErrorClass) => {
    expect(name).toMatch(/Error$/);
    expect(ErrorClass.name).toBe(name);
    expect(ErrorClass.prototype instanceof errors.McpLayersError).toBe(true);
    expect(Object.getOwnPropertySymbols(ErrorClass.prototype).map(String)).toContain(`Symbol(mcp-layers.error.${name})`);
  });
});

describe('setup errors', () => {
  it('carry a SetupErrorCode, and one reaching an exchange is still an internal error', () => {
    const error = new errors.InvalidOptionError('retry.maxAttempts', 'an integer >= 1', 'three');
    expect(error).toMatchObject({ code: errors.SetupErrorCode.InvalidOption, layer: 'retry', reason: 'invalid-option', option: 'retry.maxAttempts' });
    expect(errors.toErrorObject(error, 0)).toEqual({
      code: errors.ErrorCode.InternalError,
      message: 'Internal error in the layer stack: retry.maxAttempts: expected an integer >= 1, got "three"',
      data: { layer: 'unknown', reason: 'internal', attempts: 0 },
    });
  });

  it('the config, the command line and the trace export have theirs', () => {
    expect(new gateway.ConfigError('x.yaml', ['a: b'])).toMatchObject({ code: 'MCP_LAYERS_INVALID_CONFIG', layer: 'gateway', name: 'ConfigError' });
    expect(new StackProblemsError(['a: b'])).toMatchObject({ code: 'MCP_LAYERS_INVALID_CONFIG', layer: 'gateway', name: 'StackProblemsError' });
    expect(new UsageError('no', 'check')).toMatchObject({ code: 'MCP_LAYERS_USAGE', layer: 'cli', name: 'UsageError' });
    expect(new TraceExportUnavailableError('no sdk')).toMatchObject({ code: 'MCP_LAYERS_TRACE_EXPORT_UNAVAILABLE', name: 'TraceExportUnavailableError' });
  });
});
