/**
 * Reading a component configuration file (KubeletConfiguration,
 * KubeProxyConfiguration …): exactly one YAML mapping with the expected
 * apiVersion and kind, errors naming the file and the line.
 *
 * @module
 */

import { ConfigError } from "@worknode/core";
import { isMap, LineCounter, parseAllDocuments } from "yaml";

/** Describes a YAML value for an error message (`"text"`, `42`, `a list`, `a mapping`). */
export function describeValue(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return typeof v === "string" ? JSON.stringify(v) : String(v);
}

/**
 * Parses `text` as one `kind` object of `apiVersion` and returns it as plain data.
 * @param file the file's path, for messages
 * @throws ConfigError `--config <file>: …` for YAML errors, several or no documents, a non-mapping,
 *   or a wrong apiVersion / kind
 */
export function readConfigDocument(
  text: string,
  file: string,
  apiVersion: string,
  kind: string,
): Record<string, unknown> {
  const fail = (msg: string): never => {
    throw new ConfigError(`--config ${file}: ${msg}`);
  };
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { prettyErrors: false, uniqueKeys: true, lineCounter });
  if (!Array.isArray(docs)) return fail("no YAML document");
  const nonEmpty = docs.filter((d) => d.contents !== null || d.errors.length > 0);
  if (nonEmpty.length !== 1) {
    return fail(
      nonEmpty.length === 0
        ? `empty file (expected one ${kind})`
        : `several YAML documents (expected one ${kind})`,
    );
  }
  const doc = nonEmpty[0]!;
  const yamlError = doc.errors[0];
  if (yamlError) {
    const line = lineCounter.linePos(yamlError.pos[0]).line;
    return fail(`YAML syntax error at line ${line}: ${yamlError.message.split("\n")[0]}`);
  }
  if (!isMap(doc.contents)) return fail(`expected a mapping (a ${kind} object)`);
  const obj = doc.toJS() as Record<string, unknown>;
  if (obj.apiVersion !== apiVersion) {
    fail(
      `apiVersion: ${obj.apiVersion === undefined ? "missing" : describeValue(obj.apiVersion)} (expected ${apiVersion})`,
    );
  }
  if (obj.kind !== kind)
    fail(`kind: ${obj.kind === undefined ? "missing" : describeValue(obj.kind)} (expected ${kind})`);
  return obj;
}
