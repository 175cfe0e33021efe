"""Fleet monitoring in the cloud (layer 2, beside ``audit``: imports core and policy only).

One home for what agents' readings become: ``decode`` (the readings contract at the edge:
protobuf version 2, JSON version 1 from older agents, each reading checked on its own),
``state`` (the fleet rules: page count, supplies, alerts, status), ``ingest`` (the one
entry point the agent channel calls: idempotent, set-based, bounded in flight) and
``queries`` (what the portal reads). ``printgate.store`` keeps the rows and the SQL.
"""
