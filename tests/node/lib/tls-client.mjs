// Runs in its own Node process so NODE_EXTRA_CA_CERTS (the test CA) is trusted from the start, as
// a real deployment's system trust store would be. Prints one JSON line with what happened.
import Pusher from 'pusher-js';
import PusherServer from 'pusher';

const [port, appId, key, secret] = process.argv.slice(2);
const fail = (e) => {
  console.log(JSON.stringify({ ok: false, error: String(e && e.message ? e.message : e) }));
  process.exit(1);
};
setTimeout(() => fail('timed out'), 10000).unref();

const client = new Pusher(key, {
  cluster: 'local', wsHost: '127.0.0.1', wsPort: Number(port), wssPort: Number(port),
  forceTLS: true, enabledTransports: ['ws'], disableStats: true,
});
client.connection.bind('connected', () => {
  const channel = client.subscribe('tls-news');
  channel.bind('pusher:subscription_succeeded', async () => {
    channel.bind('hello', async (data) => {
      try {
        const res = await sdk.get({ path: '/channels' });
        const channels = await res.json();
        console.log(JSON.stringify({ ok: true, data, socket_id: client.connection.socket_id, channels }));
        client.disconnect();
        process.exit(0);
      } catch (e) {
        fail(e);
      }
    });
    try {
      await sdk.trigger('tls-news', 'hello', { over: 'tls' });
    } catch (e) {
      fail(e);
    }
  });
});
client.connection.bind('error', (e) => fail(JSON.stringify(e)));
const sdk = new PusherServer({ appId, key, secret, host: '127.0.0.1', port, useTLS: true });
