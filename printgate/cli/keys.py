"""`printgate keys ...`: list the gateway's keys and rotate each of them.

Every key lives in the key directory (``[gateway] key_dir``, the data directory
unless set; ``printgate.keys``), which the nodes of one gateway share
(docs/scale-out.md, "Keys"). The audit signing key is ``audit-signing.key``
(0600) with every public key it ever had in ``audit-keys.json`` (the key set
given to ``printgate audit verify --key-set``); the agent CA is ``agent-ca/``;
the relay CA, relay host key, command-signing key and session CA rotate through
``printgate.keys.FileKeyStore`` and are listed with their validity in ``keys.json``.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, cast

import typer

from audit.keyset import PUBLIC_KEY_FILE, SIGNING_KEY_FILE
from printgate.keys import ROTATABLE, KeyUse, Rotation
from printgate.settings import Settings

if TYPE_CHECKING:
    from audit.checkpoint import Signer

app = typer.Typer(no_args_is_help=True, help="list and rotate the gateway's keys")
rotate_app = typer.Typer(no_args_is_help=True, help="rotate a key (audit, agent-ca, relay-ca, relay-host-key, "
                                                     "session-ca, command-signing)")
app.add_typer(rotate_app, name="rotate")

ConfigOpt = typer.Option(None, help="TOML settings file")
DataDirOpt = typer.Option(None, "--data-dir", "--key-dir",
                          help="the gateway's key directory (default: [gateway] key_dir, else data_dir)")
DbOpt = typer.Option(None, "--database-url", help="database URL (default: from settings)")



@app.callback()
def _logging() -> None:
    from printgate.logs import configure_logging

    configure_logging("warning", json=True)


def _data_dir(config: Path | None, data_dir: Path | None) -> Path:
    return data_dir or Settings.load(config).gateway.key_directory


def _write_private_atomic(signer: Signer, path: Path) -> None:
    """Write a private key next to ``path`` (0600) and rename it over ``path`` in one step."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    tmp.unlink(missing_ok=True)
    signer.save(tmp)
    os.replace(tmp, path)


@rotate_app.command("audit")
def rotate_audit(
    actor: str = typer.Option("cli", help="who rotates (recorded in the audit log)"),
    overlap_seconds: float = typer.Option(0.0, min=0.0, max=86400.0,
                                          help="the old key stays valid this long after the rotation: time to "
                                          "copy the new key to nodes that do not share this data directory"),
    config: Path | None = ConfigOpt, data_dir: Path | None = DataDirOpt, database_url: str | None = DbOpt,
) -> None:
    """New audit signing key; the old public key stays in the key set, valid until now (+ --overlap-seconds).

    Signs a last checkpoint with the old key, swaps the key file (the running
    gateway signs with the new key from its next checkpoint on), records
    ``keys.rotated`` and signs a checkpoint with the new key.
    """
    from audit.chain import format_at
    from audit.checkpoint import FileSigner, Signer
    from audit.keyset import (
        KEY_SET_FILE,
        AuditKeySet,
        KeyEntry,
        load_key_set,
        save_handover,
        sign_handover,
    )
    from audit.log import AuditLog
    from printgate.cli.schema_guard import schema_database
    from printgate.domain import AuditEventIn, event_types
    from printgate.errors import ConfigError, PrintgateError

    settings = Settings.load(config)
    ddir = data_dir or settings.gateway.key_directory
    key_path, set_path = ddir / SIGNING_KEY_FILE, ddir / KEY_SET_FILE
    try:
        old = Signer.load(key_path)
        keys = load_key_set(set_path) if set_path.exists() else AuditKeySet.single(old.verifier())
    except ConfigError as exc:
        typer.echo(f"cannot rotate: {exc.message} (the gateway creates {key_path} on first start)", err=True)
        raise typer.Exit(2) from exc
    if keys.get(old.key_id) is None:
        keys = keys.with_entry(KeyEntry(old.verifier()))
    current = keys.get(old.key_id)
    assert current is not None
    if current.not_after is not None:
        typer.echo(f"cannot rotate: the key set says the signing key {old.key_id} was retired at "
                   f"{format_at(current.not_after)}; restore the signing key that replaced it", err=True)
        raise typer.Exit(2)

    async def run() -> tuple[str, str]:
        async with schema_database(database_url or settings.database_url, config, url_option=bool(database_url)) as db:
            await AuditLog(db, old).checkpoint()  # the old key's last word: everything so far
            new = Signer.generate()
            since = datetime.now(UTC)
            # the old key's handover to the new one, for witnesses pinning the old key (docs/audit-witness.md)
            save_handover(sign_handover(key_path, new.verifier(), since), ddir)
            keys.with_entry(KeyEntry(new.verifier(), not_before=since)).save(set_path)
            _write_private_atomic(new, key_path)
            until = datetime.now(UTC) + timedelta(seconds=overlap_seconds)
            keys.with_entry(KeyEntry(new.verifier(), not_before=since)).retire(old.key_id, until).save(set_path)
            (ddir / PUBLIC_KEY_FILE).write_text(new.public_key_pem())
            after = AuditLog(db, FileSigner(key_path))
            await after.append(AuditEventIn(
                type=event_types.KEYS_ROTATED, actor=actor,
                details={"use": "audit", "old_key_id": old.key_id, "new_key_id": new.key_id,
                         "old_not_after": format_at(until), "new_not_before": format_at(since)},
            ))
            cp = await after.checkpoint()
            return new.key_id, format_at(until) + (f"; checkpoint {cp.tree_size} signed by {cp.key_id}" if cp else "")

    try:
        new_id, note = asyncio.run(run())
    except PrintgateError as exc:
        typer.echo(f"cannot rotate: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"audit key rotated: {old.key_id} retired at {note}; new signing key {new_id} "
               f"({key_path}); key set {set_path} (give it to verifiers: "
               f"`printgate audit verify --key-set {set_path}`); witnesses follow the old key's handover "
               f"{ddir}/audit-handover-{old.key_id}-{new_id}.json (give it to them: --gateway-key-handovers)")


@rotate_app.command("agent-ca")
def rotate_agent_ca_command(
    actor: str = typer.Option("cli", help="who rotates (recorded in the audit log)"),
    config: Path | None = ConfigOpt, data_dir: Path | None = DataDirOpt, database_url: str | None = DbOpt,
) -> None:
    """New agent CA; the old one stays trusted until it expires and cross-signs the new one.

    Restart the gateway (every node) afterwards: it then issues server and agent
    certificates from the new CA. Enrolled agents keep working (they verify the
    gateway through the cross certificate) and get certificates of the new CA at
    their next renewal.
    """
    from audit.log import AuditLog
    from gateway.channel.ca import rotate_agent_ca
    from printgate.cli.schema_guard import schema_database
    from printgate.domain import AuditEventIn, event_types
    from printgate.errors import PrintgateError

    settings = Settings.load(config)
    ca_dir = (data_dir or settings.gateway.key_directory) / "agent-ca"

    async def run() -> tuple[str, str]:
        async with schema_database(database_url or settings.database_url, config, url_option=bool(database_url)) as db:
            old_id, new_id = rotate_agent_ca(ca_dir)
            await AuditLog(db, None).append(AuditEventIn(
                type=event_types.KEYS_ROTATED, actor=actor,
                details={"use": "agent-ca", "old_key_id": old_id, "new_key_id": new_id},
            ))
            return old_id, new_id

    try:
        old_id, new_id = asyncio.run(run())
    except PrintgateError as exc:
        typer.echo(f"cannot rotate: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"agent CA rotated: new CA {new_id} ({ca_dir}/agent-ca.crt); the old CA {old_id} stays trusted "
               f"until it expires ({ca_dir}/previous/); restart the gateway (every node) to issue from the new CA")


_AFTER_ROTATION = {
    "relay-ca": "session certificates of the old CA are accepted until its overlap ends; every node follows "
                "within a second (shared key directory)",
    "relay-host-key": "connected agents receive the new trust set (signed by a key they trust) before their next "
                      "command; every node serves the new host key to new connections within a second",
    "command-signing": "connected agents receive the new trust set, signed by the old key, before the first "
                       "command signed by the new one; agents offline for longer than the overlap must enrol again",
    "session-ca": "give browsers dwa-ca/trusted-cas.pem (old and new CA) now; restart the gateway (every node) "
                  "to serve session hosts from the new CA",
}


def _rotate_command(use: KeyUse) -> None:
    @rotate_app.command(use)
    def rotate(
        actor: str = typer.Option("cli", help="who rotates (recorded in the audit log)"),
        overlap_seconds: float = typer.Option(
            86400.0, min=0.0, max=90 * 86400.0,
            help="the old key stays trusted this long after the rotation (agents offline longer than this "
                 "cannot follow a command-signing rotation)"),
        config: Path | None = ConfigOpt, data_dir: Path | None = DataDirOpt, database_url: str | None = DbOpt,
    ) -> None:
        from audit.log import AuditLog
        from printgate.cli.schema_guard import schema_database
        from printgate.domain import AuditEventIn, event_types
        from printgate.errors import PrintgateError
        from printgate.keys import FileKeyStore

        settings = Settings.load(config)
        store = FileKeyStore(data_dir or settings.gateway.key_directory)

        async def run() -> Rotation:
            async with schema_database(database_url or settings.database_url, config, url_option=bool(database_url)) as db:
                rotation = store.rotate(use, overlap=timedelta(seconds=overlap_seconds))
                await AuditLog(db, None).append(AuditEventIn(
                    type=event_types.KEYS_ROTATED, actor=actor,
                    details={"use": use, "old_key_id": rotation.old.key_id, "new_key_id": rotation.new.key_id,
                             "old_not_after": rotation.old.validity().split(" .. ")[1],
                             "new_not_before": rotation.new.validity().split(" .. ")[0]},
                ))
                return rotation

        try:
            rotation = asyncio.run(run())
        except PrintgateError as exc:
            typer.echo(f"cannot rotate: {exc.message}", err=True)
            raise typer.Exit(2) from exc
        typer.echo(f"{use} rotated: new key {rotation.new.key_id} ({store.path(use)}); the old key "
                   f"{rotation.old.key_id} stays trusted until {rotation.old.validity().split(' .. ')[1]}; "
                   f"{_AFTER_ROTATION[use]}")

    rotate.__doc__ = (f"New {use} key; the old one stays trusted for --overlap-seconds (default a day). Audited "
                      "(keys.rotated).")


for _use in ROTATABLE:
    _rotate_command(_use)


@app.command("end-overlap")
def end_overlap(
    use: str = typer.Argument(..., help=f"whose retired keys: {', '.join(ROTATABLE)}"),
    actor: str = typer.Option("cli", help="who ends it (recorded in the audit log)"),
    config: Path | None = ConfigOpt, data_dir: Path | None = DataDirOpt, database_url: str | None = DbOpt,
) -> None:
    """Stop trusting a use's retired keys now, before their overlap ends (every node and agent has the new
    key: `printgate keys list`, the agents' logs agent.trust_set.accepted). Audited (keys.overlap_ended)."""
    from audit.log import AuditLog
    from printgate.cli.schema_guard import schema_database
    from printgate.domain import AuditEventIn, event_types
    from printgate.errors import PrintgateError
    from printgate.keys import FileKeyStore

    if use not in ROTATABLE:
        typer.echo(f"cannot end the overlap: {use!r} is not one of {', '.join(ROTATABLE)}", err=True)
        raise typer.Exit(2)
    key_use = cast("KeyUse", use)  # checked just above
    settings = Settings.load(config)
    store = FileKeyStore(data_dir or settings.gateway.key_directory)

    async def run() -> list[str]:
        async with schema_database(database_url or settings.database_url, config, url_option=bool(database_url)) as db:
            ended = [r.key_id for r in store.end_overlap(key_use)]
            if ended:
                await AuditLog(db, None).append(AuditEventIn(
                    type=event_types.KEYS_OVERLAP_ENDED, actor=actor, details={"use": use, "key_ids": ended}))
            return ended

    try:
        ended = asyncio.run(run())
    except PrintgateError as exc:
        typer.echo(f"cannot end the overlap: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"{use}: no longer trusted: {', '.join(ended)}" if ended else f"{use}: no retired key in its overlap")


@app.command("prune")
def prune(config: Path | None = ConfigOpt, data_dir: Path | None = DataDirOpt) -> None:
    """Forget retired keys whose overlap has ended (relay CA, host key, command-signing, session CA) and
    delete the private copies kept for them in retired/."""
    from printgate.errors import ConfigError
    from printgate.keys import FileKeyStore

    try:
        gone = FileKeyStore(_data_dir(config, data_dir)).prune()
    except ConfigError as exc:
        typer.echo(f"cannot prune: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    typer.echo("\n".join(f"forgot {r.use} key {r.key_id} (retired {r.validity().split(' .. ')[1]})" for r in gone)
               or "no retired key past its overlap")


def _cert_rows(path: Path, use: str) -> list[tuple[str, str, str, str]]:
    """One row per certificate in a PEM file (id: first 16 hex of its SHA-256 fingerprint)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError):
        return []
    return [(c.fingerprint(hashes.SHA256()).hex()[:16], use,
             f"{c.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ} .. {c.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}",
             str(path)) for c in certs]


@app.command("list")
def list_keys(config: Path | None = ConfigOpt, data_dir: Path | None = DataDirOpt) -> None:
    """Every key of this gateway: id, use, validity (not_before .. not_after), where it is kept."""
    from audit.checkpoint import Signer
    from audit.keyset import KEY_SET_FILE, load_key_set
    from printgate.errors import ConfigError
    from printgate.keys import KEY_FILES, MANIFEST_FILE, FileKeyStore

    ddir = _data_dir(config, data_dir)
    rows: list[tuple[str, str, str, str]] = []
    signing = None
    try:
        signing = Signer.load(ddir / SIGNING_KEY_FILE).key_id if (ddir / SIGNING_KEY_FILE).exists() else None
        if (ddir / KEY_SET_FILE).exists():
            for e in load_key_set(ddir / KEY_SET_FILE):
                use = "audit (signing)" if e.key_id == signing else "audit (verify only)"
                rows.append((e.key_id, use, e.validity(), str(ddir / KEY_SET_FILE)))
        elif signing is not None:
            rows.append((signing, "audit (signing)", "- .. -", str(ddir / SIGNING_KEY_FILE)))
    except ConfigError as exc:
        typer.echo(f"cannot read the audit keys: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    rows += _cert_rows(ddir / "agent-ca" / "agent-ca.crt", "agent-ca (issuing)")
    for old in sorted((ddir / "agent-ca" / "previous").glob("*.crt")):
        rows += _cert_rows(old, "agent-ca (verify only)")
    store = FileKeyStore(ddir)
    now = datetime.now(UTC)
    try:
        for rec in store.records():
            state = "current" if rec.current else "trusted in overlap" if rec.valid_at(now) else "expired"
            kept = rec.private_file or (KEY_FILES[rec.use] if rec.current else MANIFEST_FILE)
            rows.append((rec.key_id, f"{rec.use} ({state})", rec.validity(), str(ddir / kept)))
    except ConfigError as exc:
        typer.echo(f"cannot read the key directory: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    if not rows:
        typer.echo(f"no keys in {ddir} (the gateway creates them on first start)", err=True)
        raise typer.Exit(2)
    typer.echo(f"{'KEY ID':<16}  {'USE':<36}  {'VALID (not_before .. not_after)':<58}  FILE")
    for kid, use, validity, where in rows:
        typer.echo(f"{kid:<16}  {use:<36}  {validity:<58}  {where}")
