/**
 * A real Kubernetes control plane on loopback for system tests: etcd,
 * kube-apiserver and (when built) kube-controller-manager and kube-scheduler,
 * built from source by {@link ensureControlPlaneBinaries}, with a fresh PKI,
 * Node+RBAC authorization and NodeRestriction admission.
 *
 * Every listener binds to 127.0.0.1 on a free port; `stop()` kills every
 * process it started and removes the data directories.
 *
 * @example
 * ```ts
 * const cp = await startControlPlane();
 * try {
 *   const core = cp.adminKubeConfig.makeApiClient(CoreV1Api);
 *   await core.listNamespace();
 * } finally {
 *   await cp.stop();
 * }
 * ```
 *
 * @module
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api, KubeConfig, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import {
  type Clock,
  ConfigError,
  createLogger,
  describeError,
  type Logger,
  parseCidr,
  realClock,
  UnavailableError,
} from "@worknode/core";
import {
  apiserverArgs,
  controllerManagerArgs,
  etcdArgs,
  LOOPBACK,
  schedulerArgs,
} from "./control-plane-args.js";
import { renderKubeconfig } from "./control-plane-kubeconfig.js";
import { logTail, type ManagedProcess, startProcess } from "./control-plane-process.js";
import { type ControlPlaneBinaries, ensureControlPlaneBinaries } from "./go-build.js";
import {
  type CertKeyPair,
  type ControlPlanePki,
  generateControlPlanePki,
  issueNodeClientCertificate,
  readPem,
} from "./pki.js";

/** Options of {@link startControlPlane}. */
export interface ControlPlaneOptions {
  /** Binaries to run; default the result of {@link ensureControlPlaneBinaries} (builds when missing). */
  readonly binaries?: ControlPlaneBinaries;
  /** Parent of the control plane's temporary directory; default the OS temp dir. */
  readonly baseDir?: string;
  /** Service cluster IP range; default `10.96.0.0/16`. */
  readonly serviceClusterIpRange?: string;
  /** Run kube-controller-manager; default `true` when it was built. */
  readonly controllerManager?: boolean;
  /** Run kube-scheduler; default `true` when it was built. */
  readonly scheduler?: boolean;
  /** Create a bootstrap token (and kubeadm-style CSR RBAC); default `true`. */
  readonly bootstrapToken?: boolean;
  /** Extra kube-apiserver flags (appended last, so they win). */
  readonly apiserverArgs?: readonly string[];
  /** Extra kube-controller-manager flags. */
  readonly controllerManagerArgs?: readonly string[];
  /** Extra kube-scheduler flags. */
  readonly schedulerArgs?: readonly string[];
  /** How long startup may take before it fails; default 180 s. */
  readonly startTimeoutMs?: number;
  /** Logger; default a pino logger on standard error. */
  readonly logger?: Logger;
  /** Clock for polling and grace periods; default the real clock. */
  readonly clock?: Clock;
}

/** A started component. */
export interface ControlPlaneComponent {
  /** `etcd`, `kube-apiserver`, `kube-controller-manager` or `kube-scheduler`. */
  readonly name: string;
  /** Process id. */
  readonly pid: number;
  /** Its log file. */
  readonly logPath: string;
  /** Loopback TCP ports it was told to listen on. */
  readonly ports: readonly number[];
}

/** Options of {@link ControlPlane.stop}. */
export interface StopOptions {
  /**
   * Keep the logs directory for debugging; default: only when a component
   * crashed or `$WORKNODE_KEEP_CONTROL_PLANE_LOGS` is set. Data directories,
   * keys and kubeconfigs are removed either way.
   */
  readonly keepLogs?: boolean;
}

/** A running control plane; see {@link startControlPlane}. */
export interface ControlPlane {
  /** API server URL (`https://127.0.0.1:<port>`). */
  readonly server: string;
  /** Kubernetes release of the binaries (`v1.36.3`). */
  readonly version: string;
  /** Path of the admin kubeconfig (`O=system:masters`). */
  readonly kubeconfigPath: string;
  /** The admin kubeconfig, loaded. */
  readonly adminKubeConfig: KubeConfig;
  /** The PKI (cluster CA at `pki.ca.certPath`). */
  readonly pki: ControlPlanePki;
  /** Bootstrap token (`<id>.<secret>`), when created. */
  readonly bootstrapToken?: string;
  /** kubeconfig authenticating with the bootstrap token, when created. */
  readonly bootstrapKubeconfigPath?: string;
  /** Service cluster IP range the API server allocates from. */
  readonly serviceClusterIpRange: string;
  /** Directory of the components' logs. */
  readonly logsDir: string;
  /** The control plane's temporary directory. */
  readonly workDir: string;
  /** The started components. */
  readonly components: readonly ControlPlaneComponent[];
  /**
   * Issues a node client certificate (`CN=system:node:<name>, O=system:nodes`)
   * and writes a kubeconfig using it.
   *
   * @returns the kubeconfig path
   */
  nodeCredentials(nodeName: string): Promise<string>;
  /**
   * Runs the built kubectl against this control plane as the admin.
   *
   * @returns standard output
   * @throws UnavailableError when kubectl was not built or exits non-zero
   */
  kubectl(args: readonly string[]): Promise<string>;
  /** Whether a component exited without being stopped. */
  crashed(): boolean;
  /** Stops every component (even after failures) and removes the temporary directory; idempotent. */
  stop(options?: StopOptions): Promise<void>;
}

const DEFAULT_SERVICE_RANGE = "10.96.0.0/16";
const POLL_MS = 250;

/**
 * Starts etcd, kube-apiserver and (when built, unless disabled)
 * kube-controller-manager and kube-scheduler on 127.0.0.1, waits until the API
 * server is ready and the `default` namespace (and, with the controller
 * manager, its `default` ServiceAccount) exists.
 *
 * @throws UnavailableError when a component fails to start or does not become ready in time
 *   (the message carries the tail of its log; logs are kept)
 */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const log = options.logger ?? createLogger({ name: "worknode-testing.control-plane" });
  const clock = options.clock ?? realClock;
  const serviceRange = options.serviceClusterIpRange ?? DEFAULT_SERVICE_RANGE;
  const serviceIp = firstServiceIp(serviceRange);
  const binaries = options.binaries ?? (await ensureControlPlaneBinaries({ logger: log }));
  const etcdBin = binaries.binaries.etcd;
  const apiserverBin = binaries.binaries["kube-apiserver"];
  if (!etcdBin || !apiserverBin) {
    throw new ConfigError("startControlPlane needs at least the etcd and kube-apiserver binaries");
  }
  const kcmBin =
    options.controllerManager === false ? undefined : binaries.binaries["kube-controller-manager"];
  const schedulerBin = options.scheduler === false ? undefined : binaries.binaries["kube-scheduler"];
  if (options.controllerManager === true && !kcmBin)
    throw new ConfigError("kube-controller-manager was not built");
  if (options.scheduler === true && !schedulerBin) throw new ConfigError("kube-scheduler was not built");

  const workDir = await mkdtemp(join(options.baseDir ?? tmpdir(), "worknode-control-plane-"));
  const logsDir = join(workDir, "logs");
  const kubeconfigDir = join(workDir, "kubeconfigs");
  await Promise.all([logsDir, kubeconfigDir].map((d) => mkdir(d, { recursive: true, mode: 0o700 })));

  const processes: ManagedProcess[] = [];
  const components: ControlPlaneComponent[] = [];
  let stopped = false;
  const stopAll = async (keepLogs: boolean) => {
    if (stopped) return;
    stopped = true;
    for (const p of [...processes].reverse()) {
      await p
        .stop()
        .catch((error: unknown) =>
          log.warn({ component: p.name, error: describeError(error) }, "stop failed"),
        );
    }
    if (keepLogs) {
      for (const entry of await readdir(workDir)) {
        if (entry !== "logs") await rm(join(workDir, entry), { recursive: true, force: true });
      }
      log.info({ logsDir }, "control plane stopped; logs kept");
    } else {
      await rm(workDir, { recursive: true, force: true });
    }
  };
  const start = async (name: string, command: string, args: string[], ports: number[]) => {
    const p = await startProcess({ name, command, args, logPath: join(logsDir, `${name}.log`), clock });
    processes.push(p);
    components.push({ name, pid: p.pid, logPath: p.logPath, ports });
    log.info({ component: name, pid: p.pid, ports }, `started ${name}`);
    return p;
  };
  const deadline = clock.monotonic() + (options.startTimeoutMs ?? 180_000);

  try {
    const pki = await generateControlPlanePki(join(workDir, "pki"), { serviceIp });
    const [etcdClientPort, etcdPeerPort, apiserverPort, kcmPort, schedulerPort] = (await freeLoopbackPorts(
      5,
    )) as [number, number, number, number, number];
    const etcdUrl = `http://${LOOPBACK}:${etcdClientPort}`;
    const server = `https://${LOOPBACK}:${apiserverPort}`;

    const etcd = await start(
      "etcd",
      etcdBin,
      etcdArgs({ dataDir: join(workDir, "etcd-data"), clientPort: etcdClientPort, peerPort: etcdPeerPort }),
      [etcdClientPort, etcdPeerPort],
    );
    await waitFor("etcd health", deadline, clock, processes, async () => {
      const r = await httpGet(`${etcdUrl}/health`);
      return r.status === 200 && r.body.includes('"health":"true"');
    });
    log.info({ component: "etcd", pid: etcd.pid }, "etcd healthy");

    await start(
      "kube-apiserver",
      apiserverBin,
      apiserverArgs({
        pki,
        etcdUrl,
        securePort: apiserverPort,
        serviceClusterIpRange: serviceRange,
        certDir: join(workDir, "apiserver-certs"),
        extraArgs: options.apiserverArgs,
      }),
      [apiserverPort],
    );
    const caPem = await readPem(pki.ca.certPath);
    const adminTls = await tlsFiles(pki.admin);
    await waitFor("kube-apiserver /readyz", deadline, clock, processes, async () => {
      const r = await httpsGet(`${server}/readyz`, { ca: caPem, ...adminTls });
      return r.status === 200;
    });
    log.info({ server }, "kube-apiserver ready");

    const writeClientKubeconfig = async (file: string, userName: string, pair: CertKeyPair) => {
      const path = join(kubeconfigDir, file);
      const creds = await tlsFiles(pair);
      await writeFile(
        path,
        renderKubeconfig({
          server,
          caPem,
          userName,
          credentials: { clientCertificatePem: creds.cert, clientKeyPem: creds.key },
        }),
        { mode: 0o600 },
      );
      return path;
    };
    const kubeconfigPath = await writeClientKubeconfig("admin.kubeconfig", "admin", pki.admin);
    const adminKubeConfig = new KubeConfig();
    adminKubeConfig.loadFromFile(kubeconfigPath);

    if (kcmBin) {
      const kubeconfig = await writeClientKubeconfig(
        "controller-manager.kubeconfig",
        "system:kube-controller-manager",
        pki.controllerManager,
      );
      await start(
        "kube-controller-manager",
        kcmBin,
        controllerManagerArgs({
          pki,
          kubeconfigPath: kubeconfig,
          securePort: kcmPort,
          certDir: join(workDir, "controller-manager-certs"),
          serviceClusterIpRange: serviceRange,
          extraArgs: options.controllerManagerArgs,
        }),
        [kcmPort],
      );
    }
    if (schedulerBin) {
      const kubeconfig = await writeClientKubeconfig(
        "scheduler.kubeconfig",
        "system:kube-scheduler",
        pki.scheduler,
      );
      await start(
        "kube-scheduler",
        schedulerBin,
        schedulerArgs({
          kubeconfigPath: kubeconfig,
          securePort: schedulerPort,
          certDir: join(workDir, "scheduler-certs"),
          extraArgs: options.schedulerArgs,
        }),
        [schedulerPort],
      );
    }
    for (const [name, port] of [
      ["kube-controller-manager", kcmBin ? kcmPort : undefined],
      ["kube-scheduler", schedulerBin ? schedulerPort : undefined],
    ] as const) {
      if (port === undefined) continue;
      // Self-signed serving certificate; /healthz is readable anonymously.
      await waitFor(`${name} /healthz`, deadline, clock, processes, async () => {
        const r = await httpsGet(`https://${LOOPBACK}:${port}/healthz`, { insecure: true });
        return r.status === 200;
      });
      log.info({ component: name }, `${name} healthy`);
    }

    const core = adminKubeConfig.makeApiClient(CoreV1Api);
    await waitFor("namespace default", deadline, clock, processes, () =>
      succeeds(() => core.readNamespace({ name: "default" })),
    );
    if (kcmBin) {
      await waitFor("ServiceAccount default/default", deadline, clock, processes, () =>
        succeeds(() => core.readNamespacedServiceAccount({ name: "default", namespace: "default" })),
      );
    }

    let bootstrapToken: string | undefined;
    let bootstrapKubeconfigPath: string | undefined;
    if (options.bootstrapToken !== false) {
      bootstrapToken = await createBootstrapToken(adminKubeConfig);
      bootstrapKubeconfigPath = join(kubeconfigDir, "bootstrap.kubeconfig");
      await writeFile(
        bootstrapKubeconfigPath,
        renderKubeconfig({ server, caPem, userName: "bootstrap", credentials: { token: bootstrapToken } }),
        { mode: 0o600 },
      );
    }

    const kubectlBin = binaries.binaries.kubectl;
    log.info({ server, workDir }, "control plane ready");
    const controlPlane: ControlPlane = {
      server,
      version: binaries.version,
      kubeconfigPath,
      adminKubeConfig,
      pki,
      ...(bootstrapToken ? { bootstrapToken, bootstrapKubeconfigPath } : {}),
      serviceClusterIpRange: serviceRange,
      logsDir,
      workDir,
      components,
      async nodeCredentials(nodeName) {
        const pair = await issueNodeClientCertificate(pki, nodeName);
        return writeClientKubeconfig(`node-${nodeName}.kubeconfig`, `system:node:${nodeName}`, pair);
      },
      async kubectl(args) {
        if (!kubectlBin) throw new UnavailableError("kubectl", "kubectl was not built");
        return runCapture(kubectlBin, [`--kubeconfig=${kubeconfigPath}`, ...args]);
      },
      crashed: () => processes.some((p) => p.crashed()),
      async stop(stopOptions = {}) {
        const keep =
          stopOptions.keepLogs ??
          (Boolean(process.env.WORKNODE_KEEP_CONTROL_PLANE_LOGS) || processes.some((p) => p.crashed()));
        await stopAll(keep);
      },
    };
    return controlPlane;
  } catch (error) {
    await stopAll(true).catch(() => undefined);
    if (error instanceof UnavailableError || error instanceof ConfigError) throw error;
    throw new UnavailableError("control plane", `control plane failed to start: ${describeError(error)}`, {
      cause: error,
    });
  }
}

/** The first address of a service range: the `kubernetes` Service's cluster IP. */
export function firstServiceIp(range: string): string {
  const cidr = parseCidr(range);
  if (!cidr) throw new ConfigError(`invalid service cluster IP range ${JSON.stringify(range)}`);
  if (cidr.family === "IPv4") {
    const n = cidr.address.split(".").reduce((acc, o) => acc * 256 + Number(o), 0) + 1;
    return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join(".");
  }
  if (cidr.address.endsWith("::")) return `${cidr.address}1`;
  throw new ConfigError(`unsupported IPv6 service range ${range}: its network address must end in ::`);
}

/** Picks `count` distinct free TCP ports on 127.0.0.1 (bound all at once, then released). */
export async function freeLoopbackPorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer();
          s.once("error", reject);
          s.listen(0, LOOPBACK, () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const address = s.address();
    if (address === null || typeof address === "string") throw new Error("unexpected server address");
    return address.port;
  });
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

async function waitFor(
  what: string,
  deadline: number,
  clock: Clock,
  processes: readonly ManagedProcess[],
  check: () => Promise<boolean>,
): Promise<void> {
  let lastError = "";
  for (;;) {
    const dead = processes.find((p) => !p.running());
    if (dead) {
      const exit = await dead.exited;
      throw new UnavailableError(
        dead.name,
        `${dead.name} exited (code ${exit.code}, signal ${exit.signal}) while waiting for ${what}; log ${dead.logPath}:\n${await logTail(dead.logPath)}`,
      );
    }
    try {
      if (await check()) return;
      lastError = "";
    } catch (error) {
      lastError = describeError(error);
    }
    if (clock.monotonic() > deadline) {
      const tails = await Promise.all(
        processes.map(async (p) => `--- ${p.name} (${p.logPath}):\n${await logTail(p.logPath, 1500)}`),
      );
      throw new UnavailableError(
        what,
        `timed out waiting for ${what}${lastError ? ` (last error: ${lastError})` : ""}\n${tails.join("\n")}`,
      );
    }
    await clock.sleep(POLL_MS);
  }
}

async function succeeds(fn: () => Promise<unknown>): Promise<boolean> {
  try {
    await fn();
    return true;
  } catch {
    return false;
  }
}

async function tlsFiles(pair: CertKeyPair): Promise<{ cert: string; key: string }> {
  const [cert, key] = await Promise.all([readPem(pair.certPath), readPem(pair.keyPath)]);
  return { cert, key };
}

interface HttpResult {
  readonly status: number;
  readonly body: string;
}

async function httpGet(url: string): Promise<HttpResult> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: response.status, body: await response.text() };
}

function httpsGet(
  url: string,
  tls: { readonly ca?: string; readonly cert?: string; readonly key?: string; readonly insecure?: boolean },
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        method: "GET",
        agent: false,
        timeout: 5_000,
        ...(tls.insecure ? { rejectUnauthorized: false } : { ca: tls.ca, cert: tls.cert, key: tls.key }),
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          body += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on("error", reject);
    req.end();
  });
}

function runCapture(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) {
        reject(
          new UnavailableError(
            command,
            `${command} ${args.join(" ")} failed: ${stderr.trim() || error.message}`,
          ),
        );
      } else {
        resolve(stdout);
      }
    });
  });
}

const TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

function randomTokenPart(length: number): string {
  const bytes = randomBytes(length);
  let out = "";
  for (const b of bytes) out += TOKEN_ALPHABET[b % TOKEN_ALPHABET.length];
  return out;
}

/** Group every bootstrap token created here adds to its user. */
export const BOOTSTRAP_TOKEN_GROUP = "system:bootstrappers:worknode";

/**
 * Creates a bootstrap token Secret and the kubeadm-style bindings that let
 * bootstrappers request node client certificates and have them (and their
 * renewals) approved automatically.
 */
async function createBootstrapToken(kc: KubeConfig): Promise<string> {
  const id = randomTokenPart(6);
  const secret = randomTokenPart(16);
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespacedSecret({
    namespace: "kube-system",
    body: {
      metadata: { name: `bootstrap-token-${id}`, namespace: "kube-system" },
      type: "bootstrap.kubernetes.io/token",
      stringData: {
        "token-id": id,
        "token-secret": secret,
        "usage-bootstrap-authentication": "true",
        "usage-bootstrap-signing": "true",
        "auth-extra-groups": BOOTSTRAP_TOKEN_GROUP,
      },
    },
  });
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  const bindings: [string, string, string][] = [
    ["worknode:kubelet-bootstrap", "system:node-bootstrapper", "system:bootstrappers"],
    [
      "worknode:node-autoapprove-bootstrap",
      "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
      "system:bootstrappers",
    ],
    [
      "worknode:node-autoapprove-certificate-rotation",
      "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
      "system:nodes",
    ],
  ];
  for (const [name, role, group] of bindings) {
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
        subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: group }],
      },
    });
  }
  return `${id}.${secret}`;
}
