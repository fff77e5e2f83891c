// Starts and steers the project's loopback stand-ins (a GitLab-like issuer and an Entra-like
// token endpoint) for the tests. Not part of the library.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const TESTDATA = join(REPO, 'src/entra/testdata');
export const DEMO_POLICY = join(REPO, 'examples/policies/demo.json');
export const ARM = 'https://management.azure.com/.default';

function binary() {
  const env = process.env.GITLAB_AZURE_OIDC_STAND_IN || process.env.STAND_IN;
  if (env) return env;
  const path = join(process.env.CARGO_TARGET_DIR || join(REPO, 'target'), 'release/stand-in');
  if (!existsSync(path)) throw new Error(`${path} not found: cargo build --release -p testkit --bin stand-in, or set STAND_IN`);
  return path;
}

async function json(method, url, body) {
  const res = await fetch(url, { method, body: body === undefined ? undefined : JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  if (res.status !== 200) throw new Error(`${method} ${url}: HTTP ${res.status}`);
  return res.json();
}

/** Starts the stand-in; call `stop()` (in `after`) to kill it. */
export async function startStandIn(maxSeconds = 900) {
  const dir = mkdtempSync(join(tmpdir(), 'stand-in-'));
  const ready = join(dir, 'ready.json');
  const child = spawn(binary(), ['--ready-file', ready, '--max-seconds', String(maxSeconds)], { stdio: ['ignore', 'inherit', 'inherit'] });
  const deadline = Date.now() + 30_000;
  while (!existsSync(ready)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error('stand-in did not start');
    }
    await sleep(50);
  }
  const info = JSON.parse(readFileSync(ready, 'utf8'));
  return {
    ...info,
    mint: async (overrides = {}) => (await json('POST', `${info.issuer}/_control/mint`, overrides)).token,
    jwks: async () => {
      const discovery = await json('GET', `${info.issuer}/.well-known/openid-configuration`);
      return (await fetch(discovery.jwks_uri)).text();
    },
    behaviour: (b) => json('POST', `${info.entra}/_control/behaviour`, b),
    stats: () => json('GET', `${info.entra}/_control/stats`),
    stop: () => {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
