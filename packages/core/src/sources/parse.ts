/**
 * Parsing of Kubernetes manifest files (multi-document YAML, JSON, `List`s)
 * into plain documents with their origin, plus the small structural checks
 * shared by the file sources. Pure functions, no I/O.
 *
 * YAML is read with YAML 1.1 rules, as Kubernetes (`sigs.k8s.io/yaml`) does:
 * `0644` is octal (420), `yes`/`on` are booleans and `<<` merge keys work.
 * Timestamps and `1:20`-style sexagesimal numbers stay strings, as they do
 * on the wire.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { isMap, isSeq, LineCounter, parseAllDocuments, type Tags } from "yaml";

/** One document of a manifest file (or one item of a `List` document). */
export interface ManifestDocument {
  /** 0-based index of the document in its file (comment-only and empty documents count too). */
  readonly index: number;
  /** Index of the item when the document was a `List`, otherwise undefined. */
  readonly item?: number;
  /** 1-based line where the document (or list item) starts, when known. */
  readonly line?: number;
  /** Human-readable origin: `path:line, document N` (and `, items[i]` for list items). */
  readonly origin: string;
  /** The parsed value (plain JSON data); undefined when {@link ManifestDocument.error} is set. */
  readonly value?: unknown;
  /** The syntax error that made the document unreadable, when any. */
  readonly error?: string;
  /** Start lines of the items when the value is a `List` (used by {@link expandListDocuments}). */
  readonly itemLines?: readonly (number | undefined)[];
}

/** Aliases allowed per document (guards against "billion laughs" expansion). */
const MAX_ALIAS_COUNT = 100;

/** YAML 1.1 tags as Kubernetes resolves them: no timestamps, no sexagesimal numbers. */
function kubernetesTags(tags: Tags): Tags {
  return tags.filter((t) =>
    typeof t === "string"
      ? t !== "timestamp" && t !== "intTime" && t !== "floatTime"
      : t.tag !== "tag:yaml.org,2002:timestamp" && t.format !== "TIME",
  );
}

/** Builds the origin string of a document. */
export function documentOrigin(path: string, line: number | undefined, index: number, item?: number): string {
  const where = line === undefined ? path : `${path}:${line}`;
  return `${where}, document ${index + 1}${item === undefined ? "" : `, items[${item}]`}`;
}

/**
 * Splits a manifest file into its documents. Each document is parsed on its
 * own, so a syntax error in one does not hide the others (unless the error
 * swallows the `---` separators that follow, as an unterminated quote does).
 * Documents that are empty or hold only comments or `null` are left out.
 *
 * @param text file content (UTF-8; a leading byte-order mark is ignored)
 * @param path file name used in origins and messages
 */
export function parseManifestDocuments(text: string, path: string): ManifestDocument[] {
  const source = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const lineCounter = new LineCounter();
  const parsed = parseAllDocuments(source, {
    version: "1.1",
    customTags: kubernetesTags,
    lineCounter,
    prettyErrors: true,
    uniqueKeys: true,
  });
  // An input holding no document at all yields an EmptyStream, which is not an array.
  if (!Array.isArray(parsed)) return [];
  const out: ManifestDocument[] = [];
  parsed.forEach((doc, index) => {
    const start = doc.contents?.range?.[0] ?? doc.range[0];
    const line = lineCounter.linePos(start).line;
    const origin = documentOrigin(path, line, index);
    const firstError = doc.errors[0];
    if (firstError) {
      out.push({ index, line, origin, error: firstLine(firstError.message) });
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      out.push({ index, line, origin, error: firstLine(err instanceof Error ? err.message : String(err)) });
      return;
    }
    if (value === null || value === undefined) return;
    // Remember where each item of a `List` starts, for precise origins.
    const contents = doc.contents;
    if (isMap(contents) && isRecord(value) && Array.isArray(value.items)) {
      const items = contents.get("items", true);
      if (isSeq(items)) {
        const lines = items.items.map((node) => {
          const r = (node as { range?: [number, number, number] | null }).range;
          return r ? lineCounter.linePos(r[0]).line : undefined;
        });
        out.push({ index, line, origin, value, itemLines: lines });
        return;
      }
    }
    out.push({ index, line, origin, value });
  });
  return out;
}

function firstLine(message: string): string {
  return (message.split("\n")[0] ?? message).replace(/:$/, "").trim();
}

/**
 * Expands `List` documents (`kind: List`, or `<Kind>List` such as `PodList`) into
 * one document per item, with origins naming the item. Items of a typed list
 * without `kind` / `apiVersion` inherit them from the list (`PodList` → `Pod`).
 * Other documents pass through unchanged.
 */
export function expandListDocuments(docs: readonly ManifestDocument[], path: string): ManifestDocument[] {
  const out: ManifestDocument[] = [];
  for (const doc of docs) {
    const v = doc.value;
    if (
      !isRecord(v) ||
      typeof v.kind !== "string" ||
      !v.kind.endsWith("List") ||
      !Array.isArray(v.items) ||
      typeof v.apiVersion !== "string"
    ) {
      out.push(doc);
      continue;
    }
    const itemKind = v.kind === "List" ? undefined : v.kind.slice(0, -"List".length);
    const itemLines = doc.itemLines ?? [];
    v.items.forEach((item: unknown, i: number) => {
      const line = itemLines[i] ?? doc.line;
      let value = item;
      if (itemKind && isRecord(item)) {
        value = { apiVersion: v.apiVersion, kind: itemKind, ...item };
      }
      out.push({ index: doc.index, item: i, line, origin: documentOrigin(path, line, doc.index, i), value });
    });
  }
  return out;
}

/** True for a plain mapping (not null, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Type name of a value for messages: `mapping`, `list`, `string`, `number`, `null` … */
export function describeType(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (Array.isArray(value)) return "list";
  if (typeof value === "object") return "mapping";
  return typeof value;
}

/**
 * Serializes plain data as JSON with object keys sorted, so equal content gives
 * equal text whatever the key order or formatting of the source file.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (isRecord(value)) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = value[key];
      if (v !== undefined) out[key] = sortKeys(v);
    }
    return out;
  }
  return value;
}

/** SHA-256 (hex) of the canonical JSON of `value`: a content fingerprint. */
export function contentHash(value: unknown): string {
  return createHash("sha256").update(canonicalJson(value)).digest("hex");
}

/** Kind, namespace and name read from a document, as far as they are present and strings. */
export interface DocumentIdentity {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly namespace?: string;
  readonly name?: string;
}

/** Reads the identity fields of a parsed document without validating it. */
export function documentIdentity(value: unknown): DocumentIdentity {
  if (!isRecord(value)) return {};
  const meta = isRecord(value.metadata) ? value.metadata : {};
  const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);
  const id: { apiVersion?: string; kind?: string; namespace?: string; name?: string } = {};
  const apiVersion = str(value.apiVersion);
  const kind = str(value.kind);
  const namespace = str(meta.namespace);
  const name = str(meta.name);
  if (apiVersion) id.apiVersion = apiVersion;
  if (kind) id.kind = kind;
  if (namespace) id.namespace = namespace;
  if (name) id.name = name;
  return id;
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Naming rule applied to `metadata.name`. */
export type NameRule = "dns1123-label" | "dns1035-label" | "dns1123-subdomain";

/** Returns why `name` breaks `rule`, or undefined when it is valid. */
export function checkName(name: string, rule: NameRule): string | undefined {
  switch (rule) {
    case "dns1123-label":
      if (name.length > 63) return "must be at most 63 characters";
      return DNS1123_LABEL.test(name)
        ? undefined
        : "must consist of lower case alphanumeric characters or '-', and start and end with an alphanumeric character";
    case "dns1035-label":
      if (name.length > 63) return "must be at most 63 characters";
      return DNS1035_LABEL.test(name)
        ? undefined
        : "must consist of lower case alphanumeric characters or '-', start with a letter and end with an alphanumeric character";
    case "dns1123-subdomain":
      if (name.length > 253) return "must be at most 253 characters";
      return DNS1123_SUBDOMAIN.test(name)
        ? undefined
        : "must consist of lower case alphanumeric characters, '-' or '.', and start and end with an alphanumeric character";
  }
}

/**
 * Checks the structure of `metadata`: a mapping with a valid `name`, an optional
 * valid `namespace`, and string-to-string `labels` / `annotations`.
 * Pushes one line per problem onto `reasons`.
 */
export function checkMetadata(value: Record<string, unknown>, nameRule: NameRule, reasons: string[]): void {
  const meta = value.metadata;
  if (meta === undefined || meta === null) {
    reasons.push("metadata is missing");
    return;
  }
  if (!isRecord(meta)) {
    reasons.push(`metadata must be a mapping, got ${describeType(meta)}`);
    return;
  }
  if (typeof meta.name !== "string" || meta.name === "") {
    reasons.push(
      meta.name === undefined || meta.name === ""
        ? "metadata.name is missing"
        : "metadata.name must be a string",
    );
  } else {
    const bad = checkName(meta.name, nameRule);
    if (bad) reasons.push(`metadata.name "${meta.name}" ${bad}`);
  }
  if (meta.namespace !== undefined && meta.namespace !== null && meta.namespace !== "") {
    if (typeof meta.namespace !== "string") reasons.push("metadata.namespace must be a string");
    else {
      const bad = checkName(meta.namespace, "dns1123-label");
      if (bad) reasons.push(`metadata.namespace "${meta.namespace}" ${bad}`);
    }
  }
  for (const field of ["labels", "annotations"] as const) {
    const m = meta[field];
    if (m === undefined || m === null) continue;
    if (!isRecord(m)) {
      reasons.push(`metadata.${field} must be a mapping, got ${describeType(m)}`);
      continue;
    }
    for (const [k, v] of Object.entries(m)) {
      if (typeof v !== "string")
        reasons.push(`metadata.${field}["${k}"] must be a string, got ${describeType(v)}`);
    }
  }
}

/** True for an integer within `[min, max]`. */
export function isIntInRange(value: unknown, min: number, max: number): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= min && value <= max;
}
