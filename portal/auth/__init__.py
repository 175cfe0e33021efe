"""Portal identity: passwords, TOTP, browser sessions, CSRF, SAML, OIDC, API tokens."""
