// Build step (`npm run build`): transpiles the component with jco into ./generated.
// The component is $GITLAB_AZURE_OIDC_COMPONENT, else $CARGO_TARGET_DIR's or the repo's build
// output (`make component`), else ./gitlab_azure_oidc.wasm next to package.json.
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const candidates = [
  process.env.GITLAB_AZURE_OIDC_COMPONENT,
  process.env.CARGO_TARGET_DIR && join(process.env.CARGO_TARGET_DIR, 'wasm32-wasip2/component/gitlab_azure_oidc.wasm'),
  join(here, '../../target/wasm32-wasip2/component/gitlab_azure_oidc.wasm'),
  join(here, 'gitlab_azure_oidc.wasm'),
].filter(Boolean);
const component = candidates.find((p) => existsSync(p));
if (!component) {
  console.error(`transpile: no component found (tried ${candidates.join(', ')}); run \`make component\``);
  process.exit(1);
}
const out = join(here, 'generated');
rmSync(out, { recursive: true, force: true });
// --instantiation async: the module exports `instantiate()` instead of instantiating itself on
// import, so the wrapper can make a fresh instance after a guest trap. With synchronous
// getCoreModule/instantiateCore callbacks it still returns synchronously.
execFileSync(join(here, 'node_modules/.bin/jco'), [
  'transpile', component, '--instantiation', 'async', '--name', 'gitlab-azure-oidc', '--quiet', '-o', out,
], { stdio: 'inherit' });
console.log(`transpile: ${component} -> ${out}`);
