"""Alerts in CEF (ArcSight Common Event Format): which alert field goes to which CEF field.

The line itself (``CEF:0|printgate|printgate|<version>|<rule>|<title>|<severity>|<extension>``,
escaping per the CEF spec) and its RFC 5424 frame are made by ``integrations.syslog``;
here: the rule is the Signature ID, the title the Name, severity 1-4 maps to CEF 3/5/8/10,
and the extension carries the count, message, tenant, sequence range and source.
"""

from __future__ import annotations

from datetime import UTC

from alerting.engine import Alert

# Severity (1-4) -> CEF 0-10: low 3, medium 5, high 8, critical 10
CEF_SEVERITY = {1: 3, 2: 5, 3: 8, 4: 10}


def cef_severity(alert: Alert) -> int:
    return CEF_SEVERITY.get(alert.severity, 5)


def extension(alert: Alert) -> dict[str, str]:
    """The CEF extension keys (standard dictionary names where one fits, cs1..cs6 with labels
    for the rest)."""
    ext: dict[str, str] = {
        "rt": str(int(alert.last_at.astimezone(UTC).timestamp() * 1000)),
        "start": str(int(alert.first_at.astimezone(UTC).timestamp() * 1000)),
        "cnt": str(alert.count),
        "msg": alert.text,
        "externalId": alert.id,
        "cat": alert.category,
        "cs1Label": "dealer", "cs1": alert.dealer_id or "",
        "cs2Label": "customer", "cs2": alert.customer_id or "",
        "cs3Label": "kind", "cs3": alert.kind,
        "cs4Label": "subject", "cs4": alert.subject,
        "cn1Label": "firstSeq", "cn1": str(alert.first_seq),
        "cn2Label": "lastSeq", "cn2": str(alert.last_seq),
    }
    if alert.source_ip:
        ext["src"] = alert.source_ip
    device = alert.details.get("device_id")
    if isinstance(device, str) and device:
        ext["deviceExternalId"] = device
    return ext
