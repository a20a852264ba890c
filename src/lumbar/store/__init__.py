"""The trial database: tables, engine settings and migrations, the audit chain, the vault.

Only :mod:`lumbar.operations` uses this package to write.
"""

from lumbar.store.audit import AuditFinding, AuditReport, verify_chain
from lumbar.store.database import DEFAULT_URL, Database, default_key_file, resolve_url
from lumbar.store.vault import KEY_ENV, Keys, Vault, create_key_file, load_keys

__all__ = [
    "DEFAULT_URL",
    "KEY_ENV",
    "AuditFinding",
    "AuditReport",
    "Database",
    "Keys",
    "Vault",
    "create_key_file",
    "default_key_file",
    "load_keys",
    "resolve_url",
    "verify_chain",
]
