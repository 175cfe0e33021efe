"""The gateway's errors and their codes (see ``printgate.errors`` for the tree)."""

from __future__ import annotations

from printgate.errors import PrintgateError, TunnelError

CSR_REJECTED = "csr_rejected"
ENROLMENT_THROTTLED = "enrolment_throttled"
ENROLMENT_KEY_MISMATCH = "enrolment_key_mismatch"
AGENT_REFUSED = "agent_refused"
PROXY_WORKER_FAILED = "proxy_worker_failed"
PROXY_CONTROL_CHANNEL_FAILED = "proxy_control_channel_failed"
BLOCKED_BY_POLICY = "blocked_by_policy"  # the proxy's 403 JSON answer for a blocked transfer
BATCH_ID_MISSING = "batch_id_missing"
DEVICE_LOGIN_FAILED = "device_login_failed"
NODE_UNAVAILABLE = "node_unavailable"
NODE_COMMAND_FAILED = "node_command_failed"


class CsrRejected(PrintgateError):
    code = CSR_REJECTED


class EnrolmentThrottled(PrintgateError):
    code = ENROLMENT_THROTTLED


class EnrolmentKeyMismatch(PrintgateError):
    """A used enrolment token presented again with another key than the one it was redeemed for."""

    code = ENROLMENT_KEY_MISMATCH


class AgentRefused(TunnelError):
    """The agent refused to open the tunnel (it says why, e.g. the device changed)."""

    code = AGENT_REFUSED


class WorkerFailed(PrintgateError):
    """A proxy worker process could not start or kept dying."""

    code = PROXY_WORKER_FAILED


class ControlChannelError(PrintgateError):
    """The other end of a proxy worker's control channel failed or went away."""

    code = PROXY_CONTROL_CHANNEL_FAILED


class DeviceLoginFailed(PrintgateError):
    """The proxy could not sign in to a device with its stored credential (certificate not the
    pinned one, login refused, no login form, answer too large); the technician gets the
    device's own login page."""

    code = DEVICE_LOGIN_FAILED


class NodeUnavailable(PrintgateError):
    """The node holding an agent's connection did not answer a cross-node command in time (or
    there is no live node to ask); the message names the node, the agent and the wait."""

    code = NODE_UNAVAILABLE


class NodeCommandFailed(PrintgateError):
    """The node that ran a cross-node command answered with a failure (its message)."""

    code = NODE_COMMAND_FAILED
