/** `--help` of every command, with examples. */

export const MAIN_HELP = `mcp-layers — resilience and observability layers for MCP, and a gateway that puts them
in front of any MCP server.

Usage:
  mcp-layers <command> [options]

Commands:
  gateway   serve an MCP server (a stdio command, an http(s) or ws(s) URL, or a service's
            workers on a broker) over Streamable HTTP and WebSocket, through the layer
            stacks of a config file
  worker    serve a stdio MCP server to the clients of a broker (NATS or Redis), a child
            process per session, for as many machines as you run workers on
  check     validate a config file without starting anything
  schema    print the JSON Schema of config files (for editors)
  help      show the help of a command

Options:
  -h, --help      show this help
  -v, --version   print the version

Examples:
  mcp-layers gateway -- npx -y @modelcontextprotocol/server-everything
  mcp-layers gateway --config mcp-layers.yaml
  mcp-layers worker --upstream nats://127.0.0.1:4222/tools -- node ./my-server.js
  mcp-layers check --config mcp-layers.yaml
  mcp-layers schema > mcp-layers.schema.json

Exit codes: 0 done, 1 failed while running, 2 invalid arguments or configuration
(nothing was started). Docs: docs/gateway.md, docs/scale-out.md.
`;

export const WORKER_HELP = `mcp-layers worker — serve a stdio MCP server to the clients of a broker.

Usage:
  mcp-layers worker [options] --upstream <broker-url> -- <command> [args...]
  mcp-layers worker --config FILE [options]

The broker URL names the broker and the service: nats://HOST:PORT/SERVICE (JetStream;
tls:// for TLS) or redis://[USER:PASSWORD@]HOST:PORT/SERVICE (Redis Streams; rediss://
for TLS). Clients reach the service with NatsClientTransport / RedisClientTransport
(mcp-layers/nats, mcp-layers/redis) or a gateway in front of the broker; every worker of
the service shares its load. Each session gets its own child process (a 2026-07-28
request without a session: a child for that request). /metrics, /healthz and /readyz are
served on a port of their own (default 127.0.0.1:9464). SIGTERM or SIGINT (Ctrl-C) stops
taking work, lets the requests in hand finish (up to --drain-timeout), hands the rest
back to the broker, then stops the children; a second signal stops at once.

Options:
  -c, --config FILE          YAML or JSON config: upstream (the stdio server and its stack),
                             worker (the broker, its stack, the options below); see
                             \`mcp-layers schema\`, docs/gateway.md "Worker"
  -u, --upstream URL         the broker URL (worker.broker)
  -l, --listen [HOST:]PORT   the metrics and health listener (default 127.0.0.1:9464; 0: a free port)
      --max-in-flight N      requests held at once (default 64)
      --max-sessions N       sessions held at once, a child each (default 64)
      --drain-timeout MS     on shutdown, how long requests in hand may take (default 10000)
      --id ID                this worker's id on the broker (default a random one)
      --log-level LEVEL      error, warn, info (default), debug
      --log-format FORMAT    json or pretty (default: pretty on a terminal, else json)
  -h, --help                 show this help

Options given on the command line override the config file; a command after -- replaces
the config's upstream command (its layers stay).

Examples:
  # a stdio server for the service "tools", on a local NATS server (nats-server -js)
  mcp-layers worker --upstream nats://127.0.0.1:4222/tools -- node ./my-server.js

  # the same over Redis, the password from the environment
  mcp-layers worker --upstream "redis://default:\${REDIS_PASSWORD}@redis.internal:6379/tools" -- node ./my-server.js

  # policies and limits from a file, metrics on another port
  mcp-layers worker --config worker.yaml --listen 127.0.0.1:9465

  # then, from any MCP client (mcp-layers/nats):
  #   new NatsClientTransport({ servers: 'nats://127.0.0.1:4222', service: 'tools' })
`;

export const GATEWAY_HELP = `mcp-layers gateway — serve an MCP server through layer stacks.

Usage:
  mcp-layers gateway --config FILE [options]
  mcp-layers gateway [options] -- <command> [args...]     (a stdio server)
  mcp-layers gateway [options] --upstream <url>           (an http(s) or ws(s) server, or nats://… redis://…)

Listens on 127.0.0.1:8080 by default, serving the MCP endpoint /mcp over Streamable
HTTP and WebSocket, plus /metrics, /healthz and /readyz. Each client session gets its
own upstream session (for a stdio server, its own child process). SIGTERM or SIGINT
(Ctrl-C) stops accepting, lets requests in flight finish (up to --drain-timeout),
then closes every session; a second signal stops at once. SIGHUP reloads the config
file: checked first (a bad one keeps the running config), then applied without
dropping a session.

Options:
  -c, --config FILE          YAML or JSON config (see \`mcp-layers schema\`, docs/gateway.md)
  -w, --watch                reload the config file whenever it changes (as SIGHUP does)
  -u, --upstream URL         the upstream server: http(s)://… or ws(s)://…, or a service's workers on a
                             broker: nats://HOST:PORT/SERVICE, redis(s)://HOST:PORT/SERVICE (instead of a command)
  -l, --listen [HOST:]PORT   where to listen (default 127.0.0.1:8080; PORT 0 picks a free one)
      --transports LIST      http, websocket or both (default http,websocket)
      --max-sessions N       concurrent sessions (default 64)
      --idle-timeout MS      close sessions idle this long (default 600000; 0: never)
      --drain-timeout MS     on shutdown, how long requests in flight may take (default 10000)
      --log-level LEVEL      error, warn, info (default), debug
      --log-format FORMAT    json or pretty (default: pretty on a terminal, else json)
  -h, --help                 show this help

Options given on the command line override the config file; a command after -- replaces
the config's upstream (its layers stay).

Examples:
  # a stdio server, with the default stacks (tracing, metrics, logs)
  mcp-layers gateway -- node ./my-server.js --verbose

  # a remote server, on another port
  mcp-layers gateway --upstream https://mcp.example.com/mcp --listen 127.0.0.1:9000

  # one of several replicas in front of the workers of service "tools" (docs/scale-out.md)
  mcp-layers gateway --upstream nats://127.0.0.1:4222/tools --listen 127.0.0.1:8081

  # other machines too: a decision, not a default — with downstream.bearerTokens in the config
  mcp-layers gateway --config mcp-layers.yaml --listen 0.0.0.0:8080

  # policies from a file: retries, breaker, per-tool timeouts
  mcp-layers gateway --config mcp-layers.yaml --log-format pretty

  # then, from any MCP client:
  #   new StreamableHTTPClientTransport(new URL('http://127.0.0.1:8080/mcp'))
  #   new WebSocketClientTransport('ws://127.0.0.1:8080/mcp')       (mcp-layers/ws)
`;

export const CHECK_HELP = `mcp-layers check — validate a gateway or worker config without starting anything.

Usage:
  mcp-layers check --config FILE
  mcp-layers check FILE

Checks the file's shape (every option of every layer: names, types, ranges), builds each
layer (the rules that span options, e.g. backoff.maxDelayMs >= initialDelayMs), looks
the stdio command up on PATH and refuses layers the transports cannot carry; a file with
a worker section is checked for the worker too (its broker URL, its stack). Each problem
is printed with its path, what was expected, what was found and its line:

  upstream.layers[2].retry.maxAttempts: expected an integer >= 1, got "three" (line 14)

Environment variables in the file (\${NAME}) are substituted as the gateway would.

Options:
  -c, --config FILE   the config file
  -q, --quiet         print nothing when the config is valid
  -h, --help          show this help

Exit codes: 0 valid, 2 invalid.

Examples:
  mcp-layers check --config mcp-layers.yaml
  CLIENT_SECRET=x mcp-layers check examples/gateway/remote-oauth.yaml
`;

export const SCHEMA_HELP = `mcp-layers schema — print the JSON Schema of gateway and worker config files.

Usage:
  mcp-layers schema

Prints JSON Schema (draft 2020-12) to stdout: every option of every layer, with its
description. Point your editor at it for completion and validation while you write a config:

  # YAML (the YAML language server reads this comment)
  # yaml-language-server: $schema=./mcp-layers.schema.json

  // JSON
  { "$schema": "./mcp-layers.schema.json", "upstream": { … } }

Options:
  -h, --help   show this help

Examples:
  mcp-layers schema > mcp-layers.schema.json
  mcp-layers schema | jq '.properties.upstream.properties | keys'
`;

export const HELP: Record<string, string> = { gateway: GATEWAY_HELP, worker: WORKER_HELP, check: CHECK_HELP, schema: SCHEMA_HELP };
