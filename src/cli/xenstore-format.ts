/**
 * The output of the xenstore-* tools (tools/xs-clients/xenstore_client.c): values sanitised as
 * sanitise_value() does (printable ASCII as is; \t \n \r \\ escaped; other bytes as \ooo below 010,
 * \xNN otherwise), escapes undone for xenstore-write as unsanitise_value() does, and xenstore-ls's
 * tree — one space of indent per level, names and values cut to the width, ` = "value"`, `:` and a
 * line break for a node whose value cannot be read (the C code prints ":\n" and then its own newline),
 * `-f` full paths, `-p` permissions after a dotted pad.
 */

/** sanitise_value() over the value's bytes. */
export function sanitiseValue(value: string): string {
  let out = '';
  for (const c of Buffer.from(value, 'utf8')) {
    if (c >= 0x20 && c <= 0x7e && c !== 0x5c) {
      out += String.fromCharCode(c);
      continue;
    }
    out += '\\';
    if (c === 0x09) out += 't';
    else if (c === 0x0a) out += 'n';
    else if (c === 0x0d) out += 'r';
    else if (c === 0x5c) out += '\\';
    else if (c < 0o10) out += c.toString(8).padStart(3, '0');
    else out += 'x' + c.toString(16).padStart(2, '0');
  }
  return out;
}

/** unsanitise_value(): \t \n \r \\ \xNN \ooo back to bytes. */
export function unsanitiseValue(spec: string): Buffer {
  const src = Buffer.from(spec, 'utf8');
  const out: number[] = [];
  for (let i = 0; i < src.length;) {
    let c = src[i++];
    if (c === 0x5c) {
      const e = src[i++];
      if (e === undefined) {
        // a trailing backslash stays (the C loop reads the terminating NUL)
        i--;
      } else if (e === 0x74) c = 0x09;
      else if (e === 0x6e) c = 0x0a;
      else if (e === 0x72) c = 0x0d;
      else if (e === 0x5c) c = 0x5c;
      else if (e === 0x78) {
        const m = /^[0-9a-fA-F]{1,2}/.exec(src.subarray(i, i + 2).toString('latin1'));
        c = m ? parseInt(m[0], 16) : 0x78;
        if (m) i += m[0].length;
      } else if (e >= 0x30 && e <= 0x37) {
        const m = /^[0-7]{1,3}/.exec(src.subarray(i - 1, i + 2).toString('latin1'))!;
        c = parseInt(m[0], 8) & 0xff;
        i += m[0].length - 1;
      } else c = e;
    }
    out.push(c);
  }
  return Buffer.from(out);
}

export interface LsNodeView {
  path: string;
  name: string;
  depth: number;
  value: string | null;
  perms?: string[] | null;
}

export interface LsOptions {
  /** -f: full paths, no width limit, no padding. */
  flat: boolean;
  /** -p: permissions. */
  perms: boolean;
  /** The terminal's columns - 2 when stdout is a terminal, else 80 (max_width). */
  maxWidth: number;
}

const TAG_LEN = ' = "..."'.length;
const DESIRED_WIDTH = 60;

/** do_ls(): the lines (without newlines) and the warnings it writes to stderr. */
export function formatLs(nodes: LsNodeView[], o: LsOptions): { lines: string[]; warnings: string[] } {
  const maxWidth = o.flat ? Math.floor(0x7fffffff / 2) : o.maxWidth;
  const desired = o.flat ? 0 : DESIRED_WIDTH;
  const lines: string[] = [];
  const warnings: string[] = [];
  for (const n of nodes) {
    let line = '';
    let width = 0;
    if (o.flat) line = n.path;
    else {
      line = ' '.repeat(n.depth);
      width = n.depth;
      const shown = n.name.slice(0, Math.max(0, maxWidth - TAG_LEN - width));
      line += shown;
      width += shown.length;
    }
    if (n.value === null) {
      // printf(":\n"): the permissions (if any) and the line's own newline follow on a line of their own
      lines.push(line + ':');
      line = '';
    } else {
      const v = sanitiseValue(n.value);
      const len = Buffer.byteLength(n.value, 'utf8');
      if (maxWidth < width + len + TAG_LEN) {
        line += ` = "${v.slice(0, Math.max(0, maxWidth - TAG_LEN - width))}\\..."`;
      } else {
        const part = ` = "${v}"`;
        line += part;
        width += part.length;
        if (o.perms) {
          line += ' ';
          for (width++; width < Math.min(desired, maxWidth); width++) line += width & 1 ? '.' : ' ';
        }
      }
    }
    if (o.perms) {
      if (!n.perms) warnings.push(`\ncould not access permissions for ${n.name}`);
      else line += `  (${n.perms.join(',')})`;
    }
    lines.push(line);
  }
  return { lines, warnings };
}
