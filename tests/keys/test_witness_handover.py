"""A witness follows the gateway's audit key rotation through the old key's signed handover: a real
`printgate audit witness` process against the portal API on loopback (fixtures of tests/audit)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from audit.checkpoint import Signer
from audit.keyset import save_handover, sign_handover
from audit.log import AuditLog
from tests.audit.test_witness import Gateway, WitnessBox, gateway, witness

__all__ = ["gateway", "witness"]  # the fixtures, shared with tests/audit/test_witness.py


async def test_the_witness_follows_a_rotation_signed_by_the_pinned_key_and_no_other(
        gateway: Gateway, witness: WitnessBox, tmp_path: Path) -> None:
    handovers = tmp_path / "handovers"
    handovers.mkdir()
    follow = ["--gateway-key-handovers", str(handovers)]
    first = await gateway.grow(5)
    code, out, err = await witness.once()
    assert code == 0 and f"cosigned checkpoint {first}" in out, err

    # what `printgate keys rotate audit` does: a new key signs from now on, the old key hands over to it
    old, new = gateway.signer, Signer.generate()
    gateway.signer, gateway.log = new, AuditLog(gateway.db, new, checkpoint_every=10**9)
    second = await gateway.grow(3)

    def hand_over(by: Signer) -> None:
        key_file = tmp_path / "handing-over.key"
        by.save(key_file)
        save_handover(sign_handover(key_file, new.verifier(), datetime.now(UTC)), handovers)
        key_file.unlink()

    hand_over(Signer.generate())  # someone else's key vouches for the new one: not enough
    code, out, err = await witness.once_with(*follow)
    assert code == 1 and "REFUSED" in err and new.key_id in err, (out, err)
    assert json.loads(witness.state.read_text())["cosignature"]["checkpoint"]["tree_size"] == first

    hand_over(old)  # the pinned key's own handover (beside the forged one)
    code, out, err = await witness.once_with(*follow)
    assert code == 0 and f"cosigned checkpoint {second}" in out, err  # consistent with what it saw before
    state = json.loads(witness.state.read_text())
    assert state["gateway_key_id"] == new.key_id and "BEGIN PUBLIC KEY" in state["gateway_key_pem"]
    third = await gateway.grow(2)  # the next rounds keep the new key (the witness still pins the old one)
    code, out, err = await witness.once_with(*follow)
    assert code == 0 and f"cosigned checkpoint {third}" in out, err
