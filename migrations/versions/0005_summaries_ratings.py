"""running summaries, ratings, superseded turns: a conversation's summary of the turns that
no longer fit the history; 👍/👎 per answer and person; answers replaced by Regenerate or an
edited question

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("superseded", sa.Boolean(), server_default="0", nullable=False)
        )
    op.create_table(
        "summaries",
        sa.Column("conversation_id", Id, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("covers_turn_id", Id, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"],
                                name=op.f("fk_summaries_conversation_id_conversations"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("conversation_id", name=op.f("pk_summaries")),
    )
    op.create_table(
        "ratings",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("turn_id", Id, nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ratings")),
        sa.UniqueConstraint("turn_id", "user_id", name=op.f("uq_ratings_turn_id_user_id")),
    )
    op.create_index(op.f("ix_ratings_platform_workspace_channel_updated_at"), "ratings",
                    ["platform", "workspace", "channel", "updated_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_ratings_platform_workspace_channel_updated_at"), table_name="ratings")
    op.drop_table("ratings")
    op.drop_table("summaries")
    op.execute("DELETE FROM turns WHERE superseded")
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.drop_column("superseded")
