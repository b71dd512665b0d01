// Decode time of a ListContainers response with 5,000 containers, without I/O: the generated
// ts-proto codec this package uses, and for comparison the reflection decoder of
// @grpc/proto-loader (protobufjs), which a grpc-js client loading the .proto at run time uses.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadSync } from "@grpc/proto-loader";
import { bench, describe } from "vitest";
import { ListContainersResponse } from "../src/generated/api.js";
import { encodedListContainersResponse } from "./fixtures.js";

const bytes = encodedListContainersResponse(5_000);
const buffer = Buffer.from(bytes);

const protoFile = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  "..",
  "src",
  "generated",
  "api.proto",
);
const loaded = loadSync(protoFile, { keepCase: false, longs: String, enums: Number, defaults: true });
const reflective = loaded["runtime.v1.RuntimeService"] as unknown as Record<
  string,
  { responseDeserialize: (b: Buffer) => { containers: unknown[] } }
>;
const protoLoaderDecode = reflective.ListContainers!.responseDeserialize;

// Fail loudly on a broken fixture rather than benchmarking nothing.
if (ListContainersResponse.decode(bytes).containers.length !== 5_000)
  throw new Error("fixture decode failed");
if (protoLoaderDecode(buffer).containers.length !== 5_000) throw new Error("proto-loader decode failed");

describe(`ListContainersResponse decode, 5,000 containers (${(bytes.length / 1024 / 1024).toFixed(2)} MiB)`, () => {
  bench("ts-proto generated codec (@worknode/cri)", () => {
    ListContainersResponse.decode(bytes);
  });
  bench("@grpc/proto-loader reflection (protobufjs), for comparison", () => {
    protoLoaderDecode(buffer);
  });
});
