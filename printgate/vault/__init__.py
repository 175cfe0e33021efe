"""The credential vault: device admin credentials sealed with envelope encryption.

A data key per tenant (customer) seals its secrets (AES-256-GCM); the data key is kept only
wrapped by a master key behind ``KeyWrapper`` (``FileKms``: a 0600 key file). Secrets are
write-only: nothing returns one except ``CredentialVault.login_for`` (for a session's proxy
route) and the audited, approved break-glass reveal.
"""

from printgate.vault.kms import FileKms, KeyWrapper
from printgate.vault.vault import CredentialVault

__all__ = ["CredentialVault", "FileKms", "KeyWrapper"]
