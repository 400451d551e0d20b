// A small application back end, as a real app would run it: it signs channel
// subscriptions and user sign-ins with the official `pusher` server SDK.
//
// The tests steer it with extra form parameters, which pusher-js appends to the
// form body from `channelAuthorization.params` / `userAuthentication.params`:
//   user_id      the user to sign for (presence and sign-in)
//   user_info    JSON text of the user_info object
//   numeric_id   "1" to send user_id as a JSON number in presence channel_data
//   omit_user_id "1" to leave user_id out of presence channel_data
//   watchlist    comma-separated user ids for sign-in
//   mode         "wrong-secret": sign with a secret the server does not know
//                "wrong-key":    sign correctly but with another key in front
//                "deny":         answer 403 like an app refusing the user
import http from 'node:http';
import PusherServer from 'pusher';

export const MASTER_KEY_B64 = Buffer.from(
  Array.from({ length: 32 }, (_, i) => (i * 7 + 3) & 0xff),
).toString('base64');

export function sdkFor(server, app, extra = {}) {
  return new PusherServer({
    appId: String(app.id),
    key: app.key,
    secret: app.secret,
    host: '127.0.0.1',
    port: String(server.port),
    useTLS: false,
    timeout: 10000,
    encryptionMasterKeyBase64: MASTER_KEY_B64,
    ...extra,
  });
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => (body += c));
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

export async function startAuthServer(server, app) {
  const sdk = sdkFor(server, app);
  const wrongSdk = sdkFor(server, { ...app, secret: `${app.secret}-wrong` });
  const requests = [];

  const httpServer = http.createServer(async (req, res) => {
    try {
      const body = await readBody(req);
      const form = Object.fromEntries(new URLSearchParams(body));
      requests.push({ path: req.url, form });
      const mode = form.mode || '';
      if (mode === 'deny') {
        res.writeHead(403, { 'content-type': 'text/plain' });
        res.end('forbidden');
        return;
      }
      const signer = mode === 'wrong-secret' ? wrongSdk : sdk;
      const userInfo = form.user_info ? JSON.parse(form.user_info) : undefined;
      let reply;
      if (req.url.startsWith('/auth')) {
        const channel = form.channel_name;
        let presenceData;
        if (channel.startsWith('presence-') && form.no_channel_data !== '1') {
          presenceData = {};
          if (form.omit_user_id !== '1') {
            presenceData.user_id = form.numeric_id === '1' ? Number(form.user_id) : form.user_id;
          }
          if (userInfo !== undefined) presenceData.user_info = userInfo;
        }
        reply = signer.authorizeChannel(form.socket_id, channel, presenceData);
      } else if (req.url.startsWith('/user-auth')) {
        const userData = { id: form.user_id };
        if (userInfo !== undefined) userData.user_info = userInfo;
        if (form.watchlist) userData.watchlist = form.watchlist.split(',');
        reply = signer.authenticateUser(form.socket_id, userData);
      } else {
        res.writeHead(404);
        res.end();
        return;
      }
      if (mode === 'wrong-key') reply.auth = reply.auth.replace(/^[^:]*:/, 'some-other-key:');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(reply));
    } catch (e) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(e && e.stack ? e.stack : e));
    }
  });
  httpServer.keepAliveTimeout = 1000;
  await new Promise((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  const { port } = httpServer.address();
  return {
    sdk,
    requests,
    endpoint: `http://127.0.0.1:${port}/auth`,
    userEndpoint: `http://127.0.0.1:${port}/user-auth`,
    async stop() {
      httpServer.closeAllConnections?.();
      await new Promise((resolve) => httpServer.close(resolve));
    },
  };
}
