"""Test support shipped with printgate: fakes beside the I/O interfaces and builders.

Used by the test suite and the benchmarks, never by production code (an
import-linter contract keeps it so). Each fake implements a protocol the
production code defines:

- ``audit.RecordingAuditSink``: an ``AuditSink`` keeping events in memory;
  ``audit.stored_records`` reads what the real ``AuditLog`` sealed;
- ``broker.PolicyBroker``: a ``SessionBroker`` on the real policy engine and the
  real store, without relay, proxy or agent;
- ``commands.RecordingCommandPort``: the broker's ``CommandPort``, recording
  what would be sent to agents;
- ``tenancy.Tenancy``: dealers, customers, sites, agents and devices added in
  dependency order;
- ``database``: migrated databases on SQLite or the local PostgreSQL;
- ``portal``: signing in to a portal like a browser (password, TOTP, CSRF).
"""
