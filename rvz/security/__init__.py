"""Who may talk to an rvz deployment: CURVE keys for the streams (``keys``, ``zap``, ``curve``, ``peers``),
TLS for gRPC (``tls``), the Admin API's credentials (``admin_auth``) and its audit log (``audit``).
The threat model and the key layout are in docs/security.md."""
