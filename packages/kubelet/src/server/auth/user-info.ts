/**
 * Who a request to the kubelet API comes from, as the API server's
 * `user.Info` carries it, and the identities kubelet's authenticator assigns.
 *
 * @module
 */

/** An authenticated (or anonymous) user. */
export interface UserInfo {
  /** User name, such as `system:node:n1` or `system:serviceaccount:ns:sa`. */
  readonly username: string;
  /** Unique ID, when the authenticator knows one (TokenReview). */
  readonly uid?: string;
  /** Groups the user belongs to. */
  readonly groups: readonly string[];
  /** Extra attributes (TokenReview `user.extra`), passed on to SubjectAccessReviews. */
  readonly extra?: Readonly<Record<string, readonly string[]>>;
}

/** The user name of anonymous requests. */
export const ANONYMOUS_USER = "system:anonymous";
/** The group of anonymous requests. */
export const UNAUTHENTICATED_GROUP = "system:unauthenticated";
/** The group every authenticated user is put in. */
export const AUTHENTICATED_GROUP = "system:authenticated";

/** The identity of an anonymous request (`system:anonymous`, group `system:unauthenticated`). */
export const anonymousUser: UserInfo = Object.freeze({
  username: ANONYMOUS_USER,
  groups: Object.freeze([UNAUTHENTICATED_GROUP]),
});

/**
 * Adds `system:authenticated` to an authenticated user's groups unless it is
 * there already (or the user is anonymous), as the API server's authenticated
 * group adder does.
 */
export function withAuthenticatedGroup(user: UserInfo): UserInfo {
  if (user.username === ANONYMOUS_USER) return user;
  if (user.groups.includes(AUTHENTICATED_GROUP) || user.groups.includes(UNAUTHENTICATED_GROUP)) return user;
  return { ...user, groups: [...user.groups, AUTHENTICATED_GROUP] };
}
