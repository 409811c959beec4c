// Prints the OpenAPI document the server serves at /openapi.json (for linters and generators without a server):
// `npm run openapi > openapi.json`; `npm run openapi:lint` runs Redocly's recommended rules on it.
import { buildOpenApi } from '../src/rpc/openapi.ts';
import { registry } from '../src/resources/index.ts';

process.stdout.write(`${JSON.stringify(buildOpenApi(registry), null, 2)}\n`);
