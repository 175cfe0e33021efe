# ruff: noqa
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeviceStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEVICE_STATUS_UNSPECIFIED: _ClassVar[DeviceStatus]
    DEVICE_STATUS_PRINTER: _ClassVar[DeviceStatus]
    DEVICE_STATUS_EXCLUDED: _ClassVar[DeviceStatus]
DEVICE_STATUS_UNSPECIFIED: DeviceStatus
DEVICE_STATUS_PRINTER: DeviceStatus
DEVICE_STATUS_EXCLUDED: DeviceStatus

class EnrollRequest(_message.Message):
    __slots__ = ("token", "csr_pem", "hostname", "agent_version")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    token: str
    csr_pem: bytes
    hostname: str
    agent_version: str
    def __init__(self, token: _Optional[str] = ..., csr_pem: _Optional[bytes] = ..., hostname: _Optional[str] = ..., agent_version: _Optional[str] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("agent_id", "site_id", "client_cert_pem", "ca_chain_pem", "relay_address", "relay_host_key_fingerprint", "command_verify_key", "cert_not_after_ms", "mqtt_url")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_CERT_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_CHAIN_PEM_FIELD_NUMBER: _ClassVar[int]
    RELAY_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RELAY_HOST_KEY_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    COMMAND_VERIFY_KEY_FIELD_NUMBER: _ClassVar[int]
    CERT_NOT_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    MQTT_URL_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    site_id: str
    client_cert_pem: bytes
    ca_chain_pem: bytes
    relay_address: str
    relay_host_key_fingerprint: str
    command_verify_key: bytes
    cert_not_after_ms: int
    mqtt_url: str
    def __init__(self, agent_id: _Optional[str] = ..., site_id: _Optional[str] = ..., client_cert_pem: _Optional[bytes] = ..., ca_chain_pem: _Optional[bytes] = ..., relay_address: _Optional[str] = ..., relay_host_key_fingerprint: _Optional[str] = ..., command_verify_key: _Optional[bytes] = ..., cert_not_after_ms: _Optional[int] = ..., mqtt_url: _Optional[str] = ...) -> None: ...

class RenewRequest(_message.Message):
    __slots__ = ("csr_pem",)
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    csr_pem: bytes
    def __init__(self, csr_pem: _Optional[bytes] = ...) -> None: ...

class RenewResponse(_message.Message):
    __slots__ = ("client_cert_pem", "cert_not_after_ms")
    CLIENT_CERT_PEM_FIELD_NUMBER: _ClassVar[int]
    CERT_NOT_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    client_cert_pem: bytes
    cert_not_after_ms: int
    def __init__(self, client_cert_pem: _Optional[bytes] = ..., cert_not_after_ms: _Optional[int] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("agent_version", "queue_length", "printers", "sent_at_ms", "relay_refusals", "tasks", "oldest_queued_ms", "drops", "degraded", "queued_bytes")
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    QUEUE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    PRINTERS_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    RELAY_REFUSALS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    OLDEST_QUEUED_MS_FIELD_NUMBER: _ClassVar[int]
    DROPS_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    QUEUED_BYTES_FIELD_NUMBER: _ClassVar[int]
    agent_version: str
    queue_length: int
    printers: int
    sent_at_ms: int
    relay_refusals: _containers.RepeatedCompositeFieldContainer[RelayRefusal]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskHealth]
    oldest_queued_ms: int
    drops: _containers.RepeatedCompositeFieldContainer[ReadingsDrop]
    degraded: str
    queued_bytes: int
    def __init__(self, agent_version: _Optional[str] = ..., queue_length: _Optional[int] = ..., printers: _Optional[int] = ..., sent_at_ms: _Optional[int] = ..., relay_refusals: _Optional[_Iterable[_Union[RelayRefusal, _Mapping]]] = ..., tasks: _Optional[_Iterable[_Union[TaskHealth, _Mapping]]] = ..., oldest_queued_ms: _Optional[int] = ..., drops: _Optional[_Iterable[_Union[ReadingsDrop, _Mapping]]] = ..., degraded: _Optional[str] = ..., queued_bytes: _Optional[int] = ...) -> None: ...

class TaskHealth(_message.Message):
    __slots__ = ("name", "state", "restarts", "last_error", "last_error_at_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_AT_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: str
    restarts: int
    last_error: str
    last_error_at_ms: int
    def __init__(self, name: _Optional[str] = ..., state: _Optional[str] = ..., restarts: _Optional[int] = ..., last_error: _Optional[str] = ..., last_error_at_ms: _Optional[int] = ...) -> None: ...

class ReadingsDrop(_message.Message):
    __slots__ = ("ip", "kind", "reason", "count", "first_at_ms", "last_at_ms")
    IP_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_AT_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_AT_MS_FIELD_NUMBER: _ClassVar[int]
    ip: str
    kind: str
    reason: str
    count: int
    first_at_ms: int
    last_at_ms: int
    def __init__(self, ip: _Optional[str] = ..., kind: _Optional[str] = ..., reason: _Optional[str] = ..., count: _Optional[int] = ..., first_at_ms: _Optional[int] = ..., last_at_ms: _Optional[int] = ...) -> None: ...

class RelayRefusal(_message.Message):
    __slots__ = ("session_id", "kind", "detail", "at_ms")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    kind: str
    detail: str
    at_ms: int
    def __init__(self, session_id: _Optional[str] = ..., kind: _Optional[str] = ..., detail: _Optional[str] = ..., at_ms: _Optional[int] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("server_time_ms",)
    SERVER_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    server_time_ms: int
    def __init__(self, server_time_ms: _Optional[int] = ...) -> None: ...

class DiscoveredDevice(_message.Message):
    __slots__ = ("ip", "ews_port", "ews_scheme", "serial", "mac", "model", "sys_object_id", "vendor", "sys_name", "location", "tls_fingerprint", "status", "excluded_reason", "ews_probe")
    IP_FIELD_NUMBER: _ClassVar[int]
    EWS_PORT_FIELD_NUMBER: _ClassVar[int]
    EWS_SCHEME_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SYS_OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    VENDOR_FIELD_NUMBER: _ClassVar[int]
    SYS_NAME_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    TLS_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_REASON_FIELD_NUMBER: _ClassVar[int]
    EWS_PROBE_FIELD_NUMBER: _ClassVar[int]
    ip: str
    ews_port: int
    ews_scheme: str
    serial: str
    mac: str
    model: str
    sys_object_id: str
    vendor: str
    sys_name: str
    location: str
    tls_fingerprint: str
    status: DeviceStatus
    excluded_reason: str
    ews_probe: str
    def __init__(self, ip: _Optional[str] = ..., ews_port: _Optional[int] = ..., ews_scheme: _Optional[str] = ..., serial: _Optional[str] = ..., mac: _Optional[str] = ..., model: _Optional[str] = ..., sys_object_id: _Optional[str] = ..., vendor: _Optional[str] = ..., sys_name: _Optional[str] = ..., location: _Optional[str] = ..., tls_fingerprint: _Optional[str] = ..., status: _Optional[_Union[DeviceStatus, str]] = ..., excluded_reason: _Optional[str] = ..., ews_probe: _Optional[str] = ...) -> None: ...

class Inventory(_message.Message):
    __slots__ = ("site_id", "devices", "scanned_at_ms")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    SCANNED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    devices: _containers.RepeatedCompositeFieldContainer[DiscoveredDevice]
    scanned_at_ms: int
    def __init__(self, site_id: _Optional[str] = ..., devices: _Optional[_Iterable[_Union[DiscoveredDevice, _Mapping]]] = ..., scanned_at_ms: _Optional[int] = ...) -> None: ...

class ReadingsBatch(_message.Message):
    __slots__ = ("site_id", "batch_id", "payload_json", "version", "readings")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    READINGS_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    batch_id: str
    payload_json: bytes
    version: int
    readings: _containers.RepeatedCompositeFieldContainer[Reading]
    def __init__(self, site_id: _Optional[str] = ..., batch_id: _Optional[str] = ..., payload_json: _Optional[bytes] = ..., version: _Optional[int] = ..., readings: _Optional[_Iterable[_Union[Reading, _Mapping]]] = ...) -> None: ...

class Reading(_message.Message):
    __slots__ = ("id", "ip", "taken_at_us", "kinds", "serial", "counters", "supplies", "alerts", "status", "errors")
    ID_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    TAKEN_AT_US_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    SUPPLIES_FIELD_NUMBER: _ClassVar[int]
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    id: str
    ip: str
    taken_at_us: int
    kinds: _containers.RepeatedScalarFieldContainer[str]
    serial: str
    counters: _containers.RepeatedCompositeFieldContainer[Counter]
    supplies: _containers.RepeatedCompositeFieldContainer[Supply]
    alerts: _containers.RepeatedCompositeFieldContainer[Alert]
    status: PrinterStatus
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., ip: _Optional[str] = ..., taken_at_us: _Optional[int] = ..., kinds: _Optional[_Iterable[str]] = ..., serial: _Optional[str] = ..., counters: _Optional[_Iterable[_Union[Counter, _Mapping]]] = ..., supplies: _Optional[_Iterable[_Union[Supply, _Mapping]]] = ..., alerts: _Optional[_Iterable[_Union[Alert, _Mapping]]] = ..., status: _Optional[_Union[PrinterStatus, _Mapping]] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...

class Counter(_message.Message):
    __slots__ = ("name", "value", "unit")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: int
    unit: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[int] = ..., unit: _Optional[str] = ...) -> None: ...

class Supply(_message.Message):
    __slots__ = ("index", "description", "type", "colour", "unit", "max_capacity", "level", "state")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    COLOUR_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    MAX_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    index: int
    description: str
    type: str
    colour: str
    unit: str
    max_capacity: int
    level: int
    state: str
    def __init__(self, index: _Optional[int] = ..., description: _Optional[str] = ..., type: _Optional[str] = ..., colour: _Optional[str] = ..., unit: _Optional[str] = ..., max_capacity: _Optional[int] = ..., level: _Optional[int] = ..., state: _Optional[str] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("index", "severity", "group", "code", "description", "training_level")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TRAINING_LEVEL_FIELD_NUMBER: _ClassVar[int]
    index: int
    severity: str
    group: str
    code: str
    description: str
    training_level: str
    def __init__(self, index: _Optional[int] = ..., severity: _Optional[str] = ..., group: _Optional[str] = ..., code: _Optional[str] = ..., description: _Optional[str] = ..., training_level: _Optional[str] = ...) -> None: ...

class PrinterStatus(_message.Message):
    __slots__ = ("status", "errors", "device_status")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_STATUS_FIELD_NUMBER: _ClassVar[int]
    status: str
    errors: _containers.RepeatedScalarFieldContainer[str]
    device_status: str
    def __init__(self, status: _Optional[str] = ..., errors: _Optional[_Iterable[str]] = ..., device_status: _Optional[str] = ...) -> None: ...

class ReadingRejection(_message.Message):
    __slots__ = ("position", "reading_id", "reason")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    READING_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    position: int
    reading_id: str
    reason: str
    def __init__(self, position: _Optional[int] = ..., reading_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("id", "duplicate", "rejected", "stored")
    ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    id: str
    duplicate: bool
    rejected: _containers.RepeatedCompositeFieldContainer[ReadingRejection]
    stored: int
    def __init__(self, id: _Optional[str] = ..., duplicate: _Optional[bool] = ..., rejected: _Optional[_Iterable[_Union[ReadingRejection, _Mapping]]] = ..., stored: _Optional[int] = ...) -> None: ...

class CommandStreamRequest(_message.Message):
    __slots__ = ("agent_version",)
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    agent_version: str
    def __init__(self, agent_version: _Optional[str] = ...) -> None: ...

class CommandResult(_message.Message):
    __slots__ = ("command_id", "ok", "error_code", "message")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    ok: bool
    error_code: str
    message: str
    def __init__(self, command_id: _Optional[str] = ..., ok: _Optional[bool] = ..., error_code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class DeviceIdentity(_message.Message):
    __slots__ = ("serial", "mac", "model", "sys_object_id", "tls_fingerprint")
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SYS_OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    TLS_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    serial: str
    mac: str
    model: str
    sys_object_id: str
    tls_fingerprint: str
    def __init__(self, serial: _Optional[str] = ..., mac: _Optional[str] = ..., model: _Optional[str] = ..., sys_object_id: _Optional[str] = ..., tls_fingerprint: _Optional[str] = ...) -> None: ...

class OpenTunnel(_message.Message):
    __slots__ = ("session_id", "target_ip", "target_port", "target_scheme", "expected_identity", "relay_host", "relay_port", "relay_host_key_fingerprint", "credential_private_key", "credential_certificate", "expires_at_ms")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_IP_FIELD_NUMBER: _ClassVar[int]
    TARGET_PORT_FIELD_NUMBER: _ClassVar[int]
    TARGET_SCHEME_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    RELAY_HOST_FIELD_NUMBER: _ClassVar[int]
    RELAY_PORT_FIELD_NUMBER: _ClassVar[int]
    RELAY_HOST_KEY_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_PRIVATE_KEY_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    target_ip: str
    target_port: int
    target_scheme: str
    expected_identity: DeviceIdentity
    relay_host: str
    relay_port: int
    relay_host_key_fingerprint: str
    credential_private_key: str
    credential_certificate: str
    expires_at_ms: int
    def __init__(self, session_id: _Optional[str] = ..., target_ip: _Optional[str] = ..., target_port: _Optional[int] = ..., target_scheme: _Optional[str] = ..., expected_identity: _Optional[_Union[DeviceIdentity, _Mapping]] = ..., relay_host: _Optional[str] = ..., relay_port: _Optional[int] = ..., relay_host_key_fingerprint: _Optional[str] = ..., credential_private_key: _Optional[str] = ..., credential_certificate: _Optional[str] = ..., expires_at_ms: _Optional[int] = ...) -> None: ...

class CloseTunnel(_message.Message):
    __slots__ = ("session_id", "reason")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    reason: str
    def __init__(self, session_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DesiredConfig(_message.Message):
    __slots__ = ("config_json",)
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    config_json: bytes
    def __init__(self, config_json: _Optional[bytes] = ...) -> None: ...

class Ping(_message.Message):
    __slots__ = ("nonce",)
    NONCE_FIELD_NUMBER: _ClassVar[int]
    nonce: str
    def __init__(self, nonce: _Optional[str] = ...) -> None: ...

class Rescan(_message.Message):
    __slots__ = ("requested_by",)
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    requested_by: str
    def __init__(self, requested_by: _Optional[str] = ...) -> None: ...

class TrustSet(_message.Message):
    __slots__ = ("set_json",)
    SET_JSON_FIELD_NUMBER: _ClassVar[int]
    set_json: bytes
    def __init__(self, set_json: _Optional[bytes] = ...) -> None: ...

class Command(_message.Message):
    __slots__ = ("id", "agent_id", "issued_at_ms", "expires_at_ms", "open_tunnel", "close_tunnel", "desired_config", "ping", "rescan", "trust_set")
    ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    OPEN_TUNNEL_FIELD_NUMBER: _ClassVar[int]
    CLOSE_TUNNEL_FIELD_NUMBER: _ClassVar[int]
    DESIRED_CONFIG_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    RESCAN_FIELD_NUMBER: _ClassVar[int]
    TRUST_SET_FIELD_NUMBER: _ClassVar[int]
    id: str
    agent_id: str
    issued_at_ms: int
    expires_at_ms: int
    open_tunnel: OpenTunnel
    close_tunnel: CloseTunnel
    desired_config: DesiredConfig
    ping: Ping
    rescan: Rescan
    trust_set: TrustSet
    def __init__(self, id: _Optional[str] = ..., agent_id: _Optional[str] = ..., issued_at_ms: _Optional[int] = ..., expires_at_ms: _Optional[int] = ..., open_tunnel: _Optional[_Union[OpenTunnel, _Mapping]] = ..., close_tunnel: _Optional[_Union[CloseTunnel, _Mapping]] = ..., desired_config: _Optional[_Union[DesiredConfig, _Mapping]] = ..., ping: _Optional[_Union[Ping, _Mapping]] = ..., rescan: _Optional[_Union[Rescan, _Mapping]] = ..., trust_set: _Optional[_Union[TrustSet, _Mapping]] = ...) -> None: ...

class SignedCommand(_message.Message):
    __slots__ = ("command", "signature", "key_id")
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    command: bytes
    signature: bytes
    key_id: str
    def __init__(self, command: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., key_id: _Optional[str] = ...) -> None: ...

class AgentEvent(_message.Message):
    __slots__ = ("agent_id", "at_ms", "command_result", "heartbeat")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    COMMAND_RESULT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    at_ms: int
    command_result: CommandResult
    heartbeat: HeartbeatRequest
    def __init__(self, agent_id: _Optional[str] = ..., at_ms: _Optional[int] = ..., command_result: _Optional[_Union[CommandResult, _Mapping]] = ..., heartbeat: _Optional[_Union[HeartbeatRequest, _Mapping]] = ...) -> None: ...
