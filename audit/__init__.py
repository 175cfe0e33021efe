"""printgate: audit -- the tamper-evident audit trail (docs/architecture.md, audit flow).

Public interface:

* ``audit.log.AuditLog(db, signer, *, checkpoint_every=1000)`` -- the
  ``AuditSink``: ``await append(AuditEventIn) -> AuditRecord``,
  ``await append_many([...]) -> list[AuditRecord]``, ``await checkpoint()``.
* ``audit.checkpoint.Signer.generate() / .load(path) / .save(path) /
  .public_key_pem()``; ``CheckpointVerifier.load(pub_path)``; ``FileSigner(path)``
  (re-reads its key file after ``printgate keys rotate audit``).
* ``audit.keyset.load_key_set(path) -> AuditKeySet`` (every audit key with its
  validity; a verifier wherever a ``CheckpointVerifier`` is accepted),
  ``open_gateway_signer(data_dir)``.
* ``audit.export.verify_store(db, verifier)``, ``audit.verify.verify_items(
  audit.stream.read_export(path), verifier)`` -> ``VerifyReport`` naming the
  first bad record and the ``Damage`` kind.
* ``audit.export.export_jsonl / export_cef``, ``audit.syslog.SyslogForwarder``,
  ``audit.retention.prune``, ``audit.pseudonymise.erase_subject``,
  ``audit.query.search / scope_for``, ``audit.proofs``, ``printgate.domain.event_types`` (every audit event type).

* ``audit.pseudonymise.erase`` (GDPR: values, the person's account, purge);
  ``audit.cosignature`` and ``audit.witness`` (a customer's witness that
  cosigns checkpoints; ``verify_items(..., witnesses=...)`` honours them).

Formats: ``audit.chain`` (entry schema and hashing), ``audit.canonical``
(RFC 8785), ``audit.merkle`` (RFC 6962/9162), ``audit.checkpoint`` (signed
tree heads), ``audit.stream`` (export lines).
"""
