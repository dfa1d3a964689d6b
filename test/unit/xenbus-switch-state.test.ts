/**
 * xenbus_switch_state()'s store write, shared by blkfront and blkback: it sets a device's `state`,
 * and never creates one where the toolstack has removed the device.
 */
import { describe, expect, it } from 'vitest';
import { XenbusState } from '@pvblk/shared';
import { LocalHypervisor } from '@pvblk/hypervisor';
import { xenbusSwitchState } from '@pvblk/client';

describe('xenbusSwitchState', () => {
  it("writes the state of a device that exists, and leaves a removed device's directory absent", async () => {
    const lh = new LocalHypervisor();
    const dom0 = await lh.connectDom0();
    const dev = '/local/domain/0/backend/vbd/1/51712';
    await dom0.xs.write(`${dev}/state`, String(XenbusState.Initialising));
    await xenbusSwitchState(dom0.xs, dev, XenbusState.InitWait);
    expect(await dom0.xs.read(`${dev}/state`)).toBe(String(XenbusState.InitWait));
    // the toolstack removes the device; a driver that switches late writes nothing
    await dom0.xs.rm(dev);
    await xenbusSwitchState(dom0.xs, dev, XenbusState.Closing);
    expect(await dom0.xs.tryRead(`${dev}/state`)).toBeNull();
    expect(await dom0.xs.tryRead(dev)).toBeNull();
    dom0.close();
  });
});
