// A TCP proxy that can cut the line the way a dead network does: sockets destroyed, no WebSocket
// close frame. Only node: modules, so sinew-spine's tests use it too.
import net from 'node:net';

/**
 * A proxy to `port` (retarget() points it elsewhere, for a server started again). cut() destroys every open connection (no close frame); until restore(), new
 * connections wait unanswered (like packets into a dead network), then go through.
 */
export async function startProxy(port) {
  const pairs = new Set();
  let waiting = [];
  let offline = false;
  let connections = 0;
  let target = port;
  const server = net.createServer((client) => {
    if (offline) {
      client.on('error', () => {});
      waiting.push(client);
      return;
    }
    forward(client);
  });
  function forward(client) {
    if (client.destroyed) return;
    connections += 1;
    const upstream = net.connect(target, '127.0.0.1');
    const pair = { client, upstream };
    pairs.add(pair);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  }
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    /** How many connections were let through so far. */
    get connections() {
      return connections;
    },
    cut() {
      offline = true;
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
    },
    retarget(newPort) {
      target = newPort;
    },
    restore() {
      offline = false;
      const queued = waiting;
      waiting = [];
      for (const client of queued) forward(client);
    },
    close() {
      this.cut();
      for (const client of waiting) client.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
