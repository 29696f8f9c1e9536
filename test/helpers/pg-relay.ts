import fs from 'node:fs';
import net from 'node:net';

/**
 * A TCP relay in front of the test cluster (on 127.0.0.1), for a fault at one precise point of
 * a connection's life, which a real server cannot be made to show on cue. Everything else
 * passes through unchanged (the clients here speak plain TCP: no sslmode in their URLs).
 *  - 'hold-listen': what a connection sends from its first LISTEN on is kept until `release`:
 *    a LISTEN still in flight, for as long as the test likes.
 *  - 'ignore-goodbye': a connection that says goodbye (Terminate) gets no answer and is never
 *    hung up on, as by a server that stopped answering (paused, cut off).
 */
export type RelayFault = 'hold-listen' | 'ignore-goodbye';

export interface PgRelay {
  port: number;
  /** Resolves once a connection's LISTEN is held ('hold-listen'). */
  listenHeld: Promise<void>;
  /** Sends on what was held, and holds nothing more. */
  release: () => void;
  close: () => Promise<void>;
}

/** The frontend's Terminate message: 'X' and its length, 4. */
const TERMINATE = Buffer.from([0x58, 0, 0, 0, 4]);

interface Hold {
  fault: RelayFault;
  held: () => void;
  releases: Array<() => void>;
  released: boolean;
}

function relayConnection(client: net.Socket, targetPort: number, hold: Hold, sockets: Set<net.Socket>): void {
  const server = net.connect(targetPort, '127.0.0.1');
  for (const socket of [client, server]) {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  }
  let kept: Buffer[] | undefined;
  let dead = false;
  client.on('data', (chunk: Buffer) => {
    if (dead) return;
    if (hold.fault === 'ignore-goodbye' && chunk.subarray(-TERMINATE.length).equals(TERMINATE)) {
      dead = true;
      return;
    }
    if (kept) return void kept.push(chunk);
    if (hold.fault === 'hold-listen' && !hold.released && chunk.includes('LISTEN ')) {
      kept = [chunk];
      hold.releases.push(() => {
        for (const piece of kept ?? []) server.write(piece);
        kept = undefined;
      });
      return hold.held();
    }
    server.write(chunk);
  });
  server.on('data', (chunk: Buffer) => {
    if (!dead) client.write(chunk);
  });
  client.on('end', () => {
    if (!dead) server.end();
  });
  client.on('close', () => server.destroy());
  server.on('close', () => {
    if (!dead) client.destroy();
  });
}

export async function startRelay(targetPort: number, fault: RelayFault): Promise<PgRelay> {
  const sockets = new Set<net.Socket>();
  let held: () => void = () => undefined;
  const listenHeld = new Promise<void>((resolve) => (held = resolve));
  const hold: Hold = { fault, held, releases: [], released: false };
  // half-open allowed: a client's FIN is passed on (or ignored) here, not answered by Node
  const relay = net.createServer({ allowHalfOpen: true }, (client) => relayConnection(client, targetPort, hold, sockets));
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  return {
    port: (relay.address() as net.AddressInfo).port,
    listenHeld,
    release: () => {
      hold.released = true;
      for (const release of hold.releases.splice(0)) release();
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => relay.close(resolve));
    },
  };
}

/** A pgpass file for the relay's port (the cluster's own file names the cluster's port). */
export function relayPgpass(file: string, port: number, role: string, password: string): string {
  fs.writeFileSync(file, `127.0.0.1:${port}:*:${role}:${password}\n`, { mode: 0o600 });
  return file;
}
