"""One witness round, and the loop that repeats it (``printgate audit witness``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from audit.chain import format_at
from audit.checkpoint import CheckpointVerifier
from audit.cosignature import Cosigner
from audit.errors import WITNESS_WRONG_STATE, GatewayUnreachable, WitnessRefused
from audit.keyset import follow_handovers
from audit.witness.client import GatewayClient
from audit.witness.judge import check_extends, check_signed
from audit.witness.state import WitnessState
from printgate.logs import get_logger

log = get_logger("audit.witness")


@dataclass(frozen=True, slots=True)
class Round:
    outcome: str  # "cosigned" | "unchanged" | "empty"
    tree_size: int
    message: str


class Witness:
    """Checks and cosigns the gateway's checkpoints; keeps its state in ``state_path``."""

    def __init__(
        self, client: GatewayClient, cosigner: Cosigner, gateway_key: CheckpointVerifier, state_path: Path,
        *, clock: Callable[[], datetime] = lambda: datetime.now(UTC), handovers: Path | None = None,
    ) -> None:
        self.client = client
        # where the gateway's key handovers are (a directory or one file): a checkpoint of another key is
        # accepted when a chain of handovers, each signed by the key before it, leads there from the pinned key
        self.handovers = handovers
        self.cosigner = cosigner
        self.gateway_key = gateway_key
        self.state_path = state_path
        self._clock = clock

    async def round(self) -> Round:
        """Fetch, check, cosign, remember, return. Raises ``WitnessRefused`` (reported to the
        gateway first, best effort) or ``GatewayUnreachable``."""
        seen: list[int] = []
        try:
            return await self._round(seen)
        except WitnessRefused as exc:
            try:
                await self.client.report_refusal(witness=self.cosigner.key_id, code=exc.code, message=exc.message,
                                                 tree_size=seen[0] if seen else None)
            except GatewayUnreachable as unreported:
                log.warning("witness.refusal_not_reported", reason=unreported.code, detail=unreported.message)
            raise

    async def _round(self, seen: list[int]) -> Round:
        new = await self.client.latest_checkpoint()
        if new is None:
            return Round("empty", 0, "the gateway has no signed checkpoint yet; nothing to cosign")
        seen.append(new.tree_size)
        state = WitnessState.load(self.state_path)
        trusted = self.gateway_key
        if state is not None and state.gateway_key_id != self.gateway_key.key_id:
            followed = (CheckpointVerifier.from_pem(state.gateway_key_pem) if state.gateway_key_pem else None)
            if followed is None or followed.key_id != state.gateway_key_id or self.handovers is None \
                    or follow_handovers(self.gateway_key, self.handovers, followed.key_id) is None:
                raise WitnessRefused(
                    f"the state {self.state_path} belongs to gateway key {state.gateway_key_id}, not "
                    f"{self.gateway_key.key_id}: use one state file per gateway", code=WITNESS_WRONG_STATE)
            trusted = followed  # a key this witness followed through handovers from the pinned one
        if new.key_id != trusted.key_id and self.handovers is not None:
            handed = follow_handovers(trusted, self.handovers, new.key_id)
            if handed is not None:
                log.info("witness.gateway_key.followed", old=trusted.key_id, new=handed.key_id)
                trusted = handed
        check_signed(new, trusted)
        if state is not None:
            old = state.cosignature.checkpoint
            proof = (await self.client.consistency_proof(old.tree_size, new.tree_size)
                     if new.tree_size > old.tree_size else [])
            check_extends(state.cosignature, new, proof)
            if new.tree_size == old.tree_size:
                await self.client.send_cosignature(state.cosignature)  # idempotent: it may have been lost
                return Round("unchanged", new.tree_size,
                             f"checkpoint {new.tree_size} is the one already cosigned; nothing new")
        cosig = self.cosigner.cosign(new, at=format_at(self._clock()))
        WitnessState(self.client.base_url, trusted.key_id, cosig,
                     None if trusted.key_id == self.gateway_key.key_id else trusted.public_key_pem()
                     ).save(self.state_path)
        await self.client.send_cosignature(cosig)
        log.info("witness.cosigned", tree_size=new.tree_size, root=new.root, witness=self.cosigner.key_id)
        return Round("cosigned", new.tree_size,
                     f"cosigned checkpoint {new.tree_size} (root {new.root[:16]}…) as witness {self.cosigner.key_id}")

    async def run(self, interval: float, *, report: Callable[[str], None]) -> None:
        """Repeat ``round`` every ``interval`` seconds until cancelled. An unreachable gateway is
        retried; an inconsistent log is reported every round and never cosigned."""
        while True:
            try:
                done = await self.round()
                report(done.message)
            except WitnessRefused as exc:
                log.error("witness.refused", reason=exc.code, detail=exc.message)
                report(f"REFUSED ({exc.code}): {exc.message}")
            except GatewayUnreachable as exc:
                log.warning("witness.gateway_unreachable", reason=exc.code, detail=exc.message)
                report(f"gateway unavailable ({exc.code}): {exc.message}; retrying in {interval:g} s")
            await asyncio.sleep(interval)
