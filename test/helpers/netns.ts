import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';

/**
 * A network namespace for one fleet host, joined to the test's own namespace by a veth pair,
 * and a TCP relay in the test's namespace from the veth address to the cluster (which listens on
 * 127.0.0.1 only). `cut` takes the host side of the veth down: packets stop, nothing is reset,
 * as when a host is partitioned; `restore` brings it back. Needs root and `ip` (iproute2).
 */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'skipped: network namespaces need root';
  const found = spawnSync('ip', ['-V'], { encoding: 'utf8' });
  if (found.error || found.status !== 0) return 'skipped: the ip command (iproute2) is missing';
  return undefined;
}

function ip(args: string[]): void {
  const result = spawnSync('ip', args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`ip ${args.join(' ')} failed: ${result.stderr || result.error?.message}`);
}

/**
 * A 10.213.<n>.0/30 that no interface of this namespace uses: test runs of other checkouts on
 * this machine make namespaces too, and two veths with one address would route the relay's
 * answers to the wrong namespace.
 */
function freeSubnet(): number {
  const listed = spawnSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8' }).stdout ?? '';
  const used = new Set([...listed.matchAll(/\binet 10\.213\.(\d+)\./g)].map((match) => Number(match[1])));
  const free = Array.from({ length: 250 }, (_, i) => i + 1).filter((n) => !used.has(n));
  if (free.length === 0) throw new Error('no free 10.213.<n>.0/30 subnet for a test network namespace');
  return free[crypto.randomBytes(1)[0]! % free.length]!;
}

export interface Netns {
  name: string;
  /** The address of the test's side, which the relay listens on. */
  gateway: string;
  /** argv prefix that runs a command inside the namespace. */
  exec: string[];
  relayPort: number;
  cut: () => void;
  restore: () => void;
  destroy: () => Promise<void>;
}

export async function makeNetns(targetPort: number): Promise<Netns> {
  const tag = crypto.randomBytes(3).toString('hex');
  const name = `aa-${tag}`;
  const outside = `aah${tag}`;
  const inside = `aan${tag}`;
  const subnet = freeSubnet();
  const gateway = `10.213.${subnet}.1`;
  ip(['netns', 'add', name]);
  try {
    ip(['link', 'add', outside, 'type', 'veth', 'peer', 'name', inside]);
    ip(['link', 'set', inside, 'netns', name]);
    ip(['addr', 'add', `${gateway}/30`, 'dev', outside]);
    ip(['link', 'set', outside, 'up']);
    ip(['netns', 'exec', name, 'ip', 'addr', 'add', `10.213.${subnet}.2/30`, 'dev', inside]);
    ip(['netns', 'exec', name, 'ip', 'link', 'set', inside, 'up']);
    ip(['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up']);
  } catch (error) {
    spawnSync('ip', ['netns', 'del', name]);
    spawnSync('ip', ['link', 'del', outside]);
    throw error;
  }
  const sockets = new Set<net.Socket>();
  const relay = net.createServer((client) => {
    const server = net.connect(targetPort, '127.0.0.1');
    for (const socket of [client, server]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    }
    client.pipe(server).pipe(client);
    client.on('close', () => server.destroy());
    server.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(0, gateway, resolve));
  const relayPort = (relay.address() as net.AddressInfo).port;
  return {
    name,
    gateway,
    relayPort,
    exec: ['ip', 'netns', 'exec', name],
    cut: () => ip(['link', 'set', outside, 'down']),
    restore: () => ip(['link', 'set', outside, 'up']),
    destroy: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => relay.close(resolve));
      spawnSync('ip', ['netns', 'del', name]);
      spawnSync('ip', ['link', 'del', outside]);
    },
  };
}

/** A pgpass file for the relay's address (the cluster's file names 127.0.0.1). */
export function relayPgpass(file: string, gateway: string, port: number, role: string, password: string): string {
  fs.writeFileSync(file, `${gateway}:${port}:*:${role}:${password}\n`, { mode: 0o600 });
  return file;
}
