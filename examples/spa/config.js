// Settings of the example SPA. Edit them here, or override issuer and client_id with query
// parameters for a quick try (http://127.0.0.1:5173/?client_id=...); docs/spa.md explains both.
export default {
  // tokend's issuer exactly as tokend reports it (TOKEND_ISSUER; default http:// + TOKEND_BIND).
  // The `iss` of the sign-in redirect is checked against it.
  issuer: 'http://127.0.0.1:8080',

  // The client_id printed by
  //   tokend client create my-spa --public --grant authorization_code --grant refresh_token \
  //     --redirect-uri http://127.0.0.1:5173/ --origin http://127.0.0.1:5173 --scope account \
  //     --refresh-cookie --json
  clientId: '',

  scope: 'account',

  // Where tokend sends the browser back to; it must be registered exactly (--redirect-uri).
  // Empty: this page's own address without query or fragment.
  redirectUri: '',
};
