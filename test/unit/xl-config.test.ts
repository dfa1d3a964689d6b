/**
 * The xl.cfg reader against libxlu's rules (tools/libs/util: libxlu_cfg_l.l's tokens, libxlu_cfg_y.y's
 * grammar, libxlu_cfg.c's xlu__cfg_set_store and xlu__cfgl_dequote). The expected values, and the
 * lines and tokens of the errors, are what libxlu gives for the same files, except: an error at a
 * newline is on that newline's line (libxlu says the line before); "end of file" for bison's $end;
 * "expecting" lists all that may come (bison's default reductions shorten some, to "expecting $end"
 * after a value or "expecting ']'" in a list); "backslash" for libxlu's "backlash" typo; and an
 * unterminated string says so (libxlu: "lexical error").
 */
import { describe, expect, it } from 'vitest';
import { parseXlConfig } from '../../src/cli/xl-config.ts';

const parse = (text: string) => parseXlConfig(text, 'g.cfg');
const error = (text: string) => {
  try {
    parse(text);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('parsed');
};

describe('settings given more than once (xlu__cfg_set_store)', () => {
  it('the last setting of a key wins, as lookups find the newest', () => {
    const c = parse('name = "a"\nmemory = 256\nname = "b"\nmemory = 512\n');
    expect(c.name).toBe('b');
    expect(c.settings.get('memory')).toBe('512');
    expect(parse('disk = [ "a" ]\nname = "g"\ndisk = [ "b" ]\n').disk).toEqual(['b']);
  });
  it('+= appends a string to a string and a list to a list, to the newest setting', () => {
    expect(parse('name = "web"\nname += "01"\n').name).toBe('web01');
    expect(parse('name = "a"\nname = "b"\nname += "c"; name += "d"\n').name).toBe('bcd');
    const c = parse('name = "g"\ndisk = [ "vdev=xvda" ]\ndisk += [\n  "vdev=xvdb",\n  "vdev=xvdc",\n]\n');
    expect(c.disk).toEqual(['vdev=xvda', 'vdev=xvdb', 'vdev=xvdc']);
    // numbers are strings to libxlu: += joins their text (xl then refuses += where it reads a number)
    expect(parse('name = "g"\nmemory = 5\nmemory += 12\n').settings.get('memory')).toBe('512');
  });
  it('+= with nothing set before is a plain setting', () => {
    expect(parse('name += "g"\ndisk += [ "vdev=xvdb" ]\n')).toMatchObject({ name: 'g', disk: ['vdev=xvdb'] });
  });
  it('+= of a list to a string, or a string to a list, is an error at the added value', () => {
    expect(error('name = "g"\ndisk = [ "a" ]\ndisk += "b"\n')).toBe(
      `EINVAL: g.cfg:3: config parsing error near \`"b"': can't add [list] to "string" or vice versa`,
    );
    expect(error('name = "g"\nname += [ "b",\n  "c" ]\n')).toBe(
      `EINVAL: g.cfg:3: config parsing error near \`]': can't add [list] to "string" or vice versa`,
    );
  });
});

describe('values (xl.cfg(5): strings, numbers, lists of values)', () => {
  it('lists may mix strings and numbers and nest, under a key pvblk does not use', () => {
    const c = parse(
      'name = "g"\ncpus = [ [ 0, "1" ], 2 ]\nx = [ 1, [ 2, [ 3, ], [] ], \'a\' ]\nvif = [ ]\nirqs = [ 0x1f ]\n',
    );
    expect(c.settings.get('cpus')).toEqual([['0', '1'], '2']);
    expect(c.settings.get('x')).toEqual(['1', ['2', ['3'], []], 'a']);
    expect(c.settings.get('vif')).toEqual([]);
    expect(c.settings.get('irqs')).toEqual(['0x1f']);
  });
  it('a number where a string is read is its text, as xl reads it', () => {
    expect(parse('name = 5\n').name).toBe('5');
    expect(parse('name = 0x1f\n').name).toBe('0x1f');
    // libxlu's NUMBER is a digit then hex digits and x: `12ab` is one token, `5g` two
    expect(parse('name = 12ab\n').name).toBe('12ab');
    expect(error('name = "g"\nmemory = 5g\n')).toMatch(
      /^EINVAL: g\.cfg:2: config parsing error near `g': syntax error, unexpected IDENT/,
    );
  });
  it('a key pvblk uses with the wrong type is an error naming the key', () => {
    expect(error('name = [ "g" ]\n')).toBe(
      "EINVAL: g.cfg:1: parameter `name' is a list but should be a single value",
    );
    expect(error('name = "g"\ndisk = "vdev=xvdb, target=/dev/sdh"\n')).toBe(
      "EINVAL: g.cfg:2: parameter `disk' is a single value but should be a list",
    );
    expect(error('name = "g"\ndisk = [ "vdev=xvdb, target=/dev/sdh",\n  [ "vdev=xvdc" ] ]\n')).toBe(
      "EINVAL: g.cfg:2: parameter `disk': item 2 is a list but should be a string (a disk specification)",
    );
  });
  it('lists: newlines and comments after [, values and commas; a trailing comma; nothing else', () => {
    expect(parse('name = "g"\ndisk = [\n  # first\n  "a"\n  ,\n\n  "b", # second\n]\n').disk).toEqual([
      'a',
      'b',
    ]);
    expect(error('name = "g"\ndisk = [ , ]\n')).toBe(
      "EINVAL: g.cfg:2: config parsing error near `,': syntax error, unexpected ',', expecting STRING or NUMBER or '[' or ']'",
    );
    expect(error('name = "g"\ndisk = [ "a" "b" ]\n')).toBe(
      `EINVAL: g.cfg:2: config parsing error near \`"b"': syntax error, unexpected STRING, expecting ',' or ']'`,
    );
    expect(error('name = "g"\ndisk = [ "a",\n')).toBe(
      "EINVAL: g.cfg:2: config parsing error near `end of file': syntax error, unexpected end of file, expecting STRING or NUMBER or '[' or ']'",
    );
  });
  it("nesting is bounded as xl's parser stack bounds it (4996 levels), without overflowing ours", () => {
    const nested = (n: number) => `name = "g"\nx = ${'['.repeat(n)}${']'.repeat(n)}\n`;
    expect(parse(nested(4996)).settings.get('x')).toBeInstanceOf(Array);
    expect(error(nested(4997))).toBe(
      "EINVAL: g.cfg:2: config parsing error near `[': memory exhausted (lists nested too deeply)",
    );
    expect(error(nested(100_000))).toMatch(/memory exhausted/);
  });
});

describe('string escapes (xlu__cfgl_dequote)', () => {
  it('single and double quotes take the same escapes', () => {
    expect(parse(`name = 'a\\tb\\n'\n`).name).toBe('a\tb\n');
    expect(parse(`name = "a\\tb\\n"\n`).name).toBe('a\tb\n');
    expect(parse(`name = 'it\\'s'\n`).name).toBe("it's");
    expect(parse(`name = "say \\"hi\\" \\'x\\' \\\\"\n`).name).toBe(`say "hi" 'x' \\`);
    expect(parse(`name = "\\a\\b\\f\\n\\r\\t\\v"\n`).name).toBe('\x07\b\f\n\r\t\v');
    expect(parse(`name = 'a"b'; disk = [ "c'd" ]\n`)).toMatchObject({ name: 'a"b', disk: ["c'd"] });
  });
  it('\\x always fails in libxlu (it skips a character and wants more than two hex digits of two)', () => {
    expect(error(`name = "g"\nx = "\\x41"\n`)).toBe(
      `EINVAL: g.cfg:2: config parsing error near \`"\\x41"': invalid digit after backslash hexnumerical character escape in quoted string`,
    );
    expect(error(`name = '\\x4'\n`)).toMatch(/hexnumerical character escape/);
  });
  it('an octal escape takes two or three more characters as strtoul reads them, and gives no character', () => {
    // libxlu reads the digits but never stores the number: "A\101B" is "AB" to xl
    expect(parse(`name = "A\\101B"\n`).name).toBe('AB');
    expect(parse(`name = "a\\1234b"\n`).name).toBe('ab');
    expect(parse(`name = "a\\12345"\n`).name).toBe('a5');
    expect(parse(`name = "a\\1 2b"\n`).name).toBe('ab');
    expect(error(`name = "g"\nx = "\\12"\n`)).toBe(
      `EINVAL: g.cfg:2: config parsing error near \`"\\12"': invalid digit after backslash octalnumerical character escape in quoted string`,
    );
    expect(error(`name = "\\0"\n`)).toMatch(/octalnumerical character escape/);
  });
  it('any other character after a backslash is an error naming the line', () => {
    expect(error(`name = "g"\n\nx = "a\\qb"\n`)).toBe(
      `EINVAL: g.cfg:3: config parsing error near \`"a\\qb"': invalid character after backslash in quoted string`,
    );
    expect(error(`name = '\\8'\n`)).toMatch(/^EINVAL: g\.cfg:1: .*invalid character after backslash/);
    expect(error(`name = "a\\ b"\n`)).toMatch(/invalid character after backslash/);
  });
  it('a backslash cannot escape a newline', () => {
    expect(error(`name = "a\\\n"\n`)).toMatch(
      /^EINVAL: g\.cfg:1: config parsing error near `"a\\': unterminated string/,
    );
  });
});

describe('keys (libxlu_cfg_l.l: [a-z][._0-9a-z]*)', () => {
  it('lower-case letters, digits, dots and underscores', () => {
    const c = parse('name = "g"\non_poweroff = "destroy"\nvnc.listen = "0.0.0.0"\nx.y_2 = 1\n');
    expect(c.settings.get('on_poweroff')).toBe('destroy');
    expect(c.settings.get('vnc.listen')).toBe('0.0.0.0');
    expect(c.settings.get('x.y_2')).toBe('1');
  });
  it('other characters are a lexical error naming the line and the word', () => {
    expect(error('name = "g"\nName = "h"\n')).toBe(
      "EINVAL: g.cfg:2: config parsing error near `Name': lexical error",
    );
    expect(error('_x = 1\nname = "g"\n')).toBe(
      "EINVAL: g.cfg:1: config parsing error near `_x': lexical error",
    );
    expect(error('name = "g"\nfoo-bar = 1\n')).toBe(
      "EINVAL: g.cfg:2: config parsing error near `-bar': lexical error",
    );
    expect(error('name = "g"\nx = 1 + 2\n')).toBe(
      "EINVAL: g.cfg:2: config parsing error near `+': lexical error",
    );
  });
  it('a statement is a key, = or +=, and a value, then a newline, ; or the end of the file', () => {
    expect(parse('name = "g"; memory = 1;;\n\nvcpus = 2').settings.get('vcpus')).toBe('2');
    expect(error('name = "g"\nx\n')).toBe(
      "EINVAL: g.cfg:2: config parsing error near <newline>: syntax error, unexpected NEWLINE, expecting += or '='",
    );
    expect(error('name = "g"\nx = y\n')).toBe(
      "EINVAL: g.cfg:2: config parsing error near `y': syntax error, unexpected IDENT, expecting STRING or NUMBER or '['",
    );
    expect(error('name = "g" "h"\n')).toBe(
      `EINVAL: g.cfg:1: config parsing error near \`"h"': syntax error, unexpected STRING, expecting NEWLINE or ';' or end of file`,
    );
    expect(error('name = "g"\n= 3\n')).toBe(
      "EINVAL: g.cfg:2: config parsing error near `=': syntax error, unexpected '=', expecting end of file or IDENT or NEWLINE or ';'",
    );
  });
});
