"""Real-time security alerting over the audit stream (issue 20, item 4).

``rules`` (pure: audit records in, hits out), ``engine`` (pure: thresholds,
de-duplication and rate limiting with a JSON-serialisable state), ``cef`` (CEF
lines), ``delivery`` (the channels: e-mail, signed webhook, syslog/CEF) and
``follower`` (the supervised loop that reads the audit table by sequence with a
persisted cursor and hands alerts to delivery). Layer 2: imports core, policy
and audit only.
"""
