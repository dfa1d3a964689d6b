import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { operatorCall } from '../../src/cli/xl-access.ts';

const servers: Server[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

/** A host API that answers every request with `answer`'s bytes, as they are. */
async function host(answer: (s: Socket) => void): Promise<string> {
  const server = createServer((s) => {
    sockets.push(s);
    s.once('data', () => answer(s));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

const call = (api: string) =>
  operatorCall({ api, token: 't', hypervisor: null, runDir: '' }, 'GET', '/guests');

describe("xl's calls to the host API: what went wrong, named", () => {
  it('an answer that is not HTTP is a protocol error, not a host that does not answer', async () => {
    const api = await host((s) => s.end('garbage\r\n\r\n'));
    await expect(call(api)).rejects.toMatchObject({
      code: 'EPROTO',
      message: expect.stringMatching(
        new RegExp(
          `^EPROTO: the host API at ${api.replace(/\./g, '\\.')} gave an answer this command cannot read \\(HPE_`,
        ),
      ),
    });
  });

  it('a socket closed unanswered is ECONNRESET, said at once', async () => {
    const api = await host((s) => s.destroy());
    await expect(call(api)).rejects.toMatchObject({
      code: 'ECONNREFUSED',
      message: `ECONNREFUSED: the host API at ${api} does not answer (ECONNRESET): is the stack still running?`,
    });
  });

  it('reads a JSON answer', async () => {
    const body = JSON.stringify([{ domid: 1 }]);
    const api = await host((s) =>
      s.end(
        `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
      ),
    );
    expect(await call(api)).toEqual({ status: 200, body: [{ domid: 1 }] });
  });
});
