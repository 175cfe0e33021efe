"""The human table of ``printgate agent scan``: device text shown as text, every failure said.

Everything a device sends (model, serial, sysName, reasons quoting it) is
put in ``rich.text.Text`` cells: never parsed as console markup (a model
"LaserJet [/b]" cannot crash the table, "[rev a]" stays visible) and never
turned into emoji (a MAC "4a:23:6a:cd:5e:f1" has no ``:cd:`` disc in it).
Control characters are shown as escapes (``\\x1b``), not sent to the
terminal. Addresses that did not answer are summarised by kind with the
full reason (including the SNMPv3 privacy-key hint); a short list is shown
address by address.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from printgate.domain import DeviceIdentity, DiscoveryResult, DiscoveryStatus

LIST_UNANSWERED_UP_TO = 16  # more unanswered addresses than this are summarised
MAX_MODEL = 60


def visible(text: str) -> str:
    """``text`` with every non-printable character written as an escape."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def cell(text: str | None, limit: int | None = None) -> Text:
    shown = visible(text or "")
    if limit is not None and len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    return Text(shown)


def unanswered_kind(r: DiscoveryResult) -> str:
    """"refusing" (the network said no SNMP agent is there) or "silent" (no answer in time)."""
    return "refusing" if "no SNMP agent at" in r.reason else "silent"


def scan_console() -> Console:
    """A console that prints text as given: no emoji codes, no highlighting of numbers or MACs."""
    return Console(emoji=False, highlight=False)


def scan_table(results: Sequence[DiscoveryResult], summary: str) -> Table:
    answered = [r for r in results if r.status is not DiscoveryStatus.UNREACHABLE]
    unanswered = [r for r in results if r.status is DiscoveryStatus.UNREACHABLE]
    by_kind: dict[str, list[DiscoveryResult]] = defaultdict(list)
    for r in unanswered:
        by_kind[unanswered_kind(r)].append(r)
    listed = unanswered if len(unanswered) <= LIST_UNANSWERED_UP_TO else []
    not_listed = ", ".join(f"{len(rs)} {kind}" for kind, rs in sorted(by_kind.items())) if not listed else ""
    title = Text(summary + (f"  (not listed one by one: {not_listed})" if not_listed else ""))
    table = Table(title=title)
    for col in ("address", "status", "credential", "vendor", "model", "serial", "MAC", "reason"):
        table.add_column(col, overflow="fold")
    for r in [*answered, *listed]:
        i = r.identity or DeviceIdentity()
        status = unanswered_kind(r) if r.status is DiscoveryStatus.UNREACHABLE else str(r.status)
        table.add_row(
            cell(r.ip), cell(status), cell(r.credential), cell(i.vendor), cell(i.model, MAX_MODEL),
            cell(i.serial), cell(i.mac),
            cell(r.reason if r.status is not DiscoveryStatus.PRINTER else ""),
        )
    if not listed:
        for kind, rs in sorted(by_kind.items()):
            example = rs[0]
            table.add_row(
                cell(f"{len(rs)} addresses"), cell(kind), cell(""), cell(""), cell(""), cell(""), cell(""),
                cell(f"e.g. {example.ip}: {example.reason}"),
            )
    return table
