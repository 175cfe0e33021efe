"""Valid logs always verify, whatever the events hold."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.checkpoint import Signer
from audit.export import export_jsonl, verify_store
from audit.log import AuditLog
from audit.stream import read_export
from audit.verify import verify_items
from printgate.domain import AuditEventIn, Outcome
from printgate.store.db import Database, migrate

ids = st.none() | st.text(min_size=1, max_size=12)
json_leaf = (st.none() | st.booleans() | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
             | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
details = st.dictionaries(st.text(max_size=10), st.recursive(
    json_leaf, lambda k: st.lists(k, max_size=3) | st.dictionaries(st.text(max_size=6), k, max_size=3),
    max_leaves=8), max_size=5)
event = st.builds(
    AuditEventIn, type=st.text(min_size=1, max_size=30), outcome=st.sampled_from(list(Outcome)),
    actor=ids, dealer_id=ids, customer_id=ids, device_id=ids, session_id=ids, source_ip=ids,
    details=details, personal=st.dictionaries(st.sampled_from(["login_name", "email", "phone"]),
                                              st.text(max_size=15), max_size=2),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(batches=st.lists(st.lists(event, min_size=1, max_size=6), min_size=1, max_size=4),
       every=st.integers(min_value=1, max_value=7))
async def test_any_sequence_of_appends_verifies_in_store_and_export(
    batches: list[list[AuditEventIn]], every: int
) -> None:
    signer = Signer.generate()
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite+aiosqlite:///{d}/v.db"
        await migrate(url)
        async with Database(url) as db:
            log = AuditLog(db, signer, checkpoint_every=every)
            total = 0
            for batch in batches:
                total += len(await log.append_many(batch))
            await log.checkpoint()
            report = await verify_store(db, signer.verifier())
            assert report.ok, report.problem
            assert report.records == total == report.anchored
            await export_jsonl(db, Path(d) / "e.jsonl", with_personal=True)
        exported = verify_items(read_export(Path(d) / "e.jsonl"), signer.verifier())
        assert exported.ok, exported.problem
        assert exported.head == report.head and exported.root == report.root
