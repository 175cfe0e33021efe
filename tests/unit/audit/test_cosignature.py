"""Witness cosignatures: bound to the exact checkpoint, the witness and the time."""

from __future__ import annotations

from dataclasses import replace

from audit.checkpoint import Signer
from audit.cosignature import Cosignature, Cosigner, WitnessVerifier

AT = "2026-12-05T10:00:00.000000Z"


def _cosigned() -> tuple[Cosigner, Cosignature]:
    cp = Signer.generate().sign(tree_size=7, root=b"\x11" * 32, head="ab" * 32, at=AT)
    witness = Cosigner.generate()
    return witness, witness.cosign(cp, at=AT)


def test_a_cosignature_verifies_under_the_witness_key_and_survives_json() -> None:
    witness, cosig = _cosigned()
    verifier = WitnessVerifier.from_pem(witness.public_key_pem())
    assert verifier.key_id == cosig.witness and verifier.is_valid(cosig)
    again = Cosignature.from_json(cosig.to_json())
    assert again == cosig and WitnessVerifier.of(again).is_valid(again)


def test_any_change_to_what_was_cosigned_breaks_it() -> None:
    witness, cosig = _cosigned()
    verifier = WitnessVerifier.from_pem(witness.public_key_pem())
    for changed in (replace(cosig, checkpoint=replace(cosig.checkpoint, tree_size=8)),
                    replace(cosig, checkpoint=replace(cosig.checkpoint, root="22" * 32)),
                    replace(cosig, checkpoint=replace(cosig.checkpoint, signature="00" * 64)),
                    replace(cosig, cosigned_at="2027-01-01T00:00:00.000000Z")):
        assert not verifier.is_valid(changed)


def test_another_witness_key_does_not_verify_it() -> None:
    _, cosig = _cosigned()
    other = WitnessVerifier.from_pem(Cosigner.generate().public_key_pem())
    assert not other.is_valid(cosig)
    assert not other.is_valid(replace(cosig, witness=other.key_id))


def test_malformed_cosignature_json_is_a_value_error() -> None:
    _, cosig = _cosigned()
    data = cosig.to_json()
    for broken in ({k: v for k, v in data.items() if k != "witness"}, {**data, "checkpoint": "x"}):
        try:
            Cosignature.from_json(broken)
        except ValueError:
            continue
        raise AssertionError(f"accepted {broken}")
