import net from 'node:net';

/**
 * A TCP port on 127.0.0.1 whose every connection is piped to the Unix socket `socket`: the suite's libvirtd
 * (which listens on a socket only) reached as a network host, `qemu+tcp://127.0.0.1:<port>/system`, the way
 * a pool admin may add one.
 */
export async function forwardTcpToUnix(socket: string): Promise<{ port: number; close(): Promise<void> }> {
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(socket);
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
