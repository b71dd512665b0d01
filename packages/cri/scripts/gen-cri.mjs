#!/usr/bin/env node
// Regenerates packages/cri/src/generated/ from the CRI v1 proto of the pinned k8s.io/cri-api module.
//
//   npm run gen:cri -w @worknode/cri              # the pinned version below
//   CRI_API_VERSION=v0.37.0 npm run gen:cri -w @worknode/cri
//
// Steps: `go mod download -json k8s.io/cri-api@<version>` (Go's module cache; needs `go` only here,
// never for users of the package), copy pkg/apis/runtime/v1/api.proto, run `buf generate` with the
// ts-proto plugin (message types + binary codecs in src/generated/api.ts), derive the RPC table and
// the typed service interfaces from the proto's `service` blocks (src/generated/services.ts), and
// record the version and the proto's sha256 in src/generated/VERSION.json. Every program is spawned
// with an argument array.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The cri-api version matching the repository's Kubernetes pin (v1.36.3). */
const PINNED_CRI_API_VERSION = "v0.36.3";
const MODULE = "k8s.io/cri-api";
const PROTO_IN_MODULE = "pkg/apis/runtime/v1/api.proto";

/** ts-proto options; see the package README for why each one is set. */
const TS_PROTO_OPTIONS = [
  "outputServices=false",
  "esModuleInterop=true",
  "forceLong=bigint",
  "importSuffix=.js",
  "useExactTypes=false",
  "outputTypeRegistry=false",
];

const here = path.dirname(fileURLToPath(import.meta.url));
const pkgDir = path.resolve(here, "..");
const outDir = path.join(pkgDir, "src", "generated");
const version = process.env.CRI_API_VERSION || PINNED_CRI_API_VERSION;
const require = createRequire(import.meta.url);

function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], ...opts });
}

/** Finds an executable that an npm package installs into a node_modules/.bin on the way up. */
function binFromNodeModules(name) {
  let dir = pkgDir;
  for (;;) {
    const candidate = path.join(dir, "node_modules", ".bin", name);
    try {
      readFileSync(candidate);
      return candidate;
    } catch {
      const parent = path.dirname(dir);
      if (parent === dir) throw new Error(`${name} not found in node_modules/.bin (run npm install)`);
      dir = parent;
    }
  }
}

/**
 * The `service` blocks of the proto: every `rpc Name(Req) returns (stream? Res)` with the comment
 * lines right above it.
 */
function parseServices(text) {
  const services = [];
  let current;
  let comment = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    const svc = /^service\s+(\w+)\s*\{/.exec(line);
    if (svc) {
      current = { name: svc[1], rpcs: [] };
      services.push(current);
      comment = [];
      continue;
    }
    if (!current) continue;
    if (line === "}") {
      current = undefined;
      continue;
    }
    if (line.startsWith("//")) {
      comment.push(line.replace(/^\/\/ ?/, ""));
      continue;
    }
    const rpc = /^rpc\s+(\w+)\s*\(\s*(stream\s+)?(\w+)\s*\)\s*returns\s*\(\s*(stream\s+)?(\w+)\s*\)/.exec(
      line,
    );
    if (rpc) {
      if (rpc[2]) throw new Error(`client-streaming RPC ${rpc[1]} is not supported by the generator`);
      current.rpcs.push({
        name: rpc[1],
        request: rpc[3],
        response: rpc[5],
        serverStreaming: Boolean(rpc[4]),
        comment,
      });
    }
    comment = [];
  }
  if (services.length === 0) throw new Error("no service found in the proto");
  return services;
}

const lowerCamel = (name) => name.charAt(0).toLowerCase() + name.slice(1);
const tsdoc = (lines, indent) => {
  const body = lines.map((l) => l.replaceAll("*/", "*\\/"));
  if (body.length === 0) return "";
  return `${indent}/**\n${body.map((l) => `${indent} *${l ? ` ${l}` : ""}`).join("\n")}\n${indent} */\n`;
};

/** Renders src/generated/services.ts: one RPC table and one typed interface per service. */
function renderServices(services, header) {
  const out = [header, `import type { CriCallOptions } from "../call-options.js";\n`];
  out.push(`import * as api from "./api.js";\n\n`);
  out.push(
    `/** The proto package of every service below. */\nexport const CRI_PROTO_PACKAGE = "runtime.v1";\n\n`,
  );
  for (const svc of services) {
    const table = `${lowerCamel(svc.name)}Rpcs`;
    out.push(
      `/** Every RPC of \`runtime.v1.${svc.name}\`, keyed by the lowerCamelCase method name of the client. */\n`,
    );
    out.push(`export const ${table} = {\n`);
    for (const r of svc.rpcs) {
      out.push(`  ${lowerCamel(r.name)}: {\n`);
      out.push(`    service: "${svc.name}",\n    name: "${r.name}",\n`);
      out.push(`    path: "/runtime.v1.${svc.name}/${r.name}",\n`);
      out.push(`    serverStreaming: ${r.serverStreaming},\n`);
      out.push(`    request: api.${r.request},\n    response: api.${r.response},\n  },\n`);
    }
    out.push(`} as const;\n\n`);
    out.push(`/** Typed client of \`runtime.v1.${svc.name}\`: one method per RPC. */\n`);
    out.push(`export interface Cri${svc.name} {\n`);
    for (const r of svc.rpcs) {
      out.push(tsdoc(r.comment, "  "));
      const ret = r.serverStreaming ? `AsyncIterable<api.${r.response}>` : `Promise<api.${r.response}>`;
      out.push(
        `  ${lowerCamel(r.name)}(request?: api.DeepPartial<api.${r.request}>, options?: CriCallOptions): ${ret};\n`,
      );
    }
    out.push(`}\n\n`);
  }
  return out.join("");
}

// 1. The proto from the published Go module.
const mod = JSON.parse(run("go", ["mod", "download", "-json", `${MODULE}@${version}`]));
if (mod.Error) throw new Error(`go mod download ${MODULE}@${version}: ${mod.Error}`);
const protoSrc = path.join(mod.Dir, PROTO_IN_MODULE);
const proto = readFileSync(protoSrc);
if (/gogoproto/.test(proto.toString("utf8"))) {
  throw new Error(`${MODULE}@${version} imports gogo.proto; use cri-api >= v0.33 (no gogo imports)`);
}
const sha256 = createHash("sha256").update(proto).digest("hex");

// 2. buf generate with the ts-proto plugin from node_modules, in a scratch module.
const work = mkdtempSync(path.join(tmpdir(), "worknode-gen-cri-"));
try {
  copyFileSync(protoSrc, path.join(work, "api.proto"));
  const tsProtoPlugin = binFromNodeModules("protoc-gen-ts_proto");
  const template = {
    version: "v2",
    plugins: [{ local: tsProtoPlugin, out: "out", opt: TS_PROTO_OPTIONS }],
  };
  writeFileSync(path.join(work, "buf.yaml"), "version: v2\n");
  const buf = binFromNodeModules("buf");
  run(buf, ["generate", "--template", JSON.stringify(template)], { cwd: work });

  mkdirSync(outDir, { recursive: true });
  rmSync(path.join(outDir, "api.ts"), { force: true });
  const generated = readFileSync(path.join(work, "out", "api.ts"), "utf8");
  const header =
    `// Generated by packages/cri/scripts/gen-cri.mjs from ${MODULE}@${version} ${PROTO_IN_MODULE}\n` +
    `// (sha256 ${sha256}). Do not edit: run \`npm run gen:cri -w @worknode/cri\`.\n`;
  writeFileSync(path.join(outDir, "api.ts"), header + generated);
  rmSync(path.join(outDir, "api.proto"), { force: true });
  copyFileSync(protoSrc, path.join(outDir, "api.proto"));
  chmodSync(path.join(outDir, "api.proto"), 0o644);
  const services = parseServices(proto.toString("utf8"));
  writeFileSync(path.join(outDir, "services.ts"), renderServices(services, header));

  const tsProtoVersion = JSON.parse(readFileSync(require.resolve("ts-proto/package.json"), "utf8")).version;
  const bufVersion = run(buf, ["--version"]).trim();
  const record = {
    module: MODULE,
    version,
    proto: PROTO_IN_MODULE,
    protoSha256: sha256,
    protoPackage: "runtime.v1",
    generator: { "ts-proto": tsProtoVersion, buf: bufVersion, options: TS_PROTO_OPTIONS },
  };
  writeFileSync(path.join(outDir, "VERSION.json"), `${JSON.stringify(record, null, 2)}\n`);
  console.log(`generated src/generated/api.ts from ${MODULE}@${version} (sha256 ${sha256})`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
