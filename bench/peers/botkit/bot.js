// The bench's Botkit peer: the same 3-step button dialog as Causette's bench tenant, through
// botbuilder-adapter-web in webhook mode (replies in the HTTP response), with the same
// HMAC-SHA256 signature check on the raw body and conversation state in Redis.
// Botkit ships no Redis storage, so RedisStorage below is ours: one MGET to read, SETs to write.
'use strict';
const crypto = require('crypto');
const express = require('express');
const http = require('http');
const { createClient } = require('redis');
const { Botkit, BotkitConversation } = require('botkit');
const { WebAdapter } = require('botbuilder-adapter-web');

const PORT = parseInt(process.env.PORT || '3000', 10);
const SECRET = process.env.SECRET || 'bench-webhook-secret';
const TTL = 7 * 24 * 3600;
const dialog = JSON.parse(process.env.DIALOG);   // {ask1, ask2, done} from bench/common.py

class RedisStorage {
  constructor(client, prefix) { this.client = client; this.prefix = prefix; }
  async read(keys) {
    const out = {};
    if (!keys.length) return out;
    const vals = await this.client.mGet(keys.map((k) => this.prefix + k));
    keys.forEach((k, i) => { if (vals[i]) out[k] = JSON.parse(vals[i]); });
    return out;
  }
  async write(changes) {
    // Last write wins, like most community storages: the bench sends one message per user at a time.
    await Promise.all(Object.keys(changes).map((k) =>
      this.client.set(this.prefix + k, JSON.stringify(changes[k]), { EX: TTL })));
  }
  async delete(keys) {
    if (keys.length) await this.client.del(keys.map((k) => this.prefix + k));
  }
}

function verify(req, res, buf) {
  const given = (req.headers['x-causette-signature'] || '').replace(/^sha256=/, '');
  const want = crypto.createHmac('sha256', SECRET).update(buf).digest('hex');
  req.signatureOk = given.length === want.length &&
    crypto.timingSafeEqual(Buffer.from(given), Buffer.from(want));
}

async function main() {
  const client = createClient({ url: process.env.REDIS_URL });
  client.on('error', (e) => console.error('redis', e.message));
  await client.connect();

  const app = express();
  app.use(express.json({ limit: '100kb', verify }));
  app.use((req, res, next) => {
    if (req.method === 'POST' && !req.signatureOk) return res.status(401).send('invalid signature');
    const b = req.body || {};
    if (!b.id || !b.from) return res.status(400).send('id and from required');
    // The web adapter's webhook shape: {type, user, text}; a button press answers its payload.
    req.body = { type: 'message', user: b.from, text: b.payload || b.text || '', channelData: b };
    next();
  });
  const server = http.createServer(app);

  const adapter = new WebAdapter({ noServer: true });   // webhook mode only: no websocket
  const controller = new Botkit({
    adapter, webserver: app, webhook_uri: '/t/bench/channels/hook',
    storage: new RedisStorage(client, 'botkit:'), disable_console: true,
  });
  const qr = (choices) => choices.map((c) => ({ title: c.title, payload: c.id }));
  const convo = new BotkitConversation('soldes', controller);
  convo.ask({ text: dialog.ask1.text, quick_replies: qr(dialog.ask1.choices) },
    [{ default: true, handler: async () => {} }], { key: 'category' });
  convo.ask({ text: dialog.ask2.text, quick_replies: qr(dialog.ask2.choices) },
    [{ default: true, handler: async () => {} }], { key: 'size' });
  convo.say(dialog.done.text);
  controller.addDialog(convo);

  controller.interrupts('^bonjour$', 'message', async (bot) => {
    await bot.cancelAllDialogs();
    await bot.beginDialog('soldes');
  });
  controller.on('message', async (bot) => { await bot.beginDialog('soldes'); });
  controller.ready(() => {
    server.listen(PORT, '127.0.0.1', () => console.log(`botkit peer on ${PORT}`));
  });
}

main().catch((e) => { console.error(e); process.exit(1); });
