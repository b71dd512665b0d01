/**
 * The binary layout of the socket load balancer's BPF maps, shared with `bpf/sock_lb.c`:
 * how a frontend, a backend slot and their values are encoded as map keys and values.
 * Addresses and ports are in network byte order; ids, counts and timeouts in the host's
 * (little-endian) order. Pure.
 *
 * @module
 */
import { type IPFamily, isValidIP, type Protocol, WorknodeError } from "@worknode/core";
import ipaddr from "ipaddr.js";

/** Pinned name of the frontend map (`wn_svc_key` → `wn_svc_value`). */
export const SERVICES_MAP = "wn_services";
/** Pinned name of the backend-slot map (`wn_backend_key` → `wn_backend_value`). */
export const BACKENDS_MAP = "wn_backends";
/** Pinned name of the ClientIP session-affinity map (written by the programs only). */
export const AFFINITY_MAP = "wn_affinity";
/** Pinned name of the reverse-translation map (written by the programs only). */
export const REVNAT_MAP = "wn_revnat";
/** Every map of the object, in the order `bpftool prog loadall` creates them. */
export const ALL_MAPS = [SERVICES_MAP, BACKENDS_MAP, AFFINITY_MAP, REVNAT_MAP] as const;
/**
 * Version of this layout. It is part of the pin directory of the maps, so that a worknode
 * with another layout never reads maps it does not understand.
 */
export const MAP_LAYOUT_VERSION = 1;

/** The programs of the object and the cgroup attach type of each (`bpftool cgroup attach` names). */
export const PROGRAMS: readonly { readonly name: string; readonly attachType: string }[] = [
  { name: "wn_connect4", attachType: "connect4" },
  { name: "wn_connect6", attachType: "connect6" },
  { name: "wn_sendmsg4", attachType: "sendmsg4" },
  { name: "wn_sendmsg6", attachType: "sendmsg6" },
  { name: "wn_recvmsg4", attachType: "recvmsg4" },
  { name: "wn_recvmsg6", attachType: "recvmsg6" },
  { name: "wn_getpeername4", attachType: "getpeername4" },
  { name: "wn_getpeername6", attachType: "getpeername6" },
];

/** Byte size of a frontend key. */
export const SERVICE_KEY_SIZE = 20;
/** Byte size of a frontend value. */
export const SERVICE_VALUE_SIZE = 16;
/** Byte size of a backend-slot key. */
export const BACKEND_KEY_SIZE = 8;
/** Byte size of a backend value. */
export const BACKEND_VALUE_SIZE = 20;

/** A map key or value could not be encoded or decoded. */
export class MapLayoutError extends WorknodeError {
  constructor(message: string) {
    super("EBPF_MAP_LAYOUT", message);
  }
}

/** Where a socket may connect or send to: a service IP or node IP, port and protocol. */
export interface Frontend {
  readonly ip: string;
  readonly port: number;
  readonly protocol: Protocol;
}

/** One backend address. */
export interface BackendAddress {
  readonly ip: string;
  readonly port: number;
}

/** What a frontend points at. */
export interface FrontendValue {
  /** The backend-slot group (`wn_backends[{id, slot}]`). */
  readonly id: number;
  /** Number of slots; 0 refuses connections (the service has no endpoints). */
  readonly count: number;
  /** ClientIP affinity timeout in seconds; 0 for none. */
  readonly affinityTimeout: number;
}

const PROTOCOL_NUMBER: Readonly<Record<Protocol, number>> = { TCP: 6, UDP: 17, SCTP: 132 };
const PROTOCOL_BY_NUMBER = new Map<number, Protocol>([
  [6, "TCP"],
  [17, "UDP"],
  [132, "SCTP"],
]);

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** Bytes as `bpftool`'s `hex` argument form: two lower-case digits per byte, space-separated. */
export function toHexWords(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += i === 0 ? HEX[bytes[i] ?? 0] : ` ${HEX[bytes[i] ?? 0]}`;
  return out;
}

function writeAddress(out: Uint8Array, offset: number, ip: string): IPFamily {
  // ipaddr.parse alone also takes "1.2.3", "10", "0x0a.0.0.1" and zone ids ("fe80::1%eth0").
  if (!isValidIP(ip)) throw new MapLayoutError(`not an IP address: ${JSON.stringify(ip)}`);
  const parsed = ipaddr.parse(ip);
  const bytes = parsed.toByteArray();
  out.set(bytes, offset);
  return parsed.kind() === "ipv4" ? "IPv4" : "IPv6";
}

function writePort(out: Uint8Array, offset: number, port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new MapLayoutError(`not a port: ${port}`);
  out[offset] = port >> 8;
  out[offset + 1] = port & 0xff;
}

function writeU32(out: Uint8Array, offset: number, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff)
    throw new MapLayoutError(`not an unsigned 32-bit number: ${value}`);
  out[offset] = value & 0xff;
  out[offset + 1] = (value >>> 8) & 0xff;
  out[offset + 2] = (value >>> 16) & 0xff;
  out[offset + 3] = (value >>> 24) & 0xff;
}

function readU32(bytes: Uint8Array, offset: number): number {
  return (
    ((bytes[offset] ?? 0) |
      ((bytes[offset + 1] ?? 0) << 8) |
      ((bytes[offset + 2] ?? 0) << 16) |
      ((bytes[offset + 3] ?? 0) << 24)) >>>
    0
  );
}

function readAddress(bytes: Uint8Array, offset: number, familyByte: number): string {
  if (familyByte === 4) return ipaddr.fromByteArray([...bytes.subarray(offset, offset + 4)]).toString();
  if (familyByte === 6) return ipaddr.fromByteArray([...bytes.subarray(offset, offset + 16)]).toString();
  throw new MapLayoutError(`unknown address family byte ${familyByte}`);
}

function familyByte(family: IPFamily): number {
  return family === "IPv4" ? 4 : 6;
}

/** `wn_svc_key`: `addr[16]`, port (network order), protocol number, family (4 or 6). */
export function encodeServiceKey(frontend: Frontend): Uint8Array {
  const out = new Uint8Array(SERVICE_KEY_SIZE);
  const family = writeAddress(out, 0, frontend.ip);
  writePort(out, 16, frontend.port);
  out[18] = PROTOCOL_NUMBER[frontend.protocol];
  out[19] = familyByte(family);
  return out;
}

/** `wn_svc_value`: id, count, affinity timeout (seconds), flags (0). */
export function encodeServiceValue(value: FrontendValue): Uint8Array {
  const out = new Uint8Array(SERVICE_VALUE_SIZE);
  writeU32(out, 0, value.id);
  writeU32(out, 4, value.count);
  writeU32(out, 8, value.affinityTimeout);
  return out;
}

/** `wn_backend_key`: id, slot. */
export function encodeBackendKey(id: number, slot: number): Uint8Array {
  const out = new Uint8Array(BACKEND_KEY_SIZE);
  writeU32(out, 0, id);
  writeU32(out, 4, slot);
  return out;
}

/** `wn_backend_value`: `addr[16]`, port (network order), family (4 or 6), pad. */
export function encodeBackendValue(backend: BackendAddress): Uint8Array {
  const out = new Uint8Array(BACKEND_VALUE_SIZE);
  const family = writeAddress(out, 0, backend.ip);
  writePort(out, 16, backend.port);
  out[18] = familyByte(family);
  return out;
}

function expectSize(bytes: Uint8Array, size: number, what: string): void {
  if (bytes.length !== size) throw new MapLayoutError(`${what} has ${bytes.length} bytes, expected ${size}`);
}

/** Inverse of {@link encodeServiceKey}. */
export function decodeServiceKey(bytes: Uint8Array): Frontend {
  expectSize(bytes, SERVICE_KEY_SIZE, "frontend key");
  const protocol = PROTOCOL_BY_NUMBER.get(bytes[18] ?? 0);
  if (protocol === undefined) throw new MapLayoutError(`unknown protocol number ${bytes[18]}`);
  return {
    ip: readAddress(bytes, 0, bytes[19] ?? 0),
    port: ((bytes[16] ?? 0) << 8) | (bytes[17] ?? 0),
    protocol,
  };
}

/** Inverse of {@link encodeServiceValue}. */
export function decodeServiceValue(bytes: Uint8Array): FrontendValue {
  expectSize(bytes, SERVICE_VALUE_SIZE, "frontend value");
  return { id: readU32(bytes, 0), count: readU32(bytes, 4), affinityTimeout: readU32(bytes, 8) };
}

/** Inverse of {@link encodeBackendKey}. */
export function decodeBackendKey(bytes: Uint8Array): { readonly id: number; readonly slot: number } {
  expectSize(bytes, BACKEND_KEY_SIZE, "backend key");
  return { id: readU32(bytes, 0), slot: readU32(bytes, 4) };
}

/** Inverse of {@link encodeBackendValue}. */
export function decodeBackendValue(bytes: Uint8Array): BackendAddress {
  expectSize(bytes, BACKEND_VALUE_SIZE, "backend value");
  return { ip: readAddress(bytes, 0, bytes[18] ?? 0), port: ((bytes[16] ?? 0) << 8) | (bytes[17] ?? 0) };
}

/**
 * Identity of a backend list in slot order (`ip:port`, IPv6 as `[ip]:port`, comma-separated),
 * to tell whether a group changed. Addresses are compared as given: pass normalised ones.
 */
export function backendsSignature(backends: readonly BackendAddress[]): string {
  return backends.map((b) => (b.ip.includes(":") ? `[${b.ip}]:${b.port}` : `${b.ip}:${b.port}`)).join(",");
}

/** A frontend's identity as a string (its key bytes in hex), for maps and diffs. */
export function frontendId(frontend: Frontend): string {
  return toHexWords(encodeServiceKey(frontend));
}
