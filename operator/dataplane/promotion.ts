// The last step every failover shares, whatever the server: promote the chosen node, then point
// every other reachable node at it.

export interface PromotionOps<N> {
  promote(n: N): Promise<void>;
  follow(n: N, primary: N): Promise<void>;
}

/**
 * Promotes `chosen`, then makes each of `others` follow it. A node that fails to follow is left
 * out of the result rather than failing the call (the promotion already happened): the caller
 * rejoins it later. A failed promotion throws, naming the node.
 */
export async function promoteAndRepoint<N extends { name: string }>(
  chosen: N,
  others: readonly N[],
  ops: PromotionOps<N>,
): Promise<N[]> {
  try {
    await ops.promote(chosen);
  } catch (err) {
    throw new Error(`failover: promoting ${chosen.name} failed`, { cause: err });
  }
  const followed = await Promise.all(
    others.map((n) =>
      ops.follow(n, chosen).then(
        () => true,
        () => false,
      ),
    ),
  );
  return others.filter((_, i) => followed[i]);
}
