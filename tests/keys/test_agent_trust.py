"""Agents follow command-signing and relay host key rotations through signed trust sets.

The hub (gateway) signs from a real key directory; the agent's command guard
checks what the hub queued on the agent's command stream, in order.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.channel.command_guard import CommandGuard
from agent.channel.signature_child import verify_in_child
from agent.errors import COMMAND_FORGED, COMMAND_MALFORMED, CommandRejected
from agent.trust import TRUST_FILE, AgentTrust
from gateway.channel.hub import AgentHub
from printgate.keys import FileKeyStore
from printgate.wire import agent_pb2 as pb
from printgate.wire.commands import build_command, raw_public_key, sign_command
from printgate.wire.trust_set import TrustedCommandKey, TrustSetDoc, Validity, parse_trust_set

AGENT = "agent-1"
HOUR = timedelta(hours=1)


def _keys(tmp_path: Path) -> FileKeyStore:
    store = FileKeyStore(tmp_path / "keys")
    for use in ("relay-ca", "relay-host-key", "command-signing"):
        store.ensure(use)  # type: ignore[arg-type]
    return store


def _enrolled_guard(key: bytes, fingerprint: str, data: Path) -> CommandGuard:
    """The agent as enrolment left it (one verify key, one relay host key fingerprint) plus trust.json."""
    data.mkdir(parents=True, exist_ok=True)
    trust = AgentTrust(key, fingerprint, path=data / TRUST_FILE)
    return CommandGuard(AGENT, key, state_path=data / "seen.json", trust=trust)


def _private(store: FileKeyStore, key_id: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(store.private_key("command-signing", key_id), None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def _signed(body: pb.TrustSet | pb.Ping, key: Ed25519PrivateKey, command_id: str) -> pb.SignedCommand:
    now = int(time.time() * 1000)
    return sign_command(build_command(body, command_id=command_id, agent_id=AGENT, issued_at_ms=now,
                                      expires_at_ms=now + 60_000), key)


def _drain(queue: asyncio.Queue[pb.SignedCommand | None]) -> list[pb.SignedCommand]:
    out = []
    while not queue.empty():
        item = queue.get_nowait()
        assert item is not None
        out.append(item)
    return out


async def test_agent_follows_a_command_key_rotation_and_refuses_forged_sets(tmp_path: Path) -> None:
    store = _keys(tmp_path)
    hub = AgentHub(keys=store)
    old_key = hub.verify_key_raw
    old_host = store.current("relay-host-key").fingerprint
    guard = _enrolled_guard(old_key, old_host, tmp_path / "agent")

    stream = await hub.open_stream(AGENT, "serial-1")
    first = _drain(stream.queue)
    assert [pb.Command.FromString(e.command).WhichOneof("body") for e in first] == ["trust_set"]
    assert guard.check(first[0], channel="grpc").kind == "trust_set"  # the enrolment's key signed it

    # rotate both keys the agent trusts; the hub notices, the agent hears of it before the next command
    cmd_rot = store.rotate("command-signing", overlap=HOUR)
    host_rot = store.rotate("relay-host-key", overlap=HOUR)
    assert hub.refresh_keys(force=True)
    queued = _drain(stream.queue)
    assert len(queued) == 1 and queued[0].key_id == cmd_rot.old.key_id  # signed by the key the agent knows
    guard.check(queued[0], channel="grpc")
    assert hub.verify_key_raw != old_key
    new_cmd = hub.sign(AGENT, pb.Ping(nonce="after rotation"), ttl_s=60)
    assert new_cmd.key_id == cmd_rot.new.key_id
    assert guard.check(new_cmd, channel="grpc").kind == "ping"  # the new key, no re-enrolment
    assert set(guard.trust.host_fingerprints()) == {old_host, host_rot.new.fingerprint}
    kept = parse_trust_set((tmp_path / "agent" / TRUST_FILE).read_bytes())
    assert {k.key_id for k in kept.command_keys} == {cmd_rot.old.key_id, cmd_rot.new.key_id}

    # a set signed by a key the agent does not trust: refused, nothing changes
    attacker = Ed25519PrivateKey.generate()
    evil = TrustSetDoc(kept.serial_ms + 1, (TrustedCommandKey(raw_public_key(attacker.public_key())),), ())
    with pytest.raises(CommandRejected) as refused:
        guard.check(_signed(pb.TrustSet(set_json=evil.encode()), attacker, "forged-1"), channel="grpc")
    assert refused.value.code == COMMAND_FORGED
    assert parse_trust_set((tmp_path / "agent" / TRUST_FILE).read_bytes()) == kept
    with pytest.raises(CommandRejected):
        guard.check(_signed(pb.Ping(nonce="evil"), attacker, "forged-2"), channel="grpc")

    # a restarted agent keeps what it learnt
    again = _enrolled_guard(old_key, old_host, tmp_path / "agent")
    assert again.check(hub.sign(AGENT, pb.Ping(nonce="restart"), ttl_s=60), channel="grpc").kind == "ping"

    # the overlap ends: the next set is signed by the new key and drops the old ones
    store.end_overlap("command-signing")
    store.end_overlap("relay-host-key")
    assert hub.refresh_keys(force=True)
    latest = _drain(stream.queue)
    assert len(latest) == 1 and latest[0].key_id == cmd_rot.new.key_id
    guard.check(latest[0], channel="grpc")
    assert guard.trust.host_fingerprints() == [host_rot.new.fingerprint]
    with pytest.raises(CommandRejected) as stale:
        guard.check(_signed(pb.Ping(nonce="old"), _private(store, cmd_rot.old.key_id), "old-1"), channel="grpc")
    assert stale.value.code == COMMAND_FORGED and cmd_rot.old.key_id in str(stale.value)


async def test_a_trust_set_older_than_the_kept_one_or_without_a_valid_key_is_refused(tmp_path: Path) -> None:
    store = _keys(tmp_path)
    hub = AgentHub(keys=store)
    guard = _enrolled_guard(hub.verify_key_raw, store.current("relay-host-key").fingerprint, tmp_path / "agent")
    stream = await hub.open_stream(AGENT, "serial-1")
    guard.check(_drain(stream.queue)[0], channel="grpc")
    kept = guard.trust.doc
    assert kept is not None
    signer = _private(store, store.current("command-signing").key_id)
    retired = TrustedCommandKey(raw_public_key(Ed25519PrivateKey.generate().public_key()))
    for doc in (TrustSetDoc(kept.serial_ms - 1, (*kept.command_keys, retired), kept.relay_host_keys),  # replayed
                TrustSetDoc(kept.serial_ms + 1, tuple(TrustedCommandKey(k.public_raw, Validity(None, 1))
                                                      for k in kept.command_keys), ())):  # every key expired
        with pytest.raises(CommandRejected) as refused:
            guard.check(_signed(pb.TrustSet(set_json=doc.encode()), signer, f"c{doc.serial_ms}"), channel="grpc")
        assert refused.value.code == COMMAND_MALFORMED
    assert guard.trust.doc == kept


async def test_an_unreadable_key_directory_keeps_the_hub_signing_with_the_keys_it_had(tmp_path: Path) -> None:
    store = _keys(tmp_path)
    hub = AgentHub(keys=store)
    before = hub.sign(AGENT, pb.Ping(nonce="before"), ttl_s=60).key_id
    (store.key_dir / "keys.json").write_text("{half a file")  # a copy in progress, a broken mount
    assert not hub.refresh_keys(force=True)
    assert hub.sign(AGENT, pb.Ping(nonce="after"), ttl_s=60).key_id == before


async def test_a_trust_set_that_cannot_be_saved_is_still_used(tmp_path: Path) -> None:
    store = _keys(tmp_path)
    hub = AgentHub(keys=store)
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the data directory should be: every write fails, as on a full disk")
    trust = AgentTrust(hub.verify_key_raw, store.current("relay-host-key").fingerprint, path=blocked / TRUST_FILE)
    guard = CommandGuard(AGENT, hub.verify_key_raw, trust=trust)
    stream = await hub.open_stream(AGENT, "serial-1")
    rotation = store.rotate("command-signing", overlap=HOUR)
    assert hub.refresh_keys(force=True)
    for envelope in _drain(stream.queue):
        guard.check(envelope, channel="grpc")
    assert guard.check(hub.sign(AGENT, pb.Ping(nonce="new key"), ttl_s=60), channel="grpc").kind == "ping"
    assert rotation.new.key_id in guard.trust.command_key_ids()


async def test_a_command_naming_a_new_relay_host_key_is_preceded_by_the_set_trusting_it(tmp_path: Path) -> None:
    store = _keys(tmp_path)
    hub = AgentHub(keys=store)
    stream = await hub.open_stream(AGENT, "serial-1")  # (the hub just looked at the key directory)
    _drain(stream.queue)
    rotation = store.rotate("relay-host-key", overlap=HOUR)  # the relay serves the new key at once
    hub.sign(AGENT, pb.Ping(nonce="no host key named"), ttl_s=60)
    assert _drain(stream.queue) == []  # within the second: no look at the key directory for this one
    hub.sign(AGENT, pb.OpenTunnel(session_id="s1", relay_host_key_fingerprint=rotation.new.fingerprint), ttl_s=60)
    sent = _drain(stream.queue)
    assert len(sent) == 1
    doc = parse_trust_set(pb.Command.FromString(sent[0].command).trust_set.set_json)
    assert rotation.new.fingerprint in doc.host_fingerprints(int(time.time() * 1000))


async def test_nodes_sharing_a_key_directory_number_trust_sets_alike_so_failover_is_no_rollback(tmp_path: Path) -> None:
    """Issue 18 finding 9: the serial came from each node's start time; an agent moving from a later-started
    node to an earlier-started one refused the set ("older than the one kept"). Now it comes from the keys."""
    store = _keys(tmp_path)
    early = AgentHub(keys=store)
    await asyncio.sleep(0.02)  # the second node starts later
    late = AgentHub(keys=FileKeyStore(store.key_dir))
    guard = _enrolled_guard(early.verify_key_raw, store.current("relay-host-key").fingerprint, tmp_path / "agent")

    def serial(hub: AgentHub) -> int:
        envelope = hub.trust_set_envelope(AGENT)
        assert envelope is not None
        return parse_trust_set(pb.Command.FromString(envelope.command).trust_set.set_json).serial_ms

    assert serial(early) == serial(late)
    late_stream = await late.open_stream(AGENT, "serial-1")
    guard.check(_drain(late_stream.queue)[0], channel="grpc")
    early_stream = await early.open_stream(AGENT, "serial-1")  # failover to the node started first
    guard.check(_drain(early_stream.queue)[0], channel="grpc")  # accepted: no CommandRejected

    rotation = store.rotate("command-signing", overlap=HOUR)
    assert early.refresh_keys(force=True) and late.refresh_keys(force=True)
    assert rotation.new.not_before is not None
    assert serial(early) == serial(late) == int(rotation.new.not_before.timestamp() * 1000) > 0


async def test_the_set_already_kept_is_taken_without_checking_its_signature_again(tmp_path: Path) -> None:
    """The hub sends its set on every connect: byte for byte the kept one changes nothing, so the agent
    does not verify it again (no cryptography in an agent that only polls); any other set still must verify."""
    store = _keys(tmp_path)
    hub = AgentHub(keys=store)
    guard = _enrolled_guard(hub.verify_key_raw, store.current("relay-host-key").fingerprint, tmp_path / "agent")
    stream = await hub.open_stream(AGENT, "serial-1")
    [first] = _drain(stream.queue)
    assert guard.check(first, channel="grpc").kind == "trust_set"
    kept = (tmp_path / "agent" / TRUST_FILE).read_bytes()

    # the same set under a signature nobody trusts: a no-op, not applied, nothing replaced
    stranger = Ed25519PrivateKey.generate()
    command = pb.Command.FromString(first.command)
    again = sign_command(build_command(pb.TrustSet(set_json=command.trust_set.set_json), command_id="c-again",
                                       agent_id=AGENT, issued_at_ms=command.issued_at_ms,
                                       expires_at_ms=command.expires_at_ms), stranger)
    assert guard.check(again, channel="grpc").kind == "trust_set"
    assert (tmp_path / "agent" / TRUST_FILE).read_bytes() == kept

    # one byte different: verified, and refused as forged
    doc = parse_trust_set(command.trust_set.set_json)
    other = TrustSetDoc(doc.serial_ms + 1, doc.command_keys, doc.relay_host_keys)
    forged = sign_command(build_command(pb.TrustSet(set_json=other.encode()), command_id="c-forged",
                                        agent_id=AGENT, issued_at_ms=command.issued_at_ms,
                                        expires_at_ms=command.expires_at_ms), stranger)
    with pytest.raises(CommandRejected) as refused:
        guard.check(forged, channel="grpc")
    assert refused.value.code == COMMAND_FORGED
    assert (tmp_path / "agent" / TRUST_FILE).read_bytes() == kept
    # and for another agent the kept bytes prove nothing
    for_other = sign_command(build_command(pb.TrustSet(set_json=command.trust_set.set_json), command_id="c-o",
                                           agent_id="agent-2", issued_at_ms=command.issued_at_ms,
                                           expires_at_ms=command.expires_at_ms), stranger)
    with pytest.raises(CommandRejected):
        guard.check(for_other, channel="grpc")


async def test_a_new_trust_set_is_checked_in_a_child_process_before_the_commands_it_signs(tmp_path: Path) -> None:
    """Issue 17 item 6: a set that is not the kept one has its signature checked by a short-lived child
    (``agent.channel.signature_child``, no cryptography in the agent); commands arriving behind it wait
    for it, so one signed by a key only the new set names is accepted, never before the set is."""
    store = _keys(tmp_path)
    hub = AgentHub(keys=store)
    guard = _enrolled_guard(hub.verify_key_raw, store.current("relay-host-key").fingerprint, tmp_path / "agent")
    verdicts: list[bool | None] = []

    async def in_child(envelope: pb.SignedCommand, key: bytes) -> bool | None:
        verdicts.append(await verify_in_child(envelope, key))
        return verdicts[-1]

    guard._apart = in_child
    stream = await hub.open_stream(AGENT, "serial-1")
    [first] = _drain(stream.queue)
    assert (await guard.admit(first, channel="grpc")).kind == "trust_set"
    assert verdicts == [True] and (tmp_path / "agent" / TRUST_FILE).exists()

    rotation = store.rotate("command-signing", overlap=HOUR)
    assert hub.refresh_keys(force=True)
    [new_set] = _drain(stream.queue)
    ping = hub.sign(AGENT, pb.Ping(nonce="signed by the new key"), ttl_s=60)
    assert ping.key_id == rotation.new.key_id
    admitted = await asyncio.gather(guard.admit(new_set, channel="grpc"), guard.admit(ping, channel="mqtt"),
                                    return_exceptions=True)
    assert [getattr(v, "kind", v) for v in admitted] == ["trust_set", "ping"] and verdicts == [True, True]

    # a set claiming a trusted key's id, signed by another key: the child refuses it, nothing changes
    kept = (tmp_path / "agent" / TRUST_FILE).read_bytes()
    attacker = Ed25519PrivateKey.generate()
    doc = parse_trust_set(kept)
    evil = TrustSetDoc(doc.serial_ms + 1, (TrustedCommandKey(raw_public_key(attacker.public_key())),), ())
    forged = _signed(pb.TrustSet(set_json=evil.encode()), attacker, "forged-set")
    forged.key_id = rotation.new.key_id
    with pytest.raises(CommandRejected) as refused:
        await guard.admit(forged, channel="grpc")
    assert refused.value.code == COMMAND_FORGED and verdicts[-1] is False
    assert (tmp_path / "agent" / TRUST_FILE).read_bytes() == kept
    with pytest.raises(CommandRejected):
        await guard.admit(_signed(pb.Ping(nonce="evil"), attacker, "forged-ping"), channel="grpc")
    # a set signed by a key the agent does not know is refused without a child
    stranger = _signed(pb.TrustSet(set_json=evil.encode()), attacker, "forged-set-2")
    with pytest.raises(CommandRejected):
        await guard.admit(stranger, channel="grpc")
    assert len(verdicts) == 3


async def test_the_childs_verdict_decides_and_without_one_the_set_is_checked_in_process(tmp_path: Path) -> None:
    store = _keys(tmp_path)
    hub = AgentHub(keys=store)
    stream = await hub.open_stream(AGENT, "serial-1")
    [first] = _drain(stream.queue)

    async def refuses(_envelope: pb.SignedCommand, _key: bytes) -> bool | None:
        return False

    async def no_verdict(_envelope: pb.SignedCommand, _key: bytes) -> bool | None:
        return None

    guard = _enrolled_guard(hub.verify_key_raw, store.current("relay-host-key").fingerprint, tmp_path / "a")
    guard._apart = refuses  # the child's "does not verify" stands, even for a genuine set
    with pytest.raises(CommandRejected) as refused:
        await guard.admit(first, channel="grpc")
    assert refused.value.code == COMMAND_FORGED and guard.trust.doc is None
    assert not (tmp_path / "a" / TRUST_FILE).exists()

    guard._apart = no_verdict  # the child could not answer: checked here, still verified
    assert (await guard.admit(first, channel="grpc")).kind == "trust_set"
    assert guard.trust.doc is not None
