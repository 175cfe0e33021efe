"""Test support shipped with printgate: fakes beside the I/O interfaces and builders.

Used by the test suite and the benchmarks, never by production code (an
import-linter contract keeps it so). Each fake implements a protocol the
production code defines:

- ``audit.RecordingAuditSink``: an ``AuditSink`` keeping events in memory;
  ``audit.stored_records`` reads what the real ``AuditLog`` sealed;
- ``broker.PolicyBroker``: a ``SessionBroker`` on the real policy engine and the
  real store, without relay, proxy or agent;
- ``commands.RecordingCommandPort``: the ``CommandPort`` (``gateway.agent_commands``) of the
  broker and of the portal's ``AgentCommandSender``, recording what would be sent to agents;
- ``clock.FrozenClock``: a clock that stands still until moved (windows, back-offs);
  ``portal.Clock`` follows the wall clock with an offset;
- ``tenancy.Tenancy``: dealers, customers, sites, agents and devices added in
  dependency order;
- ``database``: migrated databases on SQLite or the local PostgreSQL;
- ``portal``: signing in to a portal like a browser (password, TOTP, CSRF).
"""
