/**
 * For tests: a UNIX-socket proxy in front of a real libvirtd socket. It records every packet each way (decoded
 * with this folder's framing), and can freeze (a host that stops answering), cut every connection (a daemon
 * restart, a broken network), or put bytes of the test's choosing in front of the client (hostile input).
 */
import { rm } from 'node:fs/promises';
import net from 'node:net';
import { type Header, PacketDecoder } from './packet.js';

export interface RecordedPacket {
  from: 'client' | 'server';
  header: Header;
  body: Buffer;
}

export interface RecordingProxy {
  path: string;
  packets: RecordedPacket[];
  /** Frozen: nothing is forwarded either way (bytes are dropped), connections stay open. */
  freeze(frozen: boolean): void;
  /** Destroys every open connection (new ones are still accepted). */
  cut(): void;
  /** Sends raw bytes to every connected client. */
  injectToClients(bytes: Uint8Array): void;
  connections(): number;
  close(): Promise<void>;
}

export async function startRecordingProxy(path: string, upstream: string): Promise<RecordingProxy> {
  await rm(path, { force: true });
  const packets: RecordedPacket[] = [];
  const pairs = new Set<{ client: net.Socket; server: net.Socket }>();
  let frozen = false;
  const server = net.createServer((client) => {
    const upstreamSock = net.createConnection({ path: upstream });
    const pair = { client, server: upstreamSock };
    pairs.add(pair);
    const record = (from: 'client' | 'server') => {
      const decoder = new PacketDecoder();
      return (chunk: Buffer) => {
        try {
          for (const p of decoder.push(chunk))
            packets.push({ from, header: p.header, body: Buffer.from(p.body) });
        } catch {
          // Bytes the test injected on purpose may not frame; recording is best effort.
        }
      };
    };
    const fromClient = record('client');
    const fromServer = record('server');
    client.on('data', (chunk) => {
      if (frozen) return;
      fromClient(chunk);
      upstreamSock.write(chunk);
    });
    upstreamSock.on('data', (chunk) => {
      if (frozen) return;
      fromServer(chunk);
      client.write(chunk);
    });
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstreamSock.destroy();
    };
    client.on('close', end);
    upstreamSock.on('close', end);
    client.on('error', end);
    upstreamSock.on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const cut = () => {
    for (const p of pairs) {
      p.client.destroy();
      p.server.destroy();
    }
    pairs.clear();
  };
  return {
    path,
    packets,
    freeze(f) {
      frozen = f;
    },
    cut,
    injectToClients(bytes) {
      for (const p of pairs) p.client.write(bytes);
    },
    connections: () => pairs.size,
    async close() {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
