"""nftables backend: a printgate-owned table, timed set elements per exception.

The table comes from the template ``deploy/nftables/printgate.nft``. Each
exception has its own element in the ``sessions`` set (``timeout``: it expires
in the kernel even if the gateway dies; ``comment`` = the rule id, so a
restarted gateway can reconcile), and the ``allowed`` set the packets are
matched against holds one element per ``source . port`` that lives as long as
the longest of its exceptions (``gateway.firewall.nft_elements``): two
sessions from one address never share, or end, each other's exception.
``netns`` runs every command inside that network namespace (tests).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from string import Template

from gateway.firewall import nft_elements as elements
from gateway.firewall.base import FirewallRule, validate_rule
from printgate.errors import FirewallError
from printgate.logs import get_logger

log = get_logger("gateway.firewall.nftables")

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "nftables" / "printgate.nft"
COMMAND_TIMEOUT_S = 10.0


def render_table(table: str, protected_ports: Iterable[int], template: Path = TEMPLATE) -> str:
    ports = sorted({int(p) for p in protected_ports})
    elements = f"elements = {{ {', '.join(map(str, ports))} }}" if ports else ""
    return Template(template.read_text()).substitute(table=table, ports=elements)


class NftablesFirewall:
    def __init__(
        self,
        table: str = "printgate",
        netns: str | None = None,
        *,
        protected_ports: Sequence[int] = (),
        template: Path = TEMPLATE,
    ) -> None:
        if not table.replace("_", "").isalnum():
            raise FirewallError(f"nftables table name {table!r} must be letters, digits and _")
        self.table = table
        self.netns = netns
        self._protected = set(protected_ports)
        self._template = template
        self._rules: dict[str, FirewallRule] = {}
        self._installed = False
        # one change at a time: each reads the kernel's exceptions on a source and port, then writes
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle
    async def install(self) -> None:
        """Create the table from the template if absent; keep existing elements."""
        rc, _out, _err = await self._run("list", "table", "inet", self.table, check=False)
        if rc != 0:
            await self._run("-f", "-", stdin=render_table(self.table, self._protected, self._template))
            log.info("firewall.nft.table_created", table=self.table, netns=self.netns)
        else:
            for port in self._protected:
                await self._protect(port)
            rc, _out, _err = await self._run("list", "set", "inet", self.table, elements.SESSIONS_SET, check=False)
            if rc != 0:  # a table from before per-session elements: its ``allowed`` elements are adopted by reconcile
                await self._run("add", "set", "inet", self.table, elements.SESSIONS_SET,
                                f"{{ type {elements.SESSIONS_SET_TYPE}; flags timeout; }}")
                log.info("firewall.nft.sessions_set_added", table=self.table, netns=self.netns)
        self._installed = True

    async def aclose(self) -> None:
        """Forget local state; kernel elements stay until their timeout or revoke (by design)."""
        self._rules.clear()

    async def remove_table(self) -> None:
        await self._run("delete", "table", "inet", self.table, check=False)
        self._rules.clear()
        self._installed = False

    # ------------------------------------------------------------------ Firewall
    async def allow(self, rule_id: str, src: str, dport: int, timeout_s: int) -> None:
        src = validate_rule(rule_id, src, dport, timeout_s)
        async with self._lock:
            await self._allow(rule_id, src, dport, timeout_s)

    async def revoke(self, rule_id: str) -> None:
        async with self._lock:
            await self._revoke(rule_id)

    async def reconcile(self, live_rule_ids: Iterable[str]) -> list[str]:
        """Remove kernel elements whose rule id is not live; adopt the live ones.

        ``allowed`` elements without any ``sessions`` element (left by a gateway
        from before per-session elements, or by a crash between two commands)
        are adopted when their comment names a live rule and removed otherwise.
        """
        async with self._lock:
            return await self._reconcile(set(live_rule_ids))

    async def _allow(self, rule_id: str, src: str, dport: int, timeout_s: int) -> None:
        if not self._installed:
            await self.install()
        if dport not in self._protected:
            await self._protect(dport)
        previous = self._rules.get(rule_id)
        if previous is not None and (previous.src, previous.dport) != (src, dport):
            await self._revoke(rule_id)  # the same rule id moved to another source or port
        now = time.monotonic()
        rule = FirewallRule(rule_id, src, dport, now + timeout_s)
        others = self._others(rule, await self.list_rules(), now)
        tag = elements.rule_tag(rule_id)
        clash = next((r.rule_id for r in others if elements.rule_tag(r.rule_id) == tag), None)
        if clash is not None:
            raise FirewallError(
                f"firewall rule {rule_id}: its nftables tag equals that of {clash} on {src}:{dport}; "
                "end that session or open this one again under a new id"
            )
        await self._transaction(elements.grant_commands(self.table, rule, others, now),
                                f"install the exception {rule_id} for {src}:{dport}")
        self._rules[rule_id] = rule
        log.info("firewall.allow", rule=rule_id, src=src, dport=dport, timeout_s=timeout_s,
                 sharing=len(others))

    async def _revoke(self, rule_id: str) -> None:
        rule = self._rules.pop(rule_id, None)
        held = await self.list_rules()  # the kernel's count of exceptions, even those of a previous gateway
        targets = [rule] if rule is not None else [r for r in held if r.rule_id == rule_id]
        now = time.monotonic()
        for r in targets:
            remaining = self._others(r, held, now)
            await self._transaction(elements.end_commands(self.table, r, remaining, now),
                                    f"remove the exception {rule_id} for {r.src}:{r.dport}")
            if not remaining:  # another live session from this source keeps its connections
                await self._forget_connections(r.src, r.dport)
            log.info("firewall.revoke", rule=rule_id, src=r.src, dport=r.dport, still_allowed_for=len(remaining))

    async def _reconcile(self, live: set[str]) -> list[str]:
        if not self._installed:
            await self.install()
        rules = await self.list_rules()
        held = {(r.src, r.dport) for r in rules}
        now = time.monotonic()
        removed: list[str] = []
        for orphan in await self._orphans(held):
            if orphan.rule_id in live:
                await self._transaction(elements.grant_commands(self.table, orphan, [], now),
                                        f"adopt the exception {orphan.rule_id} for {orphan.src}:{orphan.dport}")
                rules.append(orphan)
            else:
                await self._transaction(elements.end_commands(self.table, orphan, [], now),
                                        f"remove the stale exception {orphan.rule_id} for {orphan.src}:{orphan.dport}")
                await self._forget_connections(orphan.src, orphan.dport)
                log.info("firewall.revoke", rule=orphan.rule_id, src=orphan.src, dport=orphan.dport,
                         still_allowed_for=0)
                removed.append(orphan.rule_id)
        for rule in rules:
            self._rules[rule.rule_id] = rule
        for rule in rules:
            if rule.rule_id not in live:
                await self._revoke(rule.rule_id)
                removed.append(rule.rule_id)
        return removed

    def is_allowed(self, src: str, dport: int) -> bool:
        now = time.monotonic()
        return any(r.src == src and r.dport == dport and r.expires_at > now for r in self._rules.values())

    # ------------------------------------------------------------------ kernel state
    async def list_rules(self) -> list[FirewallRule]:
        """One rule per exception the kernel holds (the ``sessions`` set)."""
        return elements.session_rules(await self._list_set(elements.SESSIONS_SET))

    async def _orphans(self, held: set[tuple[str, int]]) -> list[FirewallRule]:
        """``allowed`` elements no exception holds, as rules named after their comment."""
        now = time.monotonic()
        return [
            FirewallRule(e.comment, str(e.values[0]), int(e.values[1]), now + e.expires_in_s)
            for e in await self._list_set(elements.ALLOWED_SET)
            if len(e.values) == 2 and (str(e.values[0]), int(e.values[1])) not in held
        ]

    async def _list_set(self, name: str) -> list[elements.SetElement]:
        rc, out, err = await self._run("-j", "list", "set", "inet", self.table, name, check=False)
        if rc != 0:
            if "No such file" in err:
                return []
            raise FirewallError(f"cannot list nftables set inet {self.table} {name}: {err.strip()}")
        try:
            return list(elements.parse_set(out))
        except (ValueError, TypeError) as exc:
            raise FirewallError(f"nft listed set inet {self.table} {name} in a form printgate cannot read: {exc}") from None

    @staticmethod
    def _others(rule: FirewallRule, held: list[FirewallRule], now: float) -> list[FirewallRule]:
        """The other live exceptions on ``rule``'s source and port."""
        return [r for r in held
                if r.rule_id != rule.rule_id and r.src == rule.src and r.dport == rule.dport and r.expires_at > now]

    async def _transaction(self, commands: list[str], what: str) -> None:
        """Apply ``commands`` as one nft transaction: all or nothing."""
        rc, _out, err = await self._run("-f", "-", stdin="\n".join(commands) + "\n", check=False)
        if rc != 0:
            raise FirewallError(
                f"nft could not {what} in table inet {self.table} ({err.strip() or rc}); nothing was changed"
            )

    async def _protect(self, port: int) -> None:
        await self._run("add", "element", "inet", self.table, "protected_ports", f"{{ {int(port)} }}")
        self._protected.add(port)

    async def _forget_connections(self, src: str, dport: int) -> None:
        """Delete conntrack entries so established connections stop too (best effort)."""
        try:
            await self._exec(["conntrack", "-D", "-p", "tcp", "-s", src, "--dport", str(dport)])
        except (FileNotFoundError, TimeoutError):
            log.warning("firewall.conntrack_unavailable", src=src, dport=dport)

    async def _run(self, *args: str, stdin: str | None = None, check: bool = True) -> tuple[int, str, str]:
        try:
            rc, out, err = await self._exec(["nft", *args], stdin=stdin)
        except FileNotFoundError:
            raise FirewallError("the nft command is missing: install the nftables package") from None
        except TimeoutError:
            raise FirewallError(f"nft {' '.join(args[:3])} did not answer within {COMMAND_TIMEOUT_S:g} s") from None
        if check and rc != 0:
            raise FirewallError(
                f"nft {' '.join(args)} failed ({err.strip() or rc}); the exception was not installed"
            )
        return rc, out, err

    async def _exec(self, argv: list[str], stdin: str | None = None) -> tuple[int, str, str]:
        if self.netns is not None:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(stdin.encode() if stdin is not None else None), COMMAND_TIMEOUT_S
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
