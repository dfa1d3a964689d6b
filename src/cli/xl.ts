/**
 * `pvblk xl`: the xl commands a Xen user reaches for, against a running pvblk stack, with xl's output
 * and messages (tools/xl): list, block-list, block-attach, block-detach, create, destroy. And
 * `pvblk dashboard`, which prints the address of the host's live dashboard.
 *
 * Everything goes through the host API as the operator (xl-access.ts finds it). Where xl is silent
 * or exits 0 on bad input (block-list of an unknown domain), pvblk says so and exits 1.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { deriveGuestToken } from '@pvblk/runtime';
import { diskToJson, DiskSpecError, parseDiskSpec, vdevNumber, type DomInfo } from '@pvblk/backend';
import { defaultRunDir } from './shell.ts';
import { operatorCall, refusal, resolveOperatorAccess, type OperatorAccess } from './xl-access.ts';
import { formatBlockRow, formatList, formatListRow, XL_BLOCK_LIST_HEADER } from './xl-format.ts';
import { parseXlConfig } from './xl-config.ts';
import { FileTooLarge, readBounded } from '@pvblk/runtime';

/** The largest xl config file read (xl has none; a config is a few hundred bytes). */
const XL_CONFIG_MAX = 1024 * 1024;

const out = (s: string) => process.stdout.write(s);

/**
 * Progress of an operation that waits on the guest or the backend (detach waits up to 10 s for the
 * close, create up to 30 s for the boot): after a second, a line on the terminal counting the seconds,
 * rewritten in place and erased at the end. Nothing when stderr is not a terminal (scripts see xl's
 * output only).
 */
async function withProgress<T>(label: string, p: Promise<T>): Promise<T> {
  if (!process.stderr.isTTY) return p;
  const started = Date.now();
  let shown = false;
  const timer = setInterval(() => {
    shown = true;
    process.stderr.write(`\r${label} (${Math.floor((Date.now() - started) / 1000)} s)`);
  }, 1000);
  try {
    return await p;
  } finally {
    clearInterval(timer);
    if (shown) process.stderr.write('\r\x1b[K');
  }
}
const err = (s: string) => process.stderr.write(s);

/** An exit with xl's message already printed. */
class XlExit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}
const exit = (code: number, message?: string): never => {
  if (message !== undefined) err(message.endsWith('\n') ? message : message + '\n');
  throw new XlExit(code);
};

async function domains(a: OperatorAccess): Promise<DomInfo[]> {
  const r = await operatorCall(a, 'GET', '/domains');
  const no = refusal(r);
  if (no) exit(1, `libxl_list_domain failed: ${no.message}`);
  return r.body as DomInfo[];
}

/**
 * libxl_domain_qualifier_to_domid: all digits is a domid (existing or not), anything else a name
 * looked up among the domains. null when the name matches none.
 */
async function qualifierToDomid(a: OperatorAccess, q: string): Promise<number | null> {
  if (/^[0-9]+$/.test(q)) return Number(q);
  return (await domains(a)).find((d) => d.name === q)?.domid ?? null;
}

/** find_domain(): an unknown name ends the command as xl ends it. */
async function findDomain(a: OperatorAccess, q: string): Promise<number> {
  const domid = await qualifierToDomid(a, q);
  if (domid === null) exit(1, `${q} is an invalid domain identifier (rc=-6)`);
  return domid!;
}

function libxlError(no: { error: string; message: string }, what: string): never {
  return exit(1, `libxl: error: ${no.message} (${no.error})\n${what}`);
}

interface Common {
  api?: string;
  runDir: string;
}

/** Runs one xl subcommand: access first (a missing credential is an error like any other). */
function action<A extends unknown[]>(
  fail: (e: unknown) => never,
  fn: (a: OperatorAccess, ...args: A) => Promise<void>,
  needsAccess: (...args: A) => boolean = () => true,
) {
  return async (...args: A) => {
    const cmd = args[args.length - 1] as Command;
    const o = cmd.optsWithGlobals() as Common;
    try {
      const a = needsAccess(...args) ? resolveOperatorAccess(o) : (null as unknown as OperatorAccess);
      await fn(a, ...args);
      process.exit(0);
    } catch (e) {
      if (e instanceof XlExit) process.exit(e.code);
      fail(e);
    }
  };
}

export function registerXl(program: Command, fail: (e: unknown) => never): void {
  const xl = program
    .command('xl')
    .description('the xl commands of a Xen host against the running stack (operator only; docs/tools.md)')
    .option('--api <url>', "the host API (default: $PVBLK_TOOLSTACK_URL, else the run dir's stack)")
    .option('--run-dir <dir>', 'the run dir of `pvblk up` ($PVBLK_RUN_DIR)', defaultRunDir())
    .option('-N, --dry-run', 'block-attach: parse the disk specification and print it, change nothing');

  xl.command('list')
    .description('list domains: Name ID Mem VCPUs State Time(s)')
    .argument('[domain]')
    .action(
      action(fail, async (a, domain: string | undefined) => {
        const all = await domains(a);
        if (domain === undefined) return void out(formatList(all).join('\n') + '\n');
        const domid = await findDomain(a, domain);
        const d = all.find((x) => x.domid === domid);
        if (!d) exit(1, `Error: Domain '${domain}' does not exist.`);
        out(formatList([]).join('\n') + '\n' + formatListRow(d!) + '\n');
      }),
    );

  xl.command('block-list')
    .description('list the virtual block devices of domains: Vdev BE handle state evt-ch ring-ref BE-path')
    .argument('<domain...>')
    .action(
      action(fail, async (a, doms: string[]) => {
        out(XL_BLOCK_LIST_HEADER + '\n');
        let status = 0;
        for (const q of doms) {
          const domid = await qualifierToDomid(a, q);
          const known = domid !== null && (await domains(a)).some((d) => d.domid === domid);
          if (domid === null || !known) {
            // xl prints this and carries on with exit status 0; pvblk's status says it failed
            err(`${q} is an invalid domain identifier\n`);
            status = 1;
            continue;
          }
          const r = await operatorCall(a, 'GET', `/guests/${domid}/vbds`);
          const no = refusal(r);
          if (no) {
            err(`libxl: error: ${no.message}\n`);
            status = 1;
            continue;
          }
          for (const v of r.body as Parameters<typeof formatBlockRow>[0][]) out(formatBlockRow(v) + '\n');
        }
        if (status) exit(status);
      }),
    );

  xl.command('block-attach')
    .description(
      "attach a disk to a running domain: xl's disk specification, e.g. 'vdev=xvdb, access=rw, target=/dev/sdh' or 'vdev=xvdb, target=scsi_debug:dev_size_mb=16 dif=1'",
    )
    .argument('<domain>')
    .argument('<disk-spec...>')
    .action(
      action(
        fail,
        async (a, domain: string, spec: string[], _o: unknown, cmd: Command) => {
          const dry = (cmd.optsWithGlobals() as { dryRun?: boolean }).dryRun === true;
          let disk;
          try {
            disk = parseDiskSpec(spec);
          } catch (e) {
            if (e instanceof DiskSpecError) exit(1, e.lines.join('\n'));
            throw e;
          }
          if (dry) {
            if (!/^[0-9]+$/.test(domain)) await findDomain(a, domain);
            return void out(`disk: ${diskToJson(disk!)}\n`);
          }
          const domid = await qualifierToDomid(a, domain);
          if (domid === null) exit(1, `${domain} is an invalid domain identifier`);
          const r = await withProgress(
            `waiting for the backend of ${spec.join(' ')}`,
            operatorCall(a, 'POST', `/guests/${domid}/vbds`, { spec }),
          );
          const no = refusal(r);
          if (no) libxlError(no, 'libxl_device_disk_add failed.');
        },
        // a dry run of a numeric domain needs no stack, as xl -N needs no running domain
        (domain: string, _spec: string[], _o: unknown, cmd: Command) =>
          !((cmd.optsWithGlobals() as { dryRun?: boolean }).dryRun === true && /^[0-9]+$/.test(domain)),
      ),
    );

  xl.command('block-detach')
    .description(
      'detach a virtual block device: the XenBus close (Closing, Closed), then both directories go',
    )
    .option('-f, --force', 'remove the device even when the guest does not close it (after 10 s)')
    .argument('<domain>')
    .argument('<vdev>')
    .action(
      action(fail, async (a, domain: string, vdev: string, o: { force?: boolean }) => {
        const domid = await findDomain(a, domain);
        if (vdevNumber(vdev) === null) exit(1, `Error: Device ${vdev} not connected.`);
        const r = await withProgress(
          `waiting for domain ${domid} to close ${vdev}`,
          operatorCall(
            a,
            'DELETE',
            `/guests/${domid}/vbds/${encodeURIComponent(vdev)}${o.force ? '?force=1' : ''}`,
          ),
        );
        const no = refusal(r);
        if (!no) return;
        if (r.status === 404 && no.message.startsWith('Device ')) exit(1, `Error: ${no.message}`);
        libxlError(no, `libxl_device_disk_${o.force ? 'destroy' : 'safe_remove'} failed.`);
      }),
    );

  xl.command('create')
    .description(
      'create a domain from an xl config file (name, disk list) and start its guest process (pvblk domu)',
    )
    .option('-p', 'leave the domain paused: do not start its process')
    .argument('<config-file>')
    .action(
      action(fail, async (a, file: string, o: { p?: boolean }) => {
        err(`Parsing config from ${file}\n`);
        let text: string;
        try {
          text = readBounded(file, XL_CONFIG_MAX).toString('utf8');
        } catch (e) {
          const why = e instanceof FileTooLarge ? e.message : ((e as NodeJS.ErrnoException).code ?? e);
          return exit(1, `Failed to read config file: ${file}: ${why}`);
        }
        const cfg = parseXlConfig(text, file);
        // xvda is the guest's own disk (registered under its name); the others are attached after it
        let own: string | undefined;
        const vbds: string[][] = [];
        for (const spec of cfg.disk) {
          let d;
          try {
            d = parseDiskSpec([spec], file);
          } catch (e) {
            if (e instanceof DiskSpecError) exit(1, e.lines.join('\n'));
            throw e;
          }
          if (d!.vdev === 'xvda') {
            const t = d!.target ?? '';
            if (!t.startsWith('scsi_debug:') && t !== '')
              exit(
                1,
                `${file}: xvda is the guest's own disk: its target is scsi_debug:<parameters> (got ${t})`,
              );
            own = t.slice('scsi_debug:'.length).trim() || undefined;
          } else vbds.push([spec]);
        }
        const r = await operatorCall(a, 'POST', '/guests', { name: cfg.name, disk: own, vbds });
        const no = refusal(r);
        if (no) libxlError(no, 'libxl_domain_create_new failed.');
        const domid = (r.body as { domid: number }).domid;
        if (o.p) return;
        if (!a.hypervisor)
          exit(
            1,
            `domain ${domid} (${cfg.name}) is created, paused: its process needs the hypervisor's URL (PVBLK_HYPERVISOR_URL) to start`,
          );
        startGuestProcess(a, cfg.name);
        await withProgress(`waiting for domain ${domid} (${cfg.name}) to boot`, waitRunning(a, domid));
      }),
    );

  xl.command('destroy')
    .description('destroy a domain at once (its guest process exits)')
    .option('-f', 'force (refused for domain 0 all the same: pvblk has no disaggregated Dom0)')
    .argument('<domain>')
    .action(
      action(fail, async (a, domain: string) => {
        const domid = await findDomain(a, domain);
        if (domid === 0)
          exit(
            1,
            'Not destroying domain 0; use -f to force.\nThis can only be done when using a disaggregated hardware domain and toolstack.\n',
          );
        const r = await operatorCall(a, 'DELETE', `/guests/${domid}`);
        const no = refusal(r);
        if (no) exit(1, `destroy failed (${no.error}: ${no.message})`);
      }),
    );

  program
    .command('dashboard')
    .description("print the address of the host's live dashboard (operator only; open it in a browser)")
    .option('--api <url>', "the host API (default: $PVBLK_TOOLSTACK_URL, else the run dir's stack)")
    .option('--run-dir <dir>', 'the run dir of `pvblk up` ($PVBLK_RUN_DIR)', defaultRunDir())
    .action(
      action(fail, async (a) => {
        // the token travels in the fragment, which a browser never sends to a server
        out(`${new URL('/dashboard', a.api).href}#token=${encodeURIComponent(a.token)}\n`);
      }),
    );
}

/** The guest's process, detached, logging to <run dir>/<name>.log; it boots into the created domain. */
function startGuestProcess(a: OperatorAccess, name: string): void {
  const runDir = a.runDir;
  mkdirSync(runDir, { recursive: true });
  const log = openSync(join(runDir, `${name}.log`), 'a');
  const env: Record<string, string> = { PVBLK_GUEST_TOKEN: deriveGuestToken(a.token, name) };
  for (const k of ['PATH', 'HOME', 'USER', 'TMPDIR', 'LANG', 'TZ', 'PVBLK_LOG_LEVEL', 'PVBLK_LOG_FORMAT'])
    if (process.env[k] !== undefined) env[k] = process.env[k]!;
  const child = spawn(
    process.execPath,
    [
      process.argv[1],
      'domu',
      '--name',
      name,
      '--hypervisor',
      a.hypervisor!,
      '--toolstack',
      a.api,
      '--control',
      join(runDir, `${name}.sock`),
    ],
    { detached: true, stdio: ['ignore', log, log], env },
  );
  child.unref();
}

/** libxl waits for the domain to run; here its process connects (at most 30 s). */
async function waitRunning(a: OperatorAccess, domid: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const d = (await domains(a)).find((x) => x.domid === domid);
    if (!d) exit(1, `domain ${domid} went away while starting: see its log in the run dir`);
    if (!d!.paused) return;
    if (Date.now() > deadline)
      exit(1, `domain ${domid} did not start within 30 s: see its log in the run dir`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
