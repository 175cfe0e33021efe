"""The agent's rare cryptography done by a child process (``agent.channel.signature_child``, issue 17
item 6): the same answers as in-process, and ``None`` (the caller then works in-process) when the child
cannot give one."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.channel import signature_child
from agent.channel.enroll import key_pem, new_key
from printgate.wire import agent_pb2 as pb
from printgate.wire.commands import build_command, raw_public_key, sign_command


async def test_the_renewal_csr_is_made_by_the_child_for_the_agents_own_key() -> None:
    key = new_key()
    pem = await signature_child.csr_in_child(key_pem(key), "agt-1")
    assert pem is not None
    csr = x509.load_pem_x509_csr(pem)
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value == "agt-1"
    public = csr.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == \
        key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


async def test_the_childs_signature_verdict_and_no_verdict() -> None:
    key = Ed25519PrivateKey.generate()
    envelope = sign_command(build_command(pb.Ping(nonce="n"), command_id="c1", agent_id="a", issued_at_ms=1,
                                          expires_at_ms=2), key)
    assert await signature_child.verify_in_child(envelope, raw_public_key(key.public_key())) is True
    other = raw_public_key(Ed25519PrivateKey.generate().public_key())
    assert await signature_child.verify_in_child(envelope, other) is False
    assert await signature_child.verify_in_child(envelope, b"short") is False  # not a key: does not verify
    assert await signature_child.csr_in_child(b"not a key", "agt-1") is None  # the child failed: no answer
