import { createRoute } from '@hono/zod-openapi';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { notFound } from '../errors.ts';
import { addRoute, errorResponses, OPENAPI_PATH, routeGroup } from '../openapi.ts';

/**
 * GET /docs: a browsable reference of /openapi.json (Swagger UI). Its script and stylesheet come from the
 * swagger-ui-dist package and are served here, so the page works on a machine without internet.
 */
export const REFERENCE_PATH = '/docs';

/** The only files of swagger-ui-dist the page loads. */
const ASSETS: Record<string, string> = {
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'swagger-ui.css': 'text/css; charset=utf-8',
};

const assetDir = () => dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

const page = () => `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>vm-migration-orchestrator API</title>
    <link rel="stylesheet" href="${REFERENCE_PATH}/assets/swagger-ui.css" />
  </head>
  <body>
    <div id="reference"></div>
    <script src="${REFERENCE_PATH}/assets/swagger-ui-bundle.js"></script>
    <script>
      window.ui = SwaggerUIBundle({ url: '${OPENAPI_PATH}', dom_id: '#reference' });
    </script>
  </body>
</html>
`;

const referencePage = createRoute({
  method: 'get',
  path: '/',
  tags: ['meta'],
  summary: 'A browsable reference of this document (no token)',
  security: [],
  responses: { 200: { description: 'HTML', content: { 'text/html': { schema: z.string() } } } },
});

const referenceAsset = createRoute({
  method: 'get',
  path: '/assets/{file}',
  tags: ['meta'],
  summary: "The reference page's script and stylesheet (no token)",
  security: [],
  request: { params: z.object({ file: z.enum(Object.keys(ASSETS) as [string, ...string[]]) }) },
  responses: {
    200: { description: 'the file', content: { 'text/javascript': { schema: z.string() } } },
    ...errorResponses(404),
  },
});

export function referencePageRoutes() {
  const app = routeGroup();
  const cache = new Map<string, Buffer>();
  addRoute(app, referencePage, (c) => c.html(page()));
  addRoute(app, referenceAsset, async (c) => {
    const file = c.req.param('file') ?? '';
    const type = ASSETS[file];
    if (!type) throw notFound('file', file);
    let body = cache.get(file);
    if (!body) {
      body = await readFile(join(assetDir(), file));
      cache.set(file, body);
    }
    return c.body(new Uint8Array(body), 200, { 'content-type': type, 'cache-control': 'max-age=3600' });
  });
  return app;
}
