/**
 * The spurious-event back-off of Linux's lateeoi event channels (drivers/xen/events/events_base.c,
 * xen_irq_lateeoi_locked; XSA-332 for backends, XSA-391 for frontends).
 *
 * A driver bound with lateeoi acknowledges each upcall itself and says whether the event found work.
 * Every spurious EOI (no work) raises a per-channel count; once the count passes the device's
 * `spurious_threshold` (default 1) the EOI — and with it the next upcall — is held back for
 * 2^(count - 1 - threshold) jiffies, at most HZ (one second). An EOI that found work resets the count.
 * The count itself stops growing once 2^count reaches 4·HZ, so the delay stays at its cap. The xenbus
 * device counts the spurious events and the jiffies the EOIs were delayed (sysfs `spurious_events`,
 * `jiffies_eoi_delayed`).
 *
 * pvblk models a jiffy as 1 ms (HZ = 1000), as its scsi_debug `delay` does.
 */

/** Jiffies per second in pvblk's model: one jiffy is one millisecond. */
export const HZ = 1000;

export class SpuriousEventBackoff {
  /** info->spurious_cnt: consecutive spurious EOIs, saturating. */
  private count = 0;
  /** xenbus_device.spurious_events */
  spuriousEvents = 0;
  /** xenbus_device.jiffies_eoi_delayed (milliseconds here). */
  jiffiesEoiDelayed = 0;

  constructor(
    /** xenbus_device.spurious_threshold; 0 means the default of 1. */
    private readonly threshold = 1,
  ) {}

  /** The delay in jiffies (ms) before this EOI may be sent: 0 unless the peer keeps sending for nothing. */
  eoi(spurious: boolean): number {
    if (!spurious) {
      this.count = 0;
      return 0;
    }
    const threshold = this.threshold || 1;
    if (2 ** this.count < HZ * 4 && this.count !== 0xff) this.count++;
    let delay = 0;
    if (this.count > threshold) {
      delay = Math.min(2 ** (this.count - 1 - threshold), HZ);
      this.jiffiesEoiDelayed += delay;
    }
    this.spuriousEvents++;
    return delay;
  }
}
