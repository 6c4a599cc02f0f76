"""tool turns: an assistant turn's tool calls, a tool turn's call id, the fields of an
assistant message the bot does not know; a channel's tool switches

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tool_calls", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("tool_call_id", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("extra", sa.JSON(), nullable=True))
    with op.batch_alter_table("channel_settings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tools", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM turns WHERE role = 'tool'")
    with op.batch_alter_table("channel_settings", schema=None) as batch_op:
        batch_op.drop_column("tools")
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.drop_column("extra")
        batch_op.drop_column("tool_call_id")
        batch_op.drop_column("tool_calls")
