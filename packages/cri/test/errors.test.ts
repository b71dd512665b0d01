import { WorknodeError } from "@worknode/core";
import { describe, expect, it } from "vitest";
import {
  CriCanceledError,
  CriDeadlineExceededError,
  CriError,
  CriNotFoundError,
  CriUnavailableError,
  CriUnimplementedError,
  criErrorFromStatus,
  GrpcStatus,
  grpcStatusName,
  isCriStatus,
} from "../src/errors.js";

const ref = { service: "RuntimeService", rpc: "ContainerStatus", endpoint: "unix:///run/x.sock" };
const pull = { service: "ImageService", rpc: "PullImage", endpoint: "unix:///run/x.sock" };

describe("criErrorFromStatus", () => {
  it.each([
    [GrpcStatus.NOT_FOUND, CriNotFoundError, "CRI_NOT_FOUND"],
    [GrpcStatus.UNIMPLEMENTED, CriUnimplementedError, "CRI_UNIMPLEMENTED"],
    [GrpcStatus.UNAVAILABLE, CriUnavailableError, "CRI_UNAVAILABLE"],
    [GrpcStatus.DEADLINE_EXCEEDED, CriDeadlineExceededError, "CRI_DEADLINE_EXCEEDED"],
    [GrpcStatus.CANCELLED, CriCanceledError, "CRI_CANCELED"],
  ] as const)("maps code %i to its subclass", (code, cls, errCode) => {
    const err = criErrorFromStatus(ref, code, "boom");
    expect(err).toBeInstanceOf(cls);
    expect(err).toBeInstanceOf(CriError);
    expect(err).toBeInstanceOf(WorknodeError);
    expect(err.code).toBe(errCode);
    expect(err.grpcCode).toBe(code);
    expect(err.rpc).toBe("ContainerStatus");
    expect(err.service).toBe("RuntimeService");
    expect(err.details).toBe("boom");
    expect(err.name).toBe(cls.name);
  });

  it("keeps other codes as a plain CriError with a code naming the status", () => {
    const err = criErrorFromStatus(ref, GrpcStatus.INVALID_ARGUMENT, "bad id");
    expect(err.constructor).toBe(CriError);
    expect(err.code).toBe("CRI_INVALID_ARGUMENT");
    expect(err.message).toBe("CRI ContainerStatus on unix:///run/x.sock failed: INVALID_ARGUMENT: bad id");
  });

  it("names unknown codes by number", () => {
    expect(criErrorFromStatus(ref, 99, "").message).toBe(
      "CRI ContainerStatus on unix:///run/x.sock failed: CODE_99",
    );
    expect(grpcStatusName(12)).toBe("UNIMPLEMENTED");
  });

  it("keeps the cause", () => {
    const cause = new Error("grpc");
    expect(criErrorFromStatus(ref, GrpcStatus.INTERNAL, "x", cause).cause).toBe(cause);
  });

  it("infers NotFound for a PullImage UNKNOWN whose message says the reference is not found", () => {
    const details =
      'failed to pull and unpack image "127.0.0.1:5000/nope:1": failed to resolve reference "127.0.0.1:5000/nope:1": 127.0.0.1:5000/nope:1: not found';
    const err = criErrorFromStatus(pull, GrpcStatus.UNKNOWN, details);
    expect(err).toBeInstanceOf(CriNotFoundError);
    expect((err as CriNotFoundError).inferred).toBe(true);
    expect(err.grpcCode).toBe(GrpcStatus.UNKNOWN);
    expect(isCriStatus(err, "NOT_FOUND")).toBe(true);
    expect(isCriStatus(err, "UNKNOWN")).toBe(true);
  });

  it("does not infer NotFound for other PullImage failures or other RPCs", () => {
    expect(
      criErrorFromStatus(pull, GrpcStatus.UNKNOWN, "failed to pull: connection refused"),
    ).not.toBeInstanceOf(CriNotFoundError);
    expect(criErrorFromStatus(ref, GrpcStatus.UNKNOWN, "x: not found")).not.toBeInstanceOf(CriNotFoundError);
    const real = criErrorFromStatus(pull, GrpcStatus.NOT_FOUND, "x: not found");
    expect((real as CriNotFoundError).inferred).toBe(false);
  });
});

describe("isCriStatus", () => {
  it("matches any of the given names and rejects other values", () => {
    const err = criErrorFromStatus(ref, GrpcStatus.UNAVAILABLE, "");
    expect(isCriStatus(err, "NOT_FOUND", "UNAVAILABLE")).toBe(true);
    expect(isCriStatus(err, "NOT_FOUND")).toBe(false);
    expect(isCriStatus(new Error("x"), "UNAVAILABLE")).toBe(false);
    expect(isCriStatus(undefined, "UNAVAILABLE")).toBe(false);
  });
});
