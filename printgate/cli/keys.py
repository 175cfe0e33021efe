"""`printgate keys ...`: list the gateway's keys, rotate the audit signing key and the agent CA.

The audit signing key lives in ``<data_dir>/audit-signing.key`` (0600) and every
public key it ever had in ``<data_dir>/audit-keys.json`` (the key set given to
``printgate audit verify --key-set``). Nodes of one gateway share these files
(docs/scale-out.md, "Keys").
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from audit.keyset import PUBLIC_KEY_FILE, SIGNING_KEY_FILE
from printgate.settings import Settings

if TYPE_CHECKING:
    from audit.checkpoint import Signer

app = typer.Typer(no_args_is_help=True, help="list and rotate the gateway's keys")
rotate_app = typer.Typer(no_args_is_help=True, help="rotate a key (audit, agent-ca)")
app.add_typer(rotate_app, name="rotate")

ConfigOpt = typer.Option(None, help="TOML settings file")
DataDirOpt = typer.Option(None, "--data-dir", help="gateway data directory (default: from settings)")
DbOpt = typer.Option(None, "--database-url", help="database URL (default: from settings)")



@app.callback()
def _logging() -> None:
    from printgate.logs import configure_logging

    configure_logging("warning", json=True)


def _data_dir(config: Path | None, data_dir: Path | None) -> Path:
    return data_dir or Settings.load(config).gateway.data_dir


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
    from audit.keyset import KEY_SET_FILE, AuditKeySet, KeyEntry, load_key_set
    from audit.log import AuditLog
    from printgate.cli.schema_guard import schema_database
    from printgate.domain import AuditEventIn, event_types
    from printgate.errors import ConfigError, PrintgateError

    settings = Settings.load(config)
    ddir = data_dir or settings.gateway.data_dir
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
        async with schema_database(database_url or settings.database_url) as db:
            await AuditLog(db, old).checkpoint()  # the old key's last word: everything so far
            new = Signer.generate()
            since = datetime.now(UTC)
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
               f"`printgate audit verify --key-set {set_path}`); witnesses pin the new key from {ddir / PUBLIC_KEY_FILE}")


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
    ca_dir = (data_dir or settings.gateway.data_dir) / "agent-ca"

    async def run() -> tuple[str, str]:
        async with schema_database(database_url or settings.database_url) as db:
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


def _ssh_rows(path: Path, use: str) -> list[tuple[str, str, str, str]]:
    """The relay's SSH CA (id: first 16 hex of SHA-256 over its public key blob; no expiry)."""
    import asyncssh

    try:
        blob = asyncssh.read_private_key(path).public_data
    except (OSError, ValueError, asyncssh.KeyImportError):
        return []
    return [(hashlib.sha256(blob).hexdigest()[:16], use, "- .. -", str(path))]


@app.command("list")
def list_keys(config: Path | None = ConfigOpt, data_dir: Path | None = DataDirOpt) -> None:
    """Every key of this gateway: id, use, validity (not_before .. not_after), where it is kept."""
    from audit.checkpoint import Signer
    from audit.keyset import KEY_SET_FILE, load_key_set
    from printgate.errors import ConfigError

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
    rows += _ssh_rows(ddir / "relay_ssh_ca", "relay-ssh-ca")
    if not rows:
        typer.echo(f"no keys in {ddir} (the gateway creates them on first start)", err=True)
        raise typer.Exit(2)
    typer.echo(f"{'KEY ID':<16}  {'USE':<24}  {'VALID (not_before .. not_after)':<58}  FILE")
    for kid, use, validity, where in rows:
        typer.echo(f"{kid:<16}  {use:<24}  {validity:<58}  {where}")
