import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const run = promisify(execFile);

/** Runs an example with tsx against the workspace sources (the "@worknode/source" export condition). */
async function runExample(name: string): Promise<string> {
  const tsx = path.join(root, "node_modules", ".bin", "tsx");
  const { stdout } = await run(tsx, ["--conditions=@worknode/source", path.join(root, "examples", name)], {
    cwd: path.join(root, "examples"),
    timeout: 60_000,
  });
  return stdout;
}

function readmes(): string[] {
  const files = [path.join(root, "README.md")];
  for (const dir of readdirSync(path.join(root, "packages")))
    files.push(path.join(root, "packages", dir, "README.md"));
  return files;
}

describe("README usage examples", () => {
  it("are verbatim copies of runnable files in examples/", () => {
    const marker = /<!-- example: ((?:examples|packages\/[\w-]+\/test)\/[\w.-]+) -->\n```ts\n([\s\S]*?)```/g;
    let found = 0;
    for (const file of readmes()) {
      let text: string;
      try {
        text = readFileSync(file, "utf8");
      } catch {
        continue;
      }
      for (const m of text.matchAll(marker)) {
        found++;
        const example = readFileSync(path.join(root, m[1]!), "utf8");
        expect(m[2], `${path.relative(root, file)} → ${m[1]}`).toBe(example);
      }
    }
    expect(found).toBeGreaterThanOrEqual(5);
  });
});

describe("examples run and do what they say", () => {
  it("services-snapshot prints the service model of examples/services.yaml", async () => {
    const out = await runExample("services-snapshot.ts");
    expect(out).toContain("default/web:http/TCP -> 10.96.0.10:80 ready=[]");
    expect(out).toContain("default/metrics:metrics/TCP -> 10.96.0.12:9100 ready=[10.88.0.200:9100]");
    expect(out).toContain("3 service ports changed since the last commit");
  });

  it("custom-proxier drives a user-written backend through the proxy controller", async () => {
    const out = await runExample("custom-proxier.ts");
    expect(out).toContain("full default/metrics:metrics/TCP: 10.96.0.12:9100 -> 10.88.0.200:9100\n");
    expect(out).toContain("full default/echo:echo/TCP: 10.96.0.11:9000 -> (reject: no endpoints)");
    expect(out).toContain("sync: synced, healthy: true");
  });

  it("cli-embedded runs the CLI dispatcher in-process", async () => {
    const out = await runExample("cli-embedded.ts");
    expect(out).toContain("Usage: worknode node [flags]");
    expect(out).toContain("--pod-manifest-path");
    expect(out).toContain("exit status 0");
  });
});
