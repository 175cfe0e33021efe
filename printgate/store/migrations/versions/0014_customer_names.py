"""customer names unique per dealer: a unique index on (dealer_id, lower(trim(name)))

Revision ID: 0014_customer_names
Revises: 0001_core

The portal and ``printgate admin`` already refused a second customer of the same name
(case and surrounding blanks ignored) at one dealer; the database now holds the rule too,
so two concurrent requests cannot both pass the check. A database that already holds such
duplicates is refused with the list of them (nothing is changed): rename one of each pair
and upgrade again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from printgate.errors import CustomerNameTaken

revision: str = "0014_customer_names"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_customers_dealer_name"


def duplicates_message(rows: Sequence[tuple[str, str, str]]) -> str:
    """The refusal for ``(dealer_id, name, comma-separated ids)`` groups of same-named customers."""
    listed = "; ".join(f"dealer {d}: {n!r} is customers {ids}" for d, n, ids in rows)
    return ("customer names must be unique per dealer (case and surrounding blanks ignored), but "
            f"{len(rows)} name(s) are used twice: {listed}. Rename one of each (the name column of "
            "the customers table, e.g. add the town), then run `printgate db upgrade` again "
            "(nothing was changed)")


def upgrade() -> None:
    bind = op.get_bind()
    groups = bind.execute(sa.text(
        "SELECT dealer_id, lower(trim(name)) AS folded, count(*) FROM customers "
        "GROUP BY dealer_id, lower(trim(name)) HAVING count(*) > 1 ORDER BY dealer_id, folded"
    )).all()
    if groups:
        found = []
        for dealer_id, folded, _n in groups:
            ids = bind.execute(sa.text(
                "SELECT id, name FROM customers WHERE dealer_id = :d AND lower(trim(name)) = :n ORDER BY id"
            ), {"d": dealer_id, "n": folded}).all()
            found.append((dealer_id, ids[0][1].strip(), ", ".join(i for i, _ in ids)))
        raise CustomerNameTaken(duplicates_message(found))
    op.create_index(INDEX, "customers", ["dealer_id", sa.text("lower(trim(name))")], unique=True)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="customers")
