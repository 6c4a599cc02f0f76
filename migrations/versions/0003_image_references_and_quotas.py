"""image references, refused images, usage indexes for quotas

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 12:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "turn_images",
        sa.Column("turn_id", Id, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["turn_id"], ["turns.id"], name=op.f("fk_turn_images_turn_id_turns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("turn_id", "sha256", name=op.f("pk_turn_images")),
    )
    with op.batch_alter_table("turn_images", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_turn_images_sha256"), ["sha256"], unique=False)
    _backfill_turn_images()

    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("refused", sa.Boolean(), server_default="0", nullable=False)
        )

    with op.batch_alter_table("usage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_usage_platform_workspace_channel"))
        batch_op.create_index(
            batch_op.f("ix_usage_platform_workspace_channel_created_at"),
            ["platform", "workspace", "channel", "created_at"], unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_usage_platform_user_id_created_at"),
            ["platform", "user_id", "created_at"], unique=False,
        )


def _backfill_turn_images() -> None:
    turns = sa.table("turns", sa.column("id", Id), sa.column("parts", sa.JSON))
    turn_images = sa.table("turn_images", sa.column("turn_id", Id), sa.column("sha256"))
    connection = op.get_bind()
    rows = []
    for turn_id, parts in connection.execute(sa.select(turns.c.id, turns.c.parts)):
        hashes = {p["sha256"] for p in parts or () if p.get("type") == "image"}
        rows.extend({"turn_id": turn_id, "sha256": sha} for sha in hashes)
    if rows:
        connection.execute(sa.insert(turn_images), rows)


def downgrade() -> None:
    with op.batch_alter_table("usage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_usage_platform_user_id_created_at"))
        batch_op.drop_index(batch_op.f("ix_usage_platform_workspace_channel_created_at"))
        batch_op.create_index(
            batch_op.f("ix_usage_platform_workspace_channel"),
            ["platform", "workspace", "channel"], unique=False,
        )
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_column("refused")
    with op.batch_alter_table("turn_images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_turn_images_sha256"))
    op.drop_table("turn_images")
