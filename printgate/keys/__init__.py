"""The gateway's key directory: every shared key, its id, validity and rotation (docs/scale-out.md, "Keys").

``KeyStore`` is the KMS-style interface (current key, trusted keys with
validity, rotate); ``FileKeyStore`` keeps the keys as files in one directory
(``[gateway] key_dir``) that the nodes of one gateway share.
"""

from printgate.keys.store import (
    KEY_FILES,
    MANIFEST_FILE,
    ROTATABLE,
    FileKeyStore,
    KeyRecord,
    KeyStore,
    KeyUse,
    Rotation,
)
from printgate.keys.trust import agent_trust_set

__all__ = ["KEY_FILES", "MANIFEST_FILE", "ROTATABLE", "FileKeyStore", "KeyRecord", "KeyStore", "KeyUse",
           "Rotation", "agent_trust_set"]
