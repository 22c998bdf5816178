import type http from "node:http";
import type http2 from "node:http2";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;

/**
 * The console's policy: its own scripts, styles and API only. No inline script or style element,
 * no eval, no frames, no plugins; the page cannot be framed by another site.
 */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const INDEX_CACHE = "no-cache";
const ASSET_CACHE = "public, max-age=31536000, immutable";
const ASSET_NAME = /^\/assets\/([A-Za-z0-9_-]{4,64})\.(js|css)$/;
const TYPES: Record<string, string> = {
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
};

interface Asset {
  body: Buffer;
  gzip: Buffer;
  type: string;
}

interface Loaded {
  index: Asset;
  assets: Map<string, Asset>;
}

/**
 * The built web console (dist/console: index.html and content-hashed assets/), read once into
 * memory with a gzipped copy of each file. Served at `/` (no-cache: it names the current assets)
 * and `/assets/<hash>.js|css` (immutable: a new build has new names).
 */
export class ConsoleAssets {
  private loaded: Loaded | undefined;

  constructor(readonly directory: string = findConsoleDirectory()) {}

  /** Whether `path` is the console's: `/`, `/index.html` or `/assets/…`. */
  static owns(path: string): boolean {
    return path === "/" || path === "/index.html" || path.startsWith("/assets/");
  }

  serve(request: Request, response: Response, path: string): void {
    response.setHeader("X-Content-Type-Options", "nosniff");
    response.setHeader("Referrer-Policy", "no-referrer");
    response.setHeader("Content-Security-Policy", CONSOLE_CSP);
    response.setHeader("X-Frame-Options", "DENY");
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.setHeader("Allow", "GET, HEAD");
      return text(request, response, 405, "use GET\n");
    }
    const loaded = this.load();
    if (!loaded) return text(request, response, 404, `the web console is not built (no ${join(this.directory, "index.html")}); run npm run build\n`);
    if (path === "/" || path === "/index.html") return send(request, response, loaded.index, INDEX_CACHE);
    const match = ASSET_NAME.exec(path);
    const asset = match ? loaded.assets.get(`${match[1]}.${match[2]}`) : undefined;
    if (!asset) return text(request, response, 404, "no such asset\n");
    send(request, response, asset, ASSET_CACHE);
  }

  /** index.html and every asset it names, or undefined when the console is not built (tried again next time). */
  private load(): Loaded | undefined {
    if (this.loaded) return this.loaded;
    try {
      const html = readFileSync(join(this.directory, "index.html"));
      const assets = new Map<string, Asset>();
      for (const [, name, extension] of html.toString("utf8").matchAll(/assets\/([A-Za-z0-9_-]+)\.(js|css)/g)) {
        const file = `${name}.${extension}`;
        assets.set(file, asset(readFileSync(join(this.directory, "assets", file)), TYPES[extension!]!));
      }
      this.loaded = { index: asset(html, "text/html; charset=utf-8"), assets };
      return this.loaded;
    } catch {
      return undefined;
    }
  }
}

function asset(body: Buffer, type: string): Asset {
  return { body, gzip: gzipSync(body, { level: 9 }), type };
}

function send(request: Request, response: Response, asset: Asset, cacheControl: string): void {
  const acceptsGzip = /\bgzip\b/.test(String(request.headers["accept-encoding"] ?? ""));
  const body = acceptsGzip ? asset.gzip : asset.body;
  response.setHeader("Vary", "Accept-Encoding");
  const headers: Record<string, string | number> = { "Content-Type": asset.type, "Cache-Control": cacheControl, "Content-Length": body.length };
  if (acceptsGzip) headers["Content-Encoding"] = "gzip";
  response.writeHead(200, headers);
  if (request.method === "HEAD") response.end();
  else response.end(body);
}

function text(request: Request, response: Response, status: number, body: string): void {
  response.writeHead(status, { "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store" });
  if (request.method === "HEAD") response.end();
  else response.end(body);
}

/**
 * dist/console of the package this module belongs to: from dist/main.js, dist/chunks/*.js (the
 * bundle) and src/server/*.ts (tests) alike, the nearest directory up with a package.json.
 */
export function findConsoleDirectory(from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, "package.json"))) return join(dir, "dist", "console");
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return join(from, "console");
}
