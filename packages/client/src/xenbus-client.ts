/**
 * What drivers/xen/xenbus/xenbus_client.c gives both ends of a split driver, over this domain's
 * XenStore connection.
 */
import type { XenbusState } from '@pvblk/shared';
import type { XenStoreOps } from './hypercalls.ts';

/**
 * xenbus_switch_state()'s store write: the device's `state` node set in a transaction that first
 * checks the node still exists, so that a driver late to notice that the toolstack removed its
 * device (the directory is gone) does not create a stray `state` node where the device was.
 */
export async function xenbusSwitchState(
  xs: XenStoreOps,
  nodename: string,
  state: XenbusState,
): Promise<void> {
  await xs.transaction(async (tx) => {
    if ((await xs.tryRead(`${nodename}/state`, tx)) === null) return;
    await xs.write(`${nodename}/state`, String(state), tx);
  });
}
