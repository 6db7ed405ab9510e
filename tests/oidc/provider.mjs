// A real OpenID Connect provider for the dashboard login tests (panva/node-oidc-provider), on loopback.
// Usage: node provider.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI
// Any login name works with any password (the provider's development login pages); an account whose
// name starts with "admin" gets taskservice_role=admin, "nobody" gets no role claim, others operator.
import Provider from "oidc-provider";

const [port, clientId, clientSecret, redirectUri] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;

function role(id) {
  if (id.startsWith("admin")) return "admin";
  if (id.startsWith("nobody")) return undefined;
  return "operator";
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ["authorization_code"],
    response_types: ["code"],
  }],
  pkce: { required: () => true },
  claims: { openid: ["sub"], email: ["email"], profile: ["taskservice_role"] },
  conformIdTokenClaims: false, // the claims in the ID token itself, not only at the userinfo endpoint
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, email: `${id}@example.com`, taskservice_role: role(id) }),
  }),
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ["test-only-cookie-key"] },
  jwks: undefined,
});
provider.proxy = false;
provider.listen(Number(port), "127.0.0.1", () => console.log(`ready ${issuer}`));
