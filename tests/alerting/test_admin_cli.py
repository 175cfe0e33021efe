"""`printgate admin security-alerts`: subscribe, list, unsubscribe, each audited; bad input refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from alerting.secrets import unseal
from audit.query import AuditFilter, search
from printgate.store import security_subscriptions as subs
from printgate.store.db import Database
from printgate.testing.tenancy import Tenancy
from printgate.vault.kms import FileKms

PRINTGATE = str(Path(sys.executable).with_name("printgate"))


KEY = Path(tempfile.mkdtemp(prefix="printgate-cli-")) / "vault-master.key"


def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PRINTGATE_")}
    return subprocess.run([PRINTGATE, "admin", "security-alerts", *args], capture_output=True, text=True,
                          timeout=60, env={**clean, "COLUMNS": "200", "PRINTGATE_DATABASE_URL": url,
                                           "PRINTGATE_GATEWAY__VAULT_MASTER_KEY_FILE": str(KEY)})


async def test_subscribe_list_unsubscribe_audited(db: Database, database_url: str) -> None:
    await Tenancy().chain(dealer="d1", customer="cA", site="sA").dealer("d2").save(db)
    added = run(database_url, "subscribe", "--dealer", "d1", "--customer", "cA", "--channel", "webhook",
                "--target", "https://soc.example.com/hook", "--categories", "sign_in,channel",
                "--min-severity", "high", "--contact", "Acme SOC")
    assert added.returncode == 0, added.stderr
    assert "webhook signing secret (shown once" in added.stdout
    sub_id = added.stdout.split()[1].rstrip(":")
    shown = added.stdout.rsplit(": ", 1)[1].strip()
    async with db.session() as s:
        stored = await subs.get_subscription(s, sub_id)
    assert stored is not None and stored.secret and shown not in stored.secret  # sealed, not in the clear
    assert await unseal(FileKms(KEY), stored.secret, dealer_id="d1", target="https://soc.example.com/hook") == shown
    listed = json.loads(run(database_url, "list", "--dealer", "d1", "--json").stdout)
    assert [(x["id"], x["customer_id"], x["categories"], x["min_severity"]) for x in listed] == [
        (sub_id, "cA", ["sign_in", "channel"], "high")]
    assert run(database_url, "list", "--dealer", "d2").stdout.strip() == "no security-alert subscriptions"

    for bad, says in [
        (["--channel", "pager", "--target", "x"], "unknown channel 'pager'"),
        (["--channel", "email", "--target", "not-an-address"], "is not an e-mail address"),
        (["--channel", "syslog", "--target", "udp://h:514"], "use tls://host:port or tcp://host:port"),
        (["--channel", "email", "--target", "a@b.example", "--categories", "weather"], "unknown categories weather"),
        (["--channel", "email", "--target", "a@b.example", "--customer", "cA", "--dealer", "d2"],
         "dealer d2 has no customer cA"),
    ]:
        args = ["subscribe", *([] if "--dealer" in bad else ["--dealer", "d1"]), *bad]
        refused = run(database_url, *args)
        assert refused.returncode == 2 and says in refused.stderr and "Traceback" not in refused.stderr, refused.stderr

    gone = run(database_url, "unsubscribe", sub_id)
    assert gone.returncode == 0, gone.stderr
    async with db.session() as s:
        assert await subs.list_subscriptions(s, dealer_id="d1") == []
    records = await search(db, AuditFilter(types=("security_alert.subscription.added",
                                                  "security_alert.subscription.removed")))
    assert [(r.type, r.customer_id, r.details["subscription"]) for r in records] == [
        ("security_alert.subscription.added", "cA", sub_id),
        ("security_alert.subscription.removed", "cA", sub_id)]
    assert records[0].actor and records[0].actor.startswith("cli:")
