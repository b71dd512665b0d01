/**
 * {@link PodObjectProvider} backed by an API server, with the kubelet's node
 * credentials. The Node authorizer lets a node read only the ConfigMaps and
 * Secrets referenced by pods bound to it, so objects are read one by one
 * (GET per object, like kubelet's `Get` / `Cache` change-detection strategies)
 * and cached for a short TTL: a changed object is seen at the latest one TTL
 * later, on a pod worker's periodic resync. Services are listed cluster-wide
 * (nodes may list them) with the same TTL. Tokens come from a
 * {@link TokenManager}.
 *
 * @module
 */
import {
  ApiStatusError,
  type Clock,
  type ConfigMap,
  describeError,
  type KubeApiClient,
  type Pod,
  realClock,
  type Secret,
  type Service,
} from "@worknode/core";
import {
  objectNotFoundMessage,
  PodObjectError,
  type PodObjectProvider,
  type ServiceAccountTokenProjection,
} from "./provider.js";
import { TokenManager } from "./token-manager.js";

/** kubelet's default TTL of cached ConfigMaps and Secrets (`Cache` strategy): 1 min. */
export const DEFAULT_OBJECT_CACHE_TTL_MS = 60_000;

/** Options of {@link ApiPodObjectProvider}. */
export interface ApiPodObjectProviderOptions {
  /** Client with the node's credentials. */
  readonly client: KubeApiClient;
  /** How long a read object (or its absence) is reused; default 60 s. */
  readonly ttlMs?: number;
  readonly clock?: Clock;
  /** Token manager; default one on the same client. */
  readonly tokens?: TokenManager;
}

/** Beyond this many cached reads, expired ones are dropped. */
const MAX_CACHED_OBJECTS = 1024;

interface CacheEntry<T> {
  readonly at: number;
  readonly value: Promise<T>;
}

interface ServiceList {
  items?: Service[];
}

/** Reads the objects pods reference from an API server (see the module notes). */
export class ApiPodObjectProvider implements PodObjectProvider {
  private readonly ttlMs: number;
  private readonly clock: Clock;
  private readonly tokens: TokenManager;
  private readonly cache = new Map<string, CacheEntry<unknown>>();

  constructor(private readonly options: ApiPodObjectProviderOptions) {
    this.ttlMs = options.ttlMs ?? DEFAULT_OBJECT_CACHE_TTL_MS;
    this.clock = options.clock ?? realClock;
    this.tokens = options.tokens ?? new TokenManager({ client: options.client, clock: this.clock });
  }

  /** See {@link PodObjectProvider.getConfigMap}. */
  getConfigMap(namespace: string, name: string): Promise<ConfigMap> {
    return this.cached(`configmaps/${namespace}/${name}`, () =>
      this.read<ConfigMap>("configmap", "configmaps", namespace, name),
    );
  }

  /** See {@link PodObjectProvider.getSecret}. */
  getSecret(namespace: string, name: string): Promise<Secret> {
    return this.cached(`secrets/${namespace}/${name}`, () =>
      this.read<Secret>("secret", "secrets", namespace, name),
    );
  }

  /** See {@link PodObjectProvider.serviceAccountToken}. */
  serviceAccountToken(pod: Pod, projection: ServiceAccountTokenProjection): Promise<string> {
    return this.tokens.token(pod, projection);
  }

  /** See {@link PodObjectProvider.services}. */
  services(): Promise<readonly Service[]> {
    return this.cached("services", async () => {
      try {
        const list = await this.options.client.requestJson<ServiceList>("GET", "/api/v1/services");
        return list?.items ?? [];
      } catch (e) {
        throw new PodObjectError("Unavailable", `failed to list services: ${describeError(e)}`, { cause: e });
      }
    });
  }

  /** See {@link PodObjectProvider.forgetPod}. */
  forgetPod(uid: string): void {
    this.tokens.forgetPod(uid);
  }

  private cached<T>(key: string, load: () => Promise<T>): Promise<T> {
    const now = this.clock.now();
    if (this.cache.size > MAX_CACHED_OBJECTS) {
      for (const [k, e] of this.cache) if (now - e.at >= this.ttlMs) this.cache.delete(k);
    }
    const hit = this.cache.get(key);
    if (hit && now - hit.at < this.ttlMs) return hit.value as Promise<T>;
    const value = load();
    this.cache.set(key, { at: now, value });
    // Failures are not cached, "not found" included: a pod waiting for an object it
    // references starts at its next retry once the object is created.
    value.catch(() => {
      if (this.cache.get(key)?.value === value) this.cache.delete(key);
    });
    return value;
  }

  private async read<T>(
    kind: "configmap" | "secret",
    plural: string,
    namespace: string,
    name: string,
  ): Promise<T> {
    const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/${plural}/${encodeURIComponent(name)}`;
    try {
      return await this.options.client.requestJson<T>("GET", path);
    } catch (e) {
      if (e instanceof ApiStatusError && e.status === 404) {
        throw new PodObjectError("NotFound", objectNotFoundMessage(kind, name), { cause: e });
      }
      if (e instanceof ApiStatusError && e.status === 403) {
        throw new PodObjectError("Forbidden", `${kind} "${name}" is forbidden: ${describeError(e)}`, {
          cause: e,
        });
      }
      throw new PodObjectError("Unavailable", `failed to get ${kind} "${name}": ${describeError(e)}`, {
        cause: e,
      });
    }
  }
}
