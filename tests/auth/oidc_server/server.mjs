// A real OpenID Connect provider (npm oidc-provider v9) on loopback, for the auth tests.
// Usage: node server.mjs CONFIG.json   (prints "listening http://127.0.0.1:PORT" once ready)
// CONFIG: {"clients": [...oidc-provider client metadata...],
//          "accounts": {"alice": {claims...}},  "access_token_ttl": 8}
// Login with devInteractions: any password, the login names an account in "accounts".
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: config.clients,
    cookies: { keys: ['deepvre-tests-only'] },
    features: { devInteractions: { enabled: true }, revocation: { enabled: true } },
    // Scopes the hub asks for, and which claims each releases at userinfo.
    claims: {
      openid: ['sub'],
      profile: ['preferred_username', 'name'],
      email: ['email'],
      groups: ['groups'],
      eduperson_entitlement: ['eduperson_entitlement'],
    },
    scopes: ['openid', 'offline_access', 'profile', 'email', 'groups', 'eduperson_entitlement'],
    // Short-lived access tokens, so the tests can watch the hub refresh them.
    ttl: { AccessToken: config.access_token_ttl ?? 3600 },
    clockTolerance: 0, // the default 15 s would keep expired tokens usable
    async findAccount(ctx, id) {
      const claims = config.accounts[id];
      if (!claims) return undefined;
      return { accountId: id, async claims() { return { sub: id, ...claims }; } };
    },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  // The tests read this log to see which grants the hub used.
  provider.on('grant.success', (ctx) => console.log(`grant.success ${ctx.oidc.params.grant_type} ${ctx.oidc.client.clientId}`));
  server.on('request', provider.callback());
  console.log(`listening ${issuer}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
