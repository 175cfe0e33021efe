"""nftables backend: a printgate-owned table, a timed set of ``source . port`` exceptions.

The table comes from the template ``deploy/nftables/printgate.nft``. Each
exception is a set element with ``timeout`` (it expires in the kernel even if
the gateway dies) and ``comment`` = the rule id (so a restarted gateway can
reconcile). ``netns`` runs every command inside that network namespace (tests).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from string import Template

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
        if not self._installed:
            await self.install()
        if dport not in self._protected:
            await self._protect(dport)
        if rule_id in self._rules:
            await self.revoke(rule_id)
        element = f'{{ {src} . {dport} timeout {int(timeout_s)}s comment "{rule_id}" }}'
        await self._run("add", "element", "inet", self.table, "allowed", element)
        self._rules[rule_id] = FirewallRule(rule_id, src, dport, time.monotonic() + timeout_s)
        log.info("firewall.allow", rule=rule_id, src=src, dport=dport, timeout_s=timeout_s)

    async def revoke(self, rule_id: str) -> None:
        rule = self._rules.pop(rule_id, None)
        targets = [rule] if rule is not None else [r for r in await self.list_rules() if r.rule_id == rule_id]
        for r in targets:
            await self._run("delete", "element", "inet", self.table, "allowed",
                            f"{{ {r.src} . {r.dport} }}", check=False)
            await self._forget_connections(r.src, r.dport)
            log.info("firewall.revoke", rule=rule_id, src=r.src, dport=r.dport)

    async def reconcile(self, live_rule_ids: Iterable[str]) -> list[str]:
        """Remove kernel elements whose rule id is not live; adopt the live ones."""
        live = set(live_rule_ids)
        removed: list[str] = []
        for rule in await self.list_rules():
            if rule.rule_id in live:
                self._rules[rule.rule_id] = rule
                continue
            self._rules[rule.rule_id] = rule
            await self.revoke(rule.rule_id)
            removed.append(rule.rule_id)
        return removed

    def is_allowed(self, src: str, dport: int) -> bool:
        now = time.monotonic()
        return any(r.src == src and r.dport == dport and r.expires_at > now for r in self._rules.values())

    # ------------------------------------------------------------------ kernel state
    async def list_rules(self) -> list[FirewallRule]:
        rc, out, err = await self._run("-j", "list", "set", "inet", self.table, "allowed", check=False)
        if rc != 0:
            if "No such file" in err:
                return []
            raise FirewallError(f"cannot list nftables set inet {self.table} allowed: {err.strip()}")
        rules: list[FirewallRule] = []
        for item in json.loads(out).get("nftables", []):
            for elem in item.get("set", {}).get("elem", []):
                body = elem.get("elem", elem) if isinstance(elem, dict) else {}
                val = body.get("val", {}) if isinstance(body, dict) else {}
                concat = val.get("concat") if isinstance(val, dict) else None
                if not concat or len(concat) != 2:
                    continue
                expires = float(body.get("expires", body.get("timeout", 0)))
                rules.append(FirewallRule(
                    rule_id=str(body.get("comment", "")), src=str(concat[0]), dport=int(concat[1]),
                    expires_at=time.monotonic() + expires,
                ))
        return rules

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
