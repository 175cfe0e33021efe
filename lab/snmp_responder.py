"""Launch snmpsim's command responder with endpoint-based data file selection.

snmpsim 1.2 overrides ``handleMgmtOperation`` to pick the data file from the
transport endpoint a request arrived on, but pysnmp 7 renamed that hook to
``handle_management_operation``, so the override is dead code and every
request is answered from the community's file. This shim re-attaches the
probing under the new name, then runs snmpsim's ``main()`` unchanged.

Run as ``python -m lab.snmp_responder <snmpsim-command-responder args>``.
"""

from __future__ import annotations

import sys
from hashlib import md5
from typing import Any

from pysnmp import error
from pysnmp.entity.rfc3413 import cmdrsp
from snmpsim import datafile
from snmpsim.commands import responder

from printgate.proc import die_with_parent


def probe_context_name(snmp_engine: Any, snmp_context: Any) -> Any:
    """snmpsim's ``probe_hash_context`` with pysnmp 7 method names."""
    ctx = snmp_engine.observer.get_execution_context("rfc3412.receiveMessage:request")
    engine_id = ctx["contextEngineId"]
    engine_label = (
        datafile.SELF_LABEL if engine_id == snmp_engine.snmpEngineID else engine_id.prettyPrint()
    )
    name = ctx["contextName"].prettyPrint()
    for candidate in datafile.probe_context(
        ctx["transportDomain"], ctx["transportAddress"], engine_label, name
    ):
        probed = md5(candidate).hexdigest() if len(candidate) > 32 else candidate
        try:
            snmp_context.get_mib_instrum(probed)
        except error.PySnmpError:
            continue
        return probed
    return ctx["contextName"]


def _patch(ours: type, base: Any) -> None:
    def handle_management_operation(
        self: Any, snmp_engine: Any, state_reference: Any, context_name: Any, pdu: Any
    ) -> None:
        probed = probe_context_name(snmp_engine, self.snmpContext)
        base.handle_management_operation(self, snmp_engine, state_reference, probed, pdu)

    ours.handle_management_operation = handle_management_operation  # type: ignore[attr-defined]


_patch(responder.GetCommandResponder, cmdrsp.GetCommandResponder)
_patch(responder.SetCommandResponder, cmdrsp.SetCommandResponder)
_patch(responder.NextCommandResponder, cmdrsp.NextCommandResponder)
_patch(responder.BulkCommandResponder, cmdrsp.BulkCommandResponder)

if __name__ == "__main__":
    die_with_parent()  # a killed demo or test run leaves no simulator behind
    sys.argv[0] = "snmpsim-command-responder"
    sys.exit(responder.main())
