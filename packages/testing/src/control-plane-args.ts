/**
 * Command lines of the control-plane components (pure: paths and ports in,
 * argument arrays out). Every listener is bound to 127.0.0.1.
 *
 * @module
 */
import type { ControlPlanePki } from "./pki.js";

/** Loopback address every component binds to. */
export const LOOPBACK = "127.0.0.1";

/** Input of {@link etcdArgs}. */
export interface EtcdArgsInput {
  /** Data directory. */
  readonly dataDir: string;
  /** Client port (plain HTTP on loopback). */
  readonly clientPort: number;
  /** Peer port (plain HTTP on loopback). */
  readonly peerPort: number;
}

/** etcd: one member, plain HTTP on loopback, no fsync (test data is disposable). */
export function etcdArgs(input: EtcdArgsInput): string[] {
  const client = `http://${LOOPBACK}:${input.clientPort}`;
  const peer = `http://${LOOPBACK}:${input.peerPort}`;
  return [
    "--name=worknode-test",
    `--data-dir=${input.dataDir}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=worknode-test=${peer}`,
    "--initial-cluster-state=new",
    "--unsafe-no-fsync=true",
    "--logger=zap",
    "--log-outputs=stderr",
    "--log-level=warn",
  ];
}

/** Input of {@link apiserverArgs}. */
export interface ApiserverArgsInput {
  /** The PKI. */
  readonly pki: ControlPlanePki;
  /** etcd client URL. */
  readonly etcdUrl: string;
  /** HTTPS port. */
  readonly securePort: number;
  /** Service cluster IP range (`10.96.0.0/16`). */
  readonly serviceClusterIpRange: string;
  /** Directory for generated files the API server wants (unused certificates). */
  readonly certDir: string;
  /** Log verbosity (`-v`); default 1. */
  readonly verbosity?: number;
  /** Extra flags appended last (later flags win). */
  readonly extraArgs?: readonly string[];
}

/** Service-account issuer of the test cluster. */
export const SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local";

/**
 * kube-apiserver: Node+RBAC authorization, NodeRestriction admission,
 * client-certificate, bootstrap-token and service-account authentication,
 * front-proxy request headers, bound and advertised on 127.0.0.1.
 *
 * The `kubernetes` Service's endpoints are not reconciled (`--endpoint-reconciler-type=none`):
 * a loopback address is not a valid endpoint.
 */
export function apiserverArgs(input: ApiserverArgsInput): string[] {
  const { pki } = input;
  return [
    `--etcd-servers=${input.etcdUrl}`,
    `--bind-address=${LOOPBACK}`,
    `--advertise-address=${LOOPBACK}`,
    `--secure-port=${input.securePort}`,
    `--cert-dir=${input.certDir}`,
    `--tls-cert-file=${pki.apiserver.certPath}`,
    `--tls-private-key-file=${pki.apiserver.keyPath}`,
    `--client-ca-file=${pki.ca.certPath}`,
    `--kubelet-client-certificate=${pki.apiserverKubeletClient.certPath}`,
    `--kubelet-client-key=${pki.apiserverKubeletClient.keyPath}`,
    "--authorization-mode=Node,RBAC",
    "--enable-admission-plugins=NodeRestriction",
    `--service-cluster-ip-range=${input.serviceClusterIpRange}`,
    `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
    `--service-account-key-file=${pki.serviceAccount.publicKeyPath}`,
    `--service-account-signing-key-file=${pki.serviceAccount.privateKeyPath}`,
    `--requestheader-client-ca-file=${pki.frontProxyCa.certPath}`,
    "--requestheader-allowed-names=front-proxy-client",
    "--requestheader-username-headers=X-Remote-User",
    "--requestheader-group-headers=X-Remote-Group",
    "--requestheader-extra-headers-prefix=X-Remote-Extra-",
    `--proxy-client-cert-file=${pki.frontProxyClient.certPath}`,
    `--proxy-client-key-file=${pki.frontProxyClient.keyPath}`,
    "--enable-bootstrap-token-auth=true",
    // As kubeadm: reach kubelets by IP first (a test node's host name does not resolve).
    "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
    "--allow-privileged=true",
    "--endpoint-reconciler-type=none",
    "--profiling=false",
    `--v=${input.verbosity ?? 1}`,
    ...(input.extraArgs ?? []),
  ];
}

/** Input of {@link controllerManagerArgs}. */
export interface ControllerManagerArgsInput {
  /** The PKI (cluster CA signs CSRs, service-account key signs legacy tokens). */
  readonly pki: ControlPlanePki;
  /** kubeconfig of `system:kube-controller-manager`. */
  readonly kubeconfigPath: string;
  /** HTTPS (health) port. */
  readonly securePort: number;
  /** Directory for its self-signed serving certificate. */
  readonly certDir: string;
  /** Service cluster IP range. */
  readonly serviceClusterIpRange: string;
  /** Log verbosity; default 1. */
  readonly verbosity?: number;
  /** Extra flags appended last. */
  readonly extraArgs?: readonly string[];
}

/** kube-controller-manager: all default controllers plus the bootstrap-token ones, no leader election. */
export function controllerManagerArgs(input: ControllerManagerArgsInput): string[] {
  const { pki } = input;
  return [
    `--kubeconfig=${input.kubeconfigPath}`,
    `--authentication-kubeconfig=${input.kubeconfigPath}`,
    `--authorization-kubeconfig=${input.kubeconfigPath}`,
    `--bind-address=${LOOPBACK}`,
    `--secure-port=${input.securePort}`,
    `--cert-dir=${input.certDir}`,
    `--service-account-private-key-file=${pki.serviceAccount.privateKeyPath}`,
    `--root-ca-file=${pki.ca.certPath}`,
    `--cluster-signing-cert-file=${pki.ca.certPath}`,
    `--cluster-signing-key-file=${pki.ca.keyPath}`,
    `--requestheader-client-ca-file=${pki.frontProxyCa.certPath}`,
    `--client-ca-file=${pki.ca.certPath}`,
    `--service-cluster-ip-range=${input.serviceClusterIpRange}`,
    "--use-service-account-credentials=true",
    "--controllers=*,bootstrap-signer-controller,token-cleaner-controller",
    "--leader-elect=false",
    "--profiling=false",
    `--v=${input.verbosity ?? 1}`,
    ...(input.extraArgs ?? []),
  ];
}

/** Input of {@link schedulerArgs}. */
export interface SchedulerArgsInput {
  /** kubeconfig of `system:kube-scheduler`. */
  readonly kubeconfigPath: string;
  /** HTTPS (health) port. */
  readonly securePort: number;
  /** Directory for its self-signed serving certificate. */
  readonly certDir: string;
  /** Log verbosity; default 1. */
  readonly verbosity?: number;
  /** Extra flags appended last. */
  readonly extraArgs?: readonly string[];
}

/** kube-scheduler: default profile, no leader election. */
export function schedulerArgs(input: SchedulerArgsInput): string[] {
  return [
    `--kubeconfig=${input.kubeconfigPath}`,
    `--authentication-kubeconfig=${input.kubeconfigPath}`,
    `--authorization-kubeconfig=${input.kubeconfigPath}`,
    `--bind-address=${LOOPBACK}`,
    `--secure-port=${input.securePort}`,
    `--cert-dir=${input.certDir}`,
    "--leader-elect=false",
    "--profiling=false",
    `--v=${input.verbosity ?? 1}`,
    ...(input.extraArgs ?? []),
  ];
}
