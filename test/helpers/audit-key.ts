/** A fixed Ed25519 private JWK for tests and tools that start the service in production mode. */
export const TEST_AUDIT_SIGNING_KEY = JSON.stringify({
  kty: 'OKP',
  crv: 'Ed25519',
  d: 'q0DcbPBHh_8g415KIbfhsco4MtksUYv4MCRHjLIekAo',
  x: 'VFyYG-mWThdBusOeMsPUrSaQNr3CAgiTsj3lk-nd6L4',
})
