// The CI/CD catalog component (templates/exchange.yml) in real pipelines: gitlab-ci-local runs
// each one in shell mode (no Docker) from a throwaway git project that includes the component with
// `include: component:` (gitlab-ci-local resolves it to the project's own templates/ at the same
// commit, as GitLab's component tests do). The job's GitLab ID token is minted by the GitLab
// stand-in and given as a variable; the exchange goes to the Entra stand-in on loopback.
//
// Every child process is bounded (gitlab-ci-local is killed after two minutes, the stand-in
// stops itself after ten) and stopped in `after`.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "../../..");
const TARGET = process.env.CARGO_TARGET_DIR ?? path.join(REPO, "target");
const CLI = process.env.GITLAB_AZURE_OIDC_CLI ?? path.join(TARGET, "release/gitlab-azure-oidc");
const STAND_IN = process.env.GITLAB_AZURE_OIDC_STAND_IN ?? path.join(TARGET, "release/stand-in");
const GCL = path.resolve(HERE, "../node_modules/gitlab-ci-local/dist/index.js");

let standIn;
let ready;
let binaryServer;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "gao-component-"));

async function post(url, body) {
  const res = await fetch(url, { method: "POST", body: JSON.stringify(body) });
  assert.equal(res.status, 200, `${url}: HTTP ${res.status}`);
  return res.json();
}

const entra = (behaviour) => post(`${ready.entra}/_control/behaviour`, behaviour);
const tokenLifetime = (seconds) => post(`${ready.entra}/_control/lifetime`, { seconds });
const mint = async () => (await post(`${ready.issuer}/_control/mint`, {})).token;
const stats = async () => (await fetch(`${ready.entra}/_control/stats`)).json();

before(async () => {
  const readyFile = path.join(scratch, "ready.json");
  standIn = spawn(STAND_IN, ["--ready-file", readyFile, "--max-seconds", "600"], {
    stdio: "ignore",
  });
  for (let i = 0; i < 100 && !fs.existsSync(readyFile); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  ready = JSON.parse(fs.readFileSync(readyFile, "utf8"));
  // The CLI binary, served over loopback HTTP for the `binary: <URL>` input.
  binaryServer = http.createServer((req, res) => {
    if (req.url === "/gitlab-azure-oidc") {
      res.writeHead(200);
      fs.createReadStream(CLI).pipe(res);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((r) => binaryServer.listen(0, "127.0.0.1", r));
});

after(() => {
  standIn?.kill("SIGKILL");
  binaryServer?.close();
  fs.rmSync(scratch, { recursive: true, force: true });
});

/** A git project holding the component and `ciYaml`, with a GitLab-like remote. */
function project(name, ciYaml) {
  const dir = path.join(scratch, name);
  fs.mkdirSync(path.join(dir, "templates"), { recursive: true });
  fs.copyFileSync(path.join(REPO, "templates/exchange.yml"), path.join(dir, "templates/exchange.yml"));
  fs.writeFileSync(path.join(dir, ".gitlab-ci.yml"), ciYaml);
  const git = (...args) =>
    execFileSync("git", args, { cwd: dir, stdio: "pipe", env: { ...process.env, GIT_CONFIG_NOSYSTEM: "1" } });
  git("init", "-q", "-b", "main");
  git("add", "-A");
  git("-c", "user.email=ci@example.com", "-c", "user.name=ci", "commit", "-qm", "pipeline");
  git("remote", "add", "origin", "git@gitlab.example.com:acme/payments.git");
  git("update-ref", "refs/remotes/origin/main", "HEAD");
  git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main");
  return dir;
}

/**
 * Runs the pipeline (or `jobs`) with the GitLab token as a variable; the CLI is on PATH. Async,
 * so this process keeps serving the binary download while the pipeline runs.
 */
function pipeline(dir, token, jobs = []) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [GCL, "--variable", `GITLAB_OIDC_TOKEN=${token}`, ...jobs], {
      cwd: dir,
      env: { ...process.env, PATH: `${path.dirname(CLI)}:${process.env.PATH}` },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** The component's include, with the stand-ins' URLs in `args`. */
function include(inputs = {}) {
  const lines = Object.entries({
    tenant_id: ready.tenant,
    client_id: ready.client_id,
    args: `--authority-url ${ready.entra} --issuer ${ready.issuer}`,
    ...inputs,
  }).map(([k, v]) => `      ${k}: ${JSON.stringify(v)}`);
  return [
    "include:",
    "  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/exchange@$CI_COMMIT_SHA",
    "    inputs:",
    ...lines,
    "",
  ].join("\n");
}

/** The base64url header of the stand-in's access tokens. */
const HEADER = Buffer.from('{"typ":"JWT","alg":"RS256","kid":"stand-in"}').toString("base64url");

test("the component exchanges the ID token and the job's script uses the Azure token", async () => {
  await entra({ mode: "normal" });
  const dir = project(
    "deploy",
    include() +
      `deploy:
  extends: .azure-oidc
  script:
    - test "$(stat -c %a "$AZURE_ACCESS_TOKEN_FILE")" = 600
    - echo "header $(printf %s "$AZURE_ACCESS_TOKEN" | cut -d. -f1)"
`,
  );
  const { code, output } = await pipeline(dir, await mint());
  assert.equal(code, 0, output);
  assert.match(output, new RegExp(`deploy +> header ${HEADER}`));
  assert.match(output, /PASS +deploy/);
  const { last_form: form } = await stats();
  assert.equal(form.client_id, ready.client_id);
  assert.equal(form.scope, "https://management.azure.com/.default");
});

test("a refused exchange fails the job before its script runs", async () => {
  await entra({ mode: "error", code: 700213 });
  try {
    const dir = project(
      "refused",
      include() +
        `deploy:
  extends: .azure-oidc
  script:
    - echo "the script ran"
`,
    );
    const { code, output } = await pipeline(dir, await mint());
    assert.notEqual(code, 0, output);
    assert.match(output, /error: entra-error: .*AADSTS700213/);
    assert.match(output, /FAIL +deploy/);
    assert.doesNotMatch(output, /> the script ran/);
  } finally {
    await entra({ mode: "normal" });
  }
});

test("a token for another audience is refused before anything is sent to Entra", async () => {
  await entra({ mode: "normal" });
  const dir = project(
    "audience",
    include() +
      `deploy:
  extends: .azure-oidc
  script:
    - echo "the script ran"
`,
  );
  const token = (await post(`${ready.issuer}/_control/mint`, { aud: "https://gitlab.com" })).token;
  const before = (await stats()).token_requests;
  const { code, output } = await pipeline(dir, token);
  assert.notEqual(code, 0, output);
  assert.match(output, /error: audience-mismatch/);
  assert.equal((await stats()).token_requests, before);
});

test("the binary is downloaded from a URL and refused when its SHA-256 differs", async () => {
  await entra({ mode: "normal" });
  const sha = createHash("sha256").update(fs.readFileSync(CLI)).digest("hex");
  const url = `http://127.0.0.1:${binaryServer.address().port}/gitlab-azure-oidc`;
  const job = `deploy:
  extends: .azure-oidc
  script:
    - echo "header $(printf %s "$AZURE_ACCESS_TOKEN" | cut -d. -f1)"
`;
  const ok = await pipeline(project("download", include({ binary: url, binary_sha256: sha }) + job), await mint());
  assert.equal(ok.code, 0, ok.output);
  assert.match(ok.output, new RegExp(`> header ${HEADER}`));

  const wrong = "0".repeat(64);
  const bad = await pipeline(project("tampered", include({ binary: url, binary_sha256: wrong }) + job), await mint());
  assert.notEqual(bad.code, 0, bad.output);
  assert.match(bad.output, /FAILED|does not match|sha256sum/i);
  assert.doesNotMatch(bad.output, /> header /);
});

test("output dotenv hands the token to a later job through a dotenv report", async () => {
  await entra({ mode: "normal" });
  const dir = project(
    "dotenv",
    include({ output: "dotenv" }) +
      `stages: [token, use]
azure-token:
  stage: token
  extends: .azure-oidc
  script:
    - test -n "$AZURE_ACCESS_TOKEN"
  artifacts:
    expire_in: 1 hour
    reports:
      dotenv: azure-oidc.env
use:
  stage: use
  needs: [azure-token]
  script:
    - echo "later job header $(printf %s "$AZURE_ACCESS_TOKEN" | cut -d. -f1) until $AZURE_ACCESS_TOKEN_EXPIRES_ON"
`,
  );
  const { code, output } = await pipeline(dir, await mint());
  assert.equal(code, 0, output);
  assert.match(output, new RegExp(`use +> later job header ${HEADER} until \\d+`));
});

test("renew keeps the token file fresh during the job and stops with it", async () => {
  await entra({ mode: "normal" });
  await tokenLifetime(4);
  try {
    const dir = project(
      "renew",
      include({ renew: true }) +
        `long:
  extends: .azure-oidc
  script:
    - first="$AZURE_ACCESS_TOKEN"
    - sleep 6
    - test "$(cat "$AZURE_ACCESS_TOKEN_FILE")" != "$first"
    - echo "renewed during the job"
`,
    );
    const before = (await stats()).token_requests;
    const { code, output } = await pipeline(dir, await mint());
    assert.equal(code, 0, output);
    assert.match(output, /> renewed during the job/);
    assert.match(output, /keeping .* fresh in the background/);
    assert.ok((await stats()).token_requests - before >= 3, "the first exchange and two renewals");
    // The renewer watches the job's shell and is gone within about a second of its exit.
    await new Promise((r) => setTimeout(r, 2500));
    const renewers = fs
      .readdirSync("/proc")
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return fs.readFileSync(`/proc/${p}/cmdline`, "utf8").includes("--renewer-of");
        } catch {
          return false;
        }
      });
    for (const pid of renewers) process.kill(Number(pid), "SIGKILL");
    assert.deepEqual(renewers, [], "no renewer outlives the job");
  } finally {
    await tokenLifetime(3599);
  }
});
