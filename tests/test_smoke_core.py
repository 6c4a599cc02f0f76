from bot.app import Core
from bot.conversation import Author, ConversationKey, Incoming
from tests.support.surfaces import RecordingSurface


async def test_core_answers_through_fake_model(core: Core) -> None:
    surface = RecordingSurface()
    key = ConversationKey("test", "w", "c", "t")
    outcome = await core.service.handle(Incoming(key, Author("u1", "Ann"), "hi"), surface)
    assert outcome is not None and outcome.text == "echo: hi"
    assert surface.shown == ["echo: hi"]
