"""`printgate audit ...`: keygen, checkpoint, verify, export, prove, erase, prune, witness."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer

from printgate.cli.audit_witness import app as witness_app
from printgate.domain import event_types

app = typer.Typer(no_args_is_help=True, help="audit commands")
app.add_typer(witness_app, name="witness")

ConfigOpt = typer.Option(None, help="TOML settings file")
DbOpt = typer.Option(None, "--database-url", help="database URL (default: from settings)")


@app.callback()
def _logging() -> None:
    """Operator logs go to stderr so stdout stays machine-readable (JSON proofs)."""
    from printgate.logs import configure_logging

    configure_logging("warning", json=True)


@app.command()
def keygen(out: Path = typer.Option(..., help="private key file to write (0600); the public key goes to OUT.pub")) -> None:
    """Create the Ed25519 key pair that signs checkpoints."""
    from audit.checkpoint import Signer

    if out.exists():
        typer.echo(f"{out} exists; refusing to overwrite a signing key", err=True)
        raise typer.Exit(2)
    signer = Signer.generate()
    signer.save(out)
    pub = out.with_name(out.name + ".pub")
    pub.write_text(signer.public_key_pem())
    typer.echo(f"private key {out} (keep secret), public key {pub} (give to verifiers), key id {signer.key_id}")


@app.command()
def checkpoint(
    key: Path = typer.Option(..., help="Ed25519 private key (from `audit keygen`)"),
    config: Path | None = ConfigOpt, database_url: str | None = DbOpt,
) -> None:
    """Sign a tree head over every record now in the store."""
    from audit.checkpoint import Signer
    from audit.log import AuditLog
    from printgate.cli.schema_guard import command_database

    async def run() -> None:
        async with command_database(config, database_url) as db:
            cp = await AuditLog(db, Signer.load(key)).checkpoint()
        if cp is None:
            typer.echo("the audit log is empty; nothing to sign")
        else:
            typer.echo(json.dumps(cp.to_json(), indent=2))

    asyncio.run(run())


@app.command()
def verify(
    public_key: Path | None = typer.Option(None, help="checkpoint public key (PEM): the one key that signed "
                                           "every checkpoint"),
    key_set: Path | None = typer.Option(None, help="key set: <data_dir>/audit-keys.json (every audit key with "
                                        "its validity period, kept by `printgate keys rotate audit`), a PEM "
                                        "public key, or a directory of those"),
    file: Path | None = typer.Option(None, help="verify this export instead of the live store"),
    require_anchored: bool = typer.Option(False, help="fail if records follow the last signed checkpoint"),
    anchor: list[Path] = typer.Option([], help="checkpoint JSON kept elsewhere (from `audit checkpoint`, or a "
                                      "witness's state file); the log must still contain what it signs "
                                      "(repeatable)"),
    witness_key: list[Path] = typer.Option([], help="public key of a witness (`audit witness keygen`): the log "
                                           "must match every checkpoint it cosigned (repeatable)"),
    config: Path | None = ConfigOpt, database_url: str | None = DbOpt,
) -> None:
    """Verify the chain, checkpoints, personal values and witness cosignatures; exit 1 on any damage."""
    from audit.checkpoint import Checkpoint, CheckpointVerifier
    from audit.cosignature import Cosignature, WitnessVerifier
    from audit.damage import Damage
    from audit.keyset import AuditKeySet, load_key_set
    from audit.verify import VerifyReport
    from printgate.errors import ConfigError

    if (public_key is None) == (key_set is None):
        typer.echo("give --key-set (every audit key with its validity, after a rotation) or --public-key "
                   "(a single key), not both", err=True)
        raise typer.Exit(2)
    verifier: CheckpointVerifier | AuditKeySet
    try:
        verifier = CheckpointVerifier.load(public_key) if public_key is not None else load_key_set(key_set)  # type: ignore[arg-type]
        witnesses = [WitnessVerifier.load(p) for p in witness_key]
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    anchors: list[Checkpoint] = []
    kept: list[Cosignature] = []
    try:
        for p in anchor:
            data = json.loads(p.read_text())
            if isinstance(data, dict) and "cosignature" in data:  # a witness's state file
                kept.append(Cosignature.from_json(data["cosignature"]))
                if kept[-1].witness not in {w.key_id for w in witnesses}:
                    anchors.append(kept.pop().checkpoint)
            else:
                anchors.append(Checkpoint.from_json(data))
    except (OSError, ValueError, AttributeError) as exc:
        typer.echo(f"cannot read anchor checkpoint: {exc}", err=True)
        raise typer.Exit(2) from exc
    report: VerifyReport
    if file is not None:
        from audit.stream import read_export
        from audit.verify import verify_items

        report = verify_items(read_export(file), verifier, anchors=anchors, witnesses=witnesses,
                              cosignatures=kept)
    else:
        from audit.export import verify_store
        from printgate.cli.schema_guard import command_database

        async def run() -> VerifyReport:
            async with command_database(config, database_url) as db:
                return await verify_store(db, verifier, anchors=anchors, witnesses=witnesses, cosignatures=kept)

        report = asyncio.run(run())
    summary = (f"{report.records} records, {report.tombstones} pruned, {report.checkpoints} checkpoints, "
               f"{report.anchored} anchored, {report.personal_checked} personal values checked")
    if not report.ok:
        typer.echo(f"FAILED: {report.problem}", err=True)
        typer.echo(summary, err=True)
        if public_key is not None and report.problem is not None and \
                report.problem.kind is Damage.FORGED_CHECKPOINT:
            typer.echo("hint: if the audit key was rotated (printgate keys rotate audit), checkpoints before the "
                       "rotation carry the old key: verify with --key-set <key_dir>/audit-keys.json (every "
                       "audit key with its validity) instead of --public-key; only a failure with --key-set "
                       "means a forged checkpoint", err=True)
        raise typer.Exit(1)
    from audit.chain import GENESIS

    if report.head == GENESIS and not report.records:
        typer.echo(f"OK: {summary}; no records, so no chain head yet")
    elif report.head == GENESIS:
        # a dealer's or customer's export: records with inclusion proofs, not the whole chain
        typer.echo(f"OK: {summary}; a filtered (one tenant's) export: each record is proven by its inclusion "
                   "proof under a signed checkpoint, so there is no chain head of its own (shown as "
                   f"{GENESIS[:8]}...); root of the newest checkpoint {report.root or '-'}")
    else:
        typer.echo(f"OK: {summary}; head {report.head}")
    last = report.records + report.tombstones
    for mark in report.witnessed:
        typer.echo(f"witness {mark.witness}: newest cosigned checkpoint {mark.tree_size} (cosigned "
                   f"{mark.cosigned_at}); {last - mark.tree_size} records after it not yet witnessed")
    if report.unanchored:
        typer.echo(f"warning: {report.unanchored} records after the last signed checkpoint", err=True)
        if require_anchored:
            raise typer.Exit(1)


@app.command()
def export(
    out: Path = typer.Option(..., help="file to write"),
    format: str = typer.Option("jsonl", help="jsonl (verifiable, with checkpoints/proofs) or cef"),
    dealer: str | None = typer.Option(None, help="only this dealer's records (with inclusion proofs); id or name"),
    customer: str | None = typer.Option(None, help="only this customer's records (with inclusion proofs); id or "
                                        "name"),
    with_personal: bool = typer.Option(False, help="include clear personal values and salts"),
    actor: str = typer.Option("cli", help="who asks for the export (recorded in the audit log)"),
    config: Path | None = ConfigOpt, database_url: str | None = DbOpt,
) -> None:
    """Export the audit log (the export itself is audited)."""
    from audit.export import export_cef, export_jsonl
    from audit.log import AuditLog
    from audit.query import AuditFilter
    from printgate.cli.schema_guard import command_database
    from printgate.cli.tenant_refs import customer_id_of, dealer_id_of
    from printgate.domain import AuditEventIn
    from printgate.store.audit import tenant_in_log

    if format not in ("jsonl", "cef"):
        typer.echo("--format must be jsonl or cef", err=True)
        raise typer.Exit(2)

    async def run() -> Any:
        async with command_database(config, database_url) as db:
            subset = None
            if dealer or customer:
                async with db.session() as s:  # an unknown tenant: exit 2 with the candidates, no empty file
                    dealer_id = (dealer if dealer and await tenant_in_log(s, dealer_id=dealer)
                                 else await dealer_id_of(s, dealer) if dealer else None)
                    customer_id = (customer if customer and await tenant_in_log(s, customer_id=customer)
                                   else await customer_id_of(s, customer) if customer else None)
                subset = AuditFilter(dealer_id=dealer_id, customer_id=customer_id, limit=10**9)
            if format == "cef":
                summary = await export_cef(db, out, subset or AuditFilter(limit=10**9))
            else:
                summary = await export_jsonl(db, out, subset=subset, with_personal=with_personal)
            await AuditLog(db, None).append(AuditEventIn(
                type=event_types.AUDIT_EXPORTED, actor=actor, dealer_id=subset.dealer_id if subset else None,
                customer_id=subset.customer_id if subset else None,
                details={"format": format, "records": summary.records, "with_personal": with_personal},
            ))
            return summary

    from printgate.errors import PrintgateError

    try:
        summary = asyncio.run(run())
    except PrintgateError as exc:  # e.g. a tenant export before the first signed checkpoint
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"wrote {summary.records} records to {out}")


@app.command()
def prove(
    seq: int | None = typer.Option(None, help="inclusion proof for this record"),
    tree_size: int | None = typer.Option(None, help="tree size (default: newest checkpoint)"),
    old_size: int | None = typer.Option(None, "--from", help="consistency proof from this size"),
    config: Path | None = ConfigOpt, database_url: str | None = DbOpt,
) -> None:
    """Print an inclusion proof (--seq) or a consistency proof (--from, --tree-size)."""
    from audit.proofs import consistency_proof, inclusion_proof
    from printgate.cli.schema_guard import command_database

    async def run() -> dict[str, object]:
        async with command_database(config, database_url) as db:
            if seq is not None:
                return await inclusion_proof(db, seq, tree_size)
            if old_size is not None:
                return await consistency_proof(db, old_size, tree_size)
        typer.echo("give --seq N or --from N", err=True)
        raise typer.Exit(2)

    typer.echo(json.dumps(asyncio.run(run()), indent=2))


@app.command()
def prune(
    keep_days: int = typer.Option(..., help="keep this many days of the tenant's events"),
    dealer: str | None = typer.Option(None, help="dealer whose old events are pruned"),
    customer: str | None = typer.Option(None, help="customer whose old events are pruned"),
    actor: str = typer.Option("cli", help="who applies the retention (recorded)"),
    config: Path | None = ConfigOpt, database_url: str | None = DbOpt,
) -> None:
    """Apply retention: drop the content of a tenant's records older than KEEP_DAYS
    (hashes stay, so the log still verifies; only records under a signed checkpoint)."""
    from datetime import UTC, datetime

    from audit.log import AuditLog
    from audit.retention import RetentionPolicy
    from audit.retention import prune as apply_retention
    from printgate.cli.schema_guard import command_database

    policy = RetentionPolicy(keep_days=keep_days, dealer_id=dealer, customer_id=customer)

    async def run() -> int:
        async with command_database(config, database_url) as db:
            result = await apply_retention(AuditLog(db, None), policy, now=datetime.now(UTC), actor=actor)
            return result.pruned

    typer.echo(f"pruned {asyncio.run(run())} records")


@app.command()
def erase(
    actor_value: str | None = typer.Option(None, "--actor", help="erase this person's clear values"),
    source_ip: str | None = typer.Option(None, help="erase records carrying this source IP"),
    requested_by: str = typer.Option(..., help="who asks (e.g. the data protection officer)"),
    config: Path | None = ConfigOpt, database_url: str | None = DbOpt,
) -> None:
    """GDPR erasure of personal values (and, for --actor, the person's account: e-mail and
    name pseudonymised, sign-in disabled); the chain keeps only salted hashes and still verifies."""
    from audit.log import AuditLog
    from audit.pseudonymise import Erasure, erase
    from printgate.cli.schema_guard import command_database

    if (actor_value is None) == (source_ip is None):
        typer.echo("give exactly one of --actor or --source-ip", err=True)
        raise typer.Exit(2)
    field, value = ("actor", actor_value) if actor_value is not None else ("source_ip", source_ip or "")

    async def run() -> Erasure:
        async with command_database(config, database_url) as db:
            return await erase(AuditLog(db, None), field=field, value=value, requested_by=requested_by)

    done = asyncio.run(run())
    typer.echo(f"erased the personal values of {done.records} records (audit record {done.record_seq})")
    if done.user_id is not None:
        typer.echo(f"account {done.user_id} pseudonymised and disabled")
    if not done.purged:
        typer.echo(f"warning: {done.purge_detail}; run the erasure again when the gateway is idle", err=True)
        raise typer.Exit(3)
