"""Outbound integrations (layer 2, beside ``audit/``): the transports that tell the outside
world what happened — signed webhooks, e-mail over SMTP, syslog (RFC 5424, TCP/TLS) with CEF
payloads — and the dispatcher that delivers the transactional outbox to tenants' endpoints.

Imports only the core (``printgate``) and ``policy``; docs/integrations.md.
"""
