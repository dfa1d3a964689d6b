/**
 * fio's job files (fio-jobfile.ts) and when their jobs start (fio-run-threads.ts). The expected
 * command lines are fio 3.33's own `fio --showcmd <file>` for the same files (Debian's fio, run by
 * hand beside this code; its dump of the options a file set), and the expected errors its stderr.
 */
import { describe, expect, it } from 'vitest';
import { bcInteger, JobFileError, jobFileOptions, type JobFileSource } from '../src/guest/fio-jobfile.ts';
import {
  fioTakesValue,
  parseFioOptions,
  sectionsAsked,
  showCommandLines,
  splitOptions,
  type SplitOption,
} from '../src/guest/fio-cmdline.ts';
import { FioUsageError } from '../src/guest/fio-parse.ts';
import { rwBlockSize } from '../src/guest/fio-block-size.ts';
import { runThreads, type StartingJob } from '../src/guest/fio-run-threads.ts';
import { usage } from './fio-usage.ts';

function source(files: Record<string, string>, more: Partial<JobFileSource> = {}): JobFileSource {
  return {
    read: async (path) => (Object.hasOwn(files, path) ? Buffer.from(files[path]) : { missing: true }),
    env: () => undefined,
    keywords: { pagesize: 4096, mb_memory: 2048, ncpus: 2 },
    sections: [],
    ...more,
  };
}

/** What `fio --showcmd` prints of options: `--name=` for a job's section, `--opt=value` or `--opt`. */
function showcmd(opts: readonly SplitOption[]): string {
  const words = opts
    .filter((o) => !(o.name === 'name' && (o.value ?? '').startsWith('global')))
    .map((o) => (o.value === null ? `--${o.name}` : `--${o.name}=${o.value}`));
  return ['fio', ...words].join(' ');
}

async function refusal(p: Promise<unknown>): Promise<string[]> {
  try {
    await p;
  } catch (e) {
    if (e instanceof JobFileError) return e.lines;
    throw e;
  }
  throw new Error('no refusal');
}

/** The command line of `argv` with the options of `files`, parsed as the guest's fio parses it. */
async function parseWithFiles(argv: string[], files: Record<string, string>) {
  const { options, jobFiles } = splitOptions('fio', argv, fioTakesValue);
  const fromFiles = await jobFileOptions(jobFiles, source(files, { sections: sectionsAsked(options) }));
  return parseFioOptions([...options, ...fromFiles]);
}

const parse = (...args: string[]) => parseFioOptions(splitOptions('fio', args, fioTakesValue).options);

describe('fio job files', () => {
  it('reads sections, comments, ${VAR} and keywords as fio 3.33 --showcmd shows them', async () => {
    const file = [
      '[global]',
      'bs=4k ; inline',
      'rw=randread  # x',
      '  ioengine=psync',
      '[j1]',
      'size=1m',
      'filename=/tmp/x.dat',
      '# c',
      '[j2]',
      'stonewall',
      'numjobs=2',
      'size=${SZ}',
      'runtime=$ncpus',
    ].join('\n');
    const opts = await jobFileOptions(
      ['t.fio'],
      source({ 't.fio': file }, { env: (n) => (n === 'SZ' ? '2m' : undefined) }),
    );
    // fio: SZ=2m fio --showcmd t.fio, on two CPUs
    expect(showcmd(opts)).toBe(
      'fio --bs=4k --rw=randread --ioengine=psync --name=j1 --size=1m --filename=/tmp/x.dat --name=j2 --stonewall --numjobs=2 --size=2m --runtime=2',
    );
  });

  it('parses filename after the other options of its section (its priority, sort_options())', async () => {
    const opts = await jobFileOptions(
      ['g.fio'],
      source({ 'g.fio': '[global]\nfilename=/tmp/rf.dat\nbs=4k\nrw=randwrite\nsize=1m\n[a]\n' }),
    );
    // fio 3.33's JSON "global options" of this file: bs, rw, size, filename
    expect(showcmd(opts)).toBe('fio --bs=4k --rw=randwrite --size=1m --filename=/tmp/rf.dat --name=a');
  });

  it('includes a file relative to the one that includes it', async () => {
    const opts = await jobFileOptions(
      ['sub/main.fio'],
      source({ 'sub/main.fio': '[j]\nsize=1m\ninclude inc.fio\nrw=read\n', 'sub/inc.fio': 'bs=8k\n' }),
    );
    expect(showcmd(opts)).toBe('fio --name=j --size=1m --bs=8k --rw=read');
    expect(await refusal(jobFileOptions(['a.fio'], source({ 'a.fio': '[j]\ninclude nope.fio\n' })))).toEqual([
      "fio: unable to open 'nope.fio' job file",
      'Error 1 while parsing include file nope.fio',
    ]);
    expect(
      await refusal(jobFileOptions(['a.fio'], source({ 'a.fio': '[j]\ninclude b.fio\n', 'b.fio': '[k]\n' }))),
    ).toEqual(['No new sections in included files', 'Error 1 while parsing include file b.fio']);
    // a file that includes itself: fio recurses without end, this one stops
    expect(
      (
        await refusal(
          jobFileOptions(['a.fio'], source({ 'a.fio': '[j]\ninclude b.fio\n', 'b.fio': 'include b.fio\n' })),
        )
      )[0],
    ).toMatch(/includes nested more than 16 deep are refused/);
  });

  it('chooses sections with --section in the first file only, and walls each later file off', async () => {
    const a = '[a]\nsize=1m\n[b]\nsize=2m\n';
    const opts = await jobFileOptions(
      ['a.fio', 'g.fio', 'a.fio'],
      source({ 'a.fio': a, 'g.fio': '[global]\nbs=4k\n' }, { sections: ['b'] }),
    );
    // fio --showcmd a.fio g.fio a.fio --section=b prints the three files' options as these; its
    // dump leaves out the stonewall it sets on the third file's first job
    expect(showcmd(opts)).toBe(
      'fio --name=b --size=2m --bs=4k --name=a --stonewall --size=1m --name=b --size=2m',
    );
  });

  it('refuses what fio refuses in a file, in its words', async () => {
    expect(await refusal(jobFileOptions(['x.fio'], source({})))).toEqual([
      "fio: unable to open 'x.fio' job file",
    ]);
    expect(await refusal(jobFileOptions(['t2.fio'], source({ 't2.fio': 'bs=4k\n[j]\n' })))).toEqual([
      'fio: option <bs=4k> outside of [] job section',
    ]);
    // bc divides by zero and prints nothing on its stdout
    await expect(
      parseWithFiles(['k.fio'], { 'k.fio': '[j]\nsize=$mb_memory/1024\niodepth=$ncpus/0\n' }),
    ).rejects.toMatchObject({ lines: ['fio: failed parsing iodepth=$ncpus/0', 'fio: job j dropped'] });
    expect(
      await refusal(jobFileOptions(['big.fio'], source({ 'big.fio': '[j]\n' + 'x'.repeat(1 << 20) }))),
    ).toEqual(['fio: big.fio: job files of more than 1048576 bytes (with what they include) are refused']);
  });

  it("computes a keyword's arithmetic as bc does with scale=0", async () => {
    const opts = await jobFileOptions(
      ['k.fio'],
      source({ 'k.fio': '[j]\nsize=$mb_memory/1024\nbs=$pagesize*2\nnumjobs=$ncpus-5\n' }),
    );
    expect(showcmd(opts)).toBe('fio --name=j --size=2 --bs=8192 --numjobs=-3');
    expect(bcInteger('7/2')).toBe(3n);
    expect(bcInteger('-7/2')).toBe(-3n);
    expect(bcInteger('(1+2)*3%4')).toBe(1n);
    expect(bcInteger('2k')).toBeNull();
    expect(bcInteger('1/0')).toBeNull();
  });

  it("says every bad option of a section, the unknown names last, then drops the job (fio 3.33's stderr)", async () => {
    const file = [
      '[global]',
      'bs=4k',
      '[a]',
      'iodepth=4',
      '[b]',
      'stonewall',
      '[c]',
      'bogus=1',
      'bs=abc',
      'rw = read',
    ].join('\n');
    let e: unknown = null;
    try {
      await parseWithFiles(['rj2.fio'], { 'rj2.fio': file });
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(FioUsageError);
    expect((e as FioUsageError).lines).toEqual([
      'fio: failed parsing bs=abc',
      'fio: failed parsing rw = read',
      'Bad option <bogus=1>',
      'Did you mean bs?',
      'fio: job c dropped',
    ]);
    // the valid values of rw, on stdout as fio's show_option_values() prints them
    expect((e as FioUsageError).out[0]).toMatch(/valid values: read +Sequential read/);
  });

  it("takes a file's options as the command line's, after them, and a section's name= as its job's", async () => {
    const cl = await parseWithFiles(['--bs=8k', 'j.fio', '--name=cmd', '--iodepth=2'], {
      'j.fio': '[global]\nrw=randwrite\n[f]\nname=renamed\niodepth=8\n[g]\nnew_group\n',
    });
    expect(cl.jobs.map((j) => [j.name, rwBlockSize(j), j.rw, j.iodepth, j.groupid])).toEqual([
      ['cmd', 8192, 'read', 2, 0],
      ['renamed', 8192, 'randwrite', 8, 0],
      ['g', 8192, 'randwrite', 1, 1],
    ]);
    // a section's header is no option: fio's JSON lists a name only where name= was given
    expect(cl.given).toEqual([
      { name: 'cmd', iodepth: '2' },
      { name: 'renamed', iodepth: '8' },
      { new_group: '' },
    ]);
    // the command line's switches are no options of a file
    const lines = await parseWithFiles(['o.fio'], { 'o.fio': '[j]\noutput=x\n' }).then(
      () => [],
      (e: FioUsageError) => e.lines,
    );
    expect(lines).toEqual(['Bad option <output=x>', 'fio: job j dropped']);
    // one of fio's job options this fio lacks is said as such
    await expect(parseWithFiles(['x.fio'], { 'x.fio': '[j]\nlog_compression=1m\n' })).rejects.toThrow(
      "fio: option 'log_compression=1m' is one of fio's, but this fio does not implement it (see --help)",
    );
  });
});

describe('several job files, --section, --showcmd (init.c parse_options())', () => {
  const m1a = '[global]\nbs=8k\n[a]\nsize=1m\n';
  const m1b = '[b]\nsize=1m\n[c]\nrw=write\n';

  it("starts each job file after the first from fio's defaults, the command line's globals dropped", async () => {
    const cl = await parseWithFiles(['--iodepth=4', 'm1a.fio', 'm1b.fio'], {
      'm1a.fio': m1a,
      'm1b.fio': m1b,
    });
    // fio 3.33: a bs=8192 iodepth=4, then b and c bs=4096 iodepth=1; JSON has no global options
    expect(cl.jobs.map((j) => [j.name, rwBlockSize(j), j.iodepth, j.stonewall])).toEqual([
      ['a', 8192, 4, false],
      ['b', 4096, 1, true],
      ['c', 4096, 1, false],
    ]);
    expect(cl.globalGiven).toEqual({});
    const last = await parseWithFiles(['m1a.fio', 'm1c.fio'], {
      'm1a.fio': m1a,
      'm1c.fio': '[global]\nrw=read\n[d]\n',
    });
    expect(last.globalGiven).toEqual({ rw: 'read' });
  });

  it('shows the files as fio 3.33 --showcmd does, one line a file', async () => {
    const po = '[global]\nbs=4k\n[a]\nsize=1m\nfilename=/tmp/rf.dat\n[b]\nrw=read\n';
    const cl = await parseWithFiles(['--showcmd', '--bs=8k', 'po.fio', 'po.fio'], { 'po.fio': po });
    expect(cl.global.showcmd).toBe(true);
    expect(showCommandLines(cl.options, 2)).toBe(
      'fio --bs=8k --bs=4k --name=a --size=1m --filename=/tmp/rf.dat --name=b --rw=read \n' +
        'fio --bs=4k --name=a --size=1m --filename=/tmp/rf.dat --name=b --rw=read \n',
    );
    // the command line's own jobs are not shown
    expect(showCommandLines(parse('--showcmd', '--name=x', '--bs=8k').options, 0)).toBe('');
  });

  it("lists a global section's name= and names no job by it; skips command-line jobs --section does not name", async () => {
    const g = await parseWithFiles(['r.fio'], { 'r.fio': '[global]\nname=fio-rand-RW\n[file1]\n' });
    expect(g.jobs.map((j) => j.name)).toEqual(['file1']);
    expect(g.globalGiven).toEqual({ name: 'fio-rand-RW' });
    // fio --section=b --name=x --bs=8k s1.fio: x skipped, its options global, b runs with them
    const s = await parseWithFiles(['--section=b', '--name=x', '--bs=8k', 's1.fio'], {
      's1.fio': '[a]\n[b]\n',
    });
    expect(s.jobs.map((j) => [j.name, rwBlockSize(j)])).toEqual([['b', 8192]]);
    expect(usage(() => parse('--section=global', '--name=a'))).toEqual([
      "fio: can't use global as only section",
    ]);
  });

  it('fails an empty value in a file; takes no unit behind a leading blank, as parse.c', async () => {
    await expect(parseWithFiles(['d.fio'], { 'd.fio': '[a]\ndescription=\n' })).rejects.toThrow(
      'fio: failed parsing description=',
    );
    const cl = await parseWithFiles(['b.fio'], { 'b.fio': '[a]\nsize = 512k\nbs=\t8k\nruntime= 10ms\n' });
    // fio: size 512 (then "size too small"), bs 8, a runtime of 10 s
    expect([cl.jobs[0].size, rwBlockSize(cl.jobs[0]), cl.jobs[0].runtime]).toEqual([512, 8, 10_000]);
  });

  it("takes bc's ^ and leaves a long option as bc_calc() does", async () => {
    const opts = await jobFileOptions(
      ['k.fio'],
      source({ 'k.fio': `[j]\nbs=$pagesize*2^1\ndescription=${'x'.repeat(110)}-$ncpus\n` }),
    );
    expect(showcmd(opts)).toBe(`fio --name=j --bs=8192 --description=${'x'.repeat(110)}-2`);
    expect(bcInteger('2^3^2')).toBe(512n);
    expect(bcInteger('2^-1')).toBe(0n);
    expect(bcInteger('2^5000')).toBeNull();
  });
});

describe('job files against an attacker: every bound holds', () => {
  it('refuses a 65th job, numjobs clones counted, before making it', async () => {
    const many = '[global]\nsize=4k\n' + '[a]\n'.repeat(10_000);
    // get_new_job()'s failure alone: no section of the file is said to be dropped
    await expect(parseWithFiles(['m.fio'], { 'm.fio': many })).rejects.toMatchObject({
      lines: [
        'error: maximum number of jobs reached.',
        "fio: this fio runs 64 jobs at most in a guest, numjobs clones counted (the command line's and its job files' together)",
      ],
    });
    expect(usage(() => parse('--name=a', '--numjobs=64', '--name=b', '--numjobs=2'))[0]).toBe(
      'error: maximum number of jobs reached.',
    );
    expect(parse('--name=a', '--numjobs=63', '--name=b').jobs).toHaveLength(2);
  });

  it('counts a file in bytes, refuses one too big however it is read, and stops on a signal', async () => {
    // 600k two-byte characters: under the bound in characters, over it in bytes
    const wide = '[a]\nsize=64k\n#' + 'é'.repeat(600_000) + '\nrw=readwrite\n';
    expect((await refusal(jobFileOptions(['w.fio'], source({ 'w.fio': wide }))))[0]).toMatch(
      /job files of more than 1048576 bytes/,
    );
    const tooBig = { ...source({}), read: async () => ({ tooBig: true }) };
    expect((await refusal(jobFileOptions(['b.fio'], tooBig)))[0]).toMatch(/job files of more than/);
    const stopped = { ...source({}), read: async () => ({ aborted: true }) };
    await expect(jobFileOptions(['-'], stopped)).rejects.toMatchObject({ aborted: true, lines: [] });
    const noPipe = { ...source({}), read: async () => ({ reason: 'no standard input here' }) };
    expect(await refusal(jobFileOptions(['-'], noPipe))).toEqual([
      "fio: unable to open '-' job file (no standard input here)",
    ]);
  });

  it('looks beside the including file only for a name that is not there (an absolute one as dir//name)', async () => {
    const files = { 'd/main.fio': '[j]\ninclude /abs.fio\ninclude x.fio\n', 'x.fio': 'bs=8k\n' };
    expect(await refusal(jobFileOptions(['d/main.fio'], source(files)))).toEqual([
      "fio: unable to open 'd//abs.fio' job file",
      'Error 1 while parsing include file d//abs.fio',
    ]);
    // found as given: not looked for beside
    const found = await jobFileOptions(['d/main.fio'], source({ ...files, 'd//abs.fio': 'size=1m\n' }));
    expect(showcmd(found)).toBe('fio --name=j --size=1m --bs=8k');
  });

  it("keeps a line's ${VAR}s within OPT_LEN_MAX, as fio_option_dup_subs() does", async () => {
    const big = 'x'.repeat(120_000);
    const opts = await jobFileOptions(
      ['e.fio'],
      source(
        { 'e.fio': '[j]\ndescription=' + '${A}'.repeat(2000) + '${B}\n' },
        { env: (n) => (n === 'A' ? big : n === 'B' ? 'end' : undefined) },
      ),
    );
    // each 120 KB value is dropped (it does not fit), the short one kept
    expect(opts[1].value).toBe('end');
  });

  it('takes a section of 170,000 options without running out of stack', async () => {
    const opts = await jobFileOptions(['o.fio'], source({ 'o.fio': '[a]\n' + 'bs=4k\n'.repeat(170_000) }));
    expect(opts).toHaveLength(170_001);
  });

  it('refuses a bc result past 128 bits before computing it', () => {
    expect(bcInteger('((9^4096)^4096)^4096')).toBeNull();
    expect(bcInteger('(99^4096)^4096')).toBeNull();
    expect(bcInteger('2^127')).toBe(2n ** 127n);
    expect(bcInteger('2^128')).toBeNull();
    expect(bcInteger('2^64*2^64')).toBeNull();
    expect(bcInteger('('.repeat(100) + '1' + ')'.repeat(100))).toBeNull();
    expect(bcInteger('('.repeat(20) + '1' + ')'.repeat(20))).toBe(1n);
  });
});

describe('reporting groups and waits (init.c add_job())', () => {
  it('numbers groups at a stonewall or new_group after jobs, numjobs clones staying in theirs', () => {
    const cl = parse(
      '--name=a',
      '--new_group',
      '--name=b',
      '--numjobs=2',
      '--name=c',
      '--stonewall',
      '--name=d',
      '--wait_for_previous',
      '--name=e',
    );
    expect(cl.jobs.map((j) => [j.name, j.groupid])).toEqual([
      ['a', 0],
      ['b', 0],
      ['c', 1],
      ['d', 2],
      ['e', 2],
    ]);
    // fio's JSON lists a set-only option given bare by no value, and the alias by its option's name
    expect(cl.given[3]).toEqual({ name: 'd', stonewall: '' });
  });

  it("refuses a wait_for of itself, of no earlier job, or of a name two jobs have, in fio's words", () => {
    expect(usage(() => parse('--name=a', '--wait_for=a'))).toEqual([
      'a: a job cannot wait for itself (wait_for=a).',
    ]);
    expect(usage(() => parse('--name=a', '--wait_for=b', '--name=b'))).toEqual(['a: waitee job b unknown.']);
    expect(usage(() => parse('--name=b', '--name=b', '--name=c', '--wait_for=b'))).toEqual([
      'c: multiple waitees b found,',
      'please avoid duplicates when using wait_for option.',
    ]);
  });
});

describe('when jobs start (backend.c run_threads())', () => {
  /** Runs `jobs` with each job ending when the test says so; the order of starts and ends. */
  function harness(
    jobs: StartingJob[],
    signal = new AbortController().signal,
    terminated: (i: number) => boolean = () => false,
  ) {
    const events: string[] = [];
    const enders = new Map<number, () => void>();
    const skipped: number[] = [];
    const t0 = performance.now();
    const done = runThreads(
      jobs,
      () => performance.now() - t0,
      signal,
      (i) =>
        new Promise<void>((resolve) => {
          events.push(`start ${jobs[i].name}`);
          enders.set(i, () => {
            events.push(`end ${jobs[i].name}`);
            resolve();
          });
        }),
      (i) => skipped.push(i),
      terminated,
    );
    const end = async (i: number) => {
      await waitFor(() => enders.has(i));
      enders.get(i)!();
      enders.delete(i);
    };
    return { events, end, done, skipped, started: (i: number) => enders.has(i) };
  }
  const job = (name: string, more: Partial<StartingJob> = {}): StartingJob => ({
    name,
    startDelayMs: 0,
    stonewall: false,
    waitFor: '',
    ...more,
  });
  async function waitFor(cond: () => boolean): Promise<void> {
    for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 2));
    expect(cond()).toBe(true);
  }

  it('holds a stonewall, and every job after it, until the jobs before have ended', async () => {
    const h = harness([job('a'), job('b'), job('c', { stonewall: true }), job('d')]);
    await waitFor(() => h.started(1));
    expect(h.events).toEqual(['start a', 'start b']);
    await h.end(0);
    expect(h.started(2)).toBe(false);
    await h.end(1);
    await waitFor(() => h.started(3));
    expect(h.events).toEqual(['start a', 'start b', 'end a', 'end b', 'start c', 'start d']);
    await h.end(2);
    await h.end(3);
    await h.done;
  });

  it('starts a later job before an earlier one whose startdelay has not passed', async () => {
    const h = harness([job('slow', { startDelayMs: 60 }), job('next', { stonewall: true })]);
    // the stonewall looks only at jobs that started: none had
    await waitFor(() => h.started(1));
    expect(h.events).toEqual(['start next']);
    await waitFor(() => h.started(0));
    expect(h.events).toEqual(['start next', 'start slow']);
    await h.end(1);
    await h.end(0);
    await h.done;
  });

  it('waits only on earlier jobs of the name: two jobs of one name waiting on each other still run', async () => {
    // fio 3.36 waits for every job of the name, later ones too: this file never ends there
    const h = harness([job('a'), job('b', { waitFor: 'a' }), job('a', { waitFor: 'b' })]);
    await waitFor(() => h.started(0));
    await h.end(0);
    await waitFor(() => h.started(1));
    await h.end(1);
    await waitFor(() => h.started(2));
    await h.end(2);
    await h.done;
  });

  it('starts a wait_for job once every job of that name has ended, others meanwhile', async () => {
    const h = harness([job('w'), job('w'), job('x', { waitFor: 'w' }), job('y')]);
    await waitFor(() => h.started(3));
    expect(h.events).toEqual(['start w', 'start w', 'start y']);
    await h.end(0);
    expect(h.started(2)).toBe(false);
    await h.end(1);
    await waitFor(() => h.started(2));
    await h.end(2);
    await h.end(3);
    await h.done;
  });

  it("rejects with a job's failure, and starts nothing after it", async () => {
    const started: string[] = [];
    const run = runThreads(
      [job('a'), job('b', { stonewall: true })],
      () => 0,
      new AbortController().signal,
      async (i) => {
        started.push(['a', 'b'][i]);
        throw new Error('open failed');
      },
      () => {},
    );
    await expect(run).rejects.toThrow('open failed');
    expect(started).toEqual(['a']);
  });

  it('never starts the jobs a signal stops before they start', async () => {
    const stop = new AbortController();
    const h = harness(
      [job('a'), job('b', { stonewall: true }), job('c', { startDelayMs: 10_000 })],
      stop.signal,
    );
    await waitFor(() => h.started(0));
    stop.abort('SIGINT');
    await h.end(0);
    await h.done;
    expect(h.events).toEqual(['start a', 'end a']);
    expect(h.skipped.sort()).toEqual([1, 2]);
  });

  it('never starts a job an exitall terminated (td->terminate), and starts the ones after it', async () => {
    const gone = new Set<number>();
    const h = harness(
      [job('a'), job('b', { startDelayMs: 50 }), job('c', { stonewall: true })],
      undefined,
      (i) => gone.has(i),
    );
    await waitFor(() => h.started(0));
    gone.add(1);
    await h.end(0);
    await waitFor(() => h.started(2));
    await h.end(2);
    await h.done;
    expect(h.events).toEqual(['start a', 'end a', 'start c', 'end c']);
    expect(h.skipped).toEqual([1]);
  });
});
