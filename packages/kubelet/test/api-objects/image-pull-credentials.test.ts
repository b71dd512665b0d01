// The image puller's use of pull-secret credentials and its events, against a scripted CRI image
// service (the real pull path is covered by the kubelet system tests).
import type { Pod } from "@worknode/core";
import type { CriClient } from "@worknode/cri";
import { describe, expect, it } from "vitest";
import { keyringEntriesFromSecret, lookupCredentials } from "../../src/api-objects/credential-keyring.js";
import type { EventRecorder, EventType, ObjectReference } from "../../src/events/event-recorder.js";
import { ImagePullError, ImagePuller, newImagePullBackoff } from "../../src/runtime/image-puller.js";

const pod: Pod = { metadata: { name: "web", namespace: "ns", uid: "u1" }, spec: { containers: [] } };
const container = { name: "app", image: "registry.example.com/team/app:1", imagePullPolicy: "Always" };

class Recorded implements EventRecorder {
  readonly events: Array<{ ref: ObjectReference; type: EventType; reason: string; message: string }> = [];
  event(ref: ObjectReference, type: EventType, reason: string, message: string): void {
    this.events.push({ ref, type, reason, message });
  }
}

function scriptedClient(acceptUser: string | undefined) {
  const pulls: Array<string | undefined> = [];
  const client = {
    image: {
      imageStatus: async () => ({ image: { id: "sha256:abc", size: 1234 } }),
      pullImage: async (req: { auth?: { username: string } }) => {
        pulls.push(req.auth?.username);
        if (acceptUser !== undefined && req.auth?.username !== acceptUser)
          throw new Error("401 unauthorized");
        return { imageRef: "sha256:abc" };
      },
    },
  };
  return { client: client as unknown as CriClient, pulls };
}

const secret = {
  type: "kubernetes.io/dockerconfigjson",
  metadata: { name: "pull" },
  data: {
    ".dockerconfigjson": Buffer.from(
      JSON.stringify({
        auths: {
          "registry.example.com": { username: "host-wide", password: "x" },
          "registry.example.com/team": { username: "team", password: "y" },
        },
      }),
    ).toString("base64"),
  },
};

describe("image pulls with imagePullSecrets", () => {
  it("tries matching credentials in keyring order until one works and records Pulling / Pulled", async () => {
    const { client, pulls } = scriptedClient("host-wide");
    const recorder = new Recorded();
    const puller = new ImagePuller({ client, backoff: newImagePullBackoff(10) });
    const credentials = lookupCredentials(container.image, keyringEntriesFromSecret(secret));
    expect(await puller.ensureImage(pod, container, undefined, { credentials, recorder })).toBe("sha256:abc");
    expect(pulls).toEqual(["team", "host-wide"]);
    expect(
      recorder.events.map((e) => [e.type, e.reason, e.message.replace(/in \S+ \(\S+ /, "in T (T ")]),
    ).toEqual([
      ["Normal", "Pulling", 'Pulling image "registry.example.com/team/app:1"'],
      [
        "Normal",
        "Pulled",
        'Successfully pulled image "registry.example.com/team/app:1" in T (T including waiting). Image size: 1234 bytes.',
      ],
    ]);
    expect(recorder.events[0]?.ref.fieldPath).toBe("spec.containers{app}");
  });

  it("pulls anonymously without credentials, and reports a failed pull and the back-off", async () => {
    const { client, pulls } = scriptedClient("someone");
    const recorder = new Recorded();
    const puller = new ImagePuller({ client, backoff: newImagePullBackoff(60_000) });
    const err = await puller.ensureImage(pod, container, undefined, { recorder }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImagePullError);
    expect((err as ImagePullError).reason).toBe("ErrImagePull");
    expect(pulls).toEqual([undefined]);
    const again = await puller.ensureImage(pod, container, undefined, { recorder }).catch((e: unknown) => e);
    expect((again as ImagePullError).reason).toBe("ImagePullBackOff");
    expect(recorder.events.map((e) => [e.type, e.reason, e.message])).toEqual([
      ["Normal", "Pulling", 'Pulling image "registry.example.com/team/app:1"'],
      ["Warning", "Failed", 'Failed to pull image "registry.example.com/team/app:1": 401 unauthorized'],
      ["Warning", "Failed", "Error: ErrImagePull"],
      ["Normal", "BackOff", 'Back-off pulling image "registry.example.com/team/app:1"'],
    ]);
  });

  it("records an already present image", async () => {
    const { client, pulls } = scriptedClient(undefined);
    const recorder = new Recorded();
    const puller = new ImagePuller({ client });
    await puller.ensureImage(pod, { ...container, imagePullPolicy: "IfNotPresent" }, undefined, { recorder });
    expect(pulls).toEqual([]);
    expect(recorder.events.map((e) => e.message)).toEqual([
      'Container image "registry.example.com/team/app:1" already present on machine',
    ]);
  });
});
