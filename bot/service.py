"""The reply service: store the question, ask the model, draw the answer, store the answer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot import defaults
from bot.attachments import ImageDecoder, prepare_attachments
from bot.commands import Commands
from bot.conversation import (
    Author,
    ConversationKey,
    Incoming,
    Part,
    Role,
    TextPart,
    Turn,
    TurnStatus,
)
from bot.drawing.pacing import Clock, EditBudget, Sleep
from bot.drawing.render import Renderer, renderer_for
from bot.drawing.surface import Surface
from bot.errors import LimitReached, RequestRejected, StreamInterrupted, UserFacingError
from bot.limits import Limits, LimitSettings
from bot.model.llm import ChatRequest, StreamEnd, StreamEvent, TextDelta
from bot.model.parameters import request_parameters
from bot.model.prompt import build_request
from bot.model.tokens import estimate_tokens
from bot.storage.locking import ConversationGate
from bot.storage.store import Store

log = logging.getLogger(__name__)

WARNING = "⚠️"
GENERIC_FAILURE = (
    f"{WARNING} Something went wrong on my side while answering. Your message is saved; "
    "please try again."
)
FINISH_NOTES = {
    "length": "(The answer reached its length limit, `max_completion_tokens`.)",
    "content_filter": "(The model stopped this answer for safety reasons.)",
    "safety": "(The model stopped this answer for safety reasons.)",
}


class ChatModel(Protocol):
    """Anything that streams an answer to a request (the HTTP client, or a fake)."""

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Yield text deltas, then one StreamEnd."""
        ...


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """The bot-wide defaults and limits the service applies."""

    default_model: str
    default_system_prompt: str = ""
    history_tokens: int = defaults.HISTORY_TOKENS
    max_images: int = defaults.MAX_IMAGES
    max_attachment_bytes: int = defaults.MAX_ATTACHMENT_BYTES
    max_text_attachment_bytes: int = defaults.MAX_TEXT_ATTACHMENT_BYTES
    allowed_models: tuple[str, ...] = ()
    max_completion_tokens: int = defaults.MAX_COMPLETION_TOKENS
    max_request_bytes: int = defaults.MAX_REQUEST_BYTES
    partial_save_seconds: float = 3.0
    limits: LimitSettings = field(default_factory=LimitSettings)

    def models(self) -> tuple[str, ...]:
        """The models a channel may use: the default one and the allowed ones."""
        return tuple(dict.fromkeys((self.default_model, *self.allowed_models)))


@dataclass(frozen=True, slots=True)
class ReplyOutcome:
    """How one reply ended, for the adapter and for tests."""

    text: str
    note: str
    status: TurnStatus
    error: str | None
    message_ids: tuple[str, ...]


@dataclass(slots=True)
class _ActiveReply:
    requester: str
    task: asyncio.Task[StreamEnd] | None = None
    stopped: bool = False


class Service:
    """Platform-free handling of one incoming message, end to end."""

    def __init__(
        self,
        store: Store,
        model: ChatModel,
        config: ServiceConfig,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        gate: ConversationGate | None = None,
        limits: Limits | None = None,
    ) -> None:
        self._store = store
        self._model = model
        self._config = config
        self._clock = clock
        self._sleep = sleep
        self._gate = gate or ConversationGate(store)
        self.limits = limits or Limits(store, config.limits, clock=clock)
        self._decoder = ImageDecoder()
        self._active: dict[ConversationKey, _ActiveReply] = {}
        self.commands = Commands(
            store, config.default_model, config.default_system_prompt,
            allowed_models=config.models(), max_completion_tokens=config.max_completion_tokens,
            limits=self.limits,
        )

    async def knows(self, key: ConversationKey) -> bool:
        """Whether the bot has taken part in this conversation (so it listens without a mention)."""
        return await self._store.has_conversation(key)

    async def conversation_of_message(
        self, platform: str, message_id: str
    ) -> ConversationKey | None:
        """The conversation a platform message belongs to, if any."""
        return await self._store.conversation_of_message(platform, message_id)

    async def claim_event(self, platform: str, event_id: str) -> bool:
        """Record a platform event; False if it was handled before (a redelivery)."""
        return await self._store.claim_event(platform, event_id)

    async def stop(self, key: ConversationKey, user: Author) -> str:
        """Stop the answer being written in `key`; return what to tell the user."""
        active = self._active.get(key)
        if active is None or active.task is None or active.task.done():
            return "There is no answer being written here."
        if user.id != active.requester and not user.can_configure:
            return "Only the person who asked, or a channel manager, can stop this answer."
        active.stopped = True
        active.task.cancel()
        return "Stopped. The text so far is kept."

    async def handle(
        self, incoming: Incoming, surface: Surface, budget: EditBudget | None = None
    ) -> ReplyOutcome | None:
        """Answer one message on `surface`; None when the message gets no answer."""
        if incoming.author.is_bot:
            return None
        key = incoming.key
        try:
            if incoming.event_id and not await self._store.claim_event(
                key.platform, incoming.event_id
            ):
                log.info("%s: event %s was already handled", key, incoming.event_id)
                return None
            self.limits.admit_message(key.platform, incoming.author)
            with self.limits.queued(key):
                async with self._gate.hold(key), self.limits.reply_slot():
                    await self.limits.check_quotas(key, incoming.author)
                    turn = await self._user_turn(incoming, surface)
                    if turn is None:
                        return None
                    return await self._reply(key, turn, incoming.author, surface, budget)
        except LimitReached as exc:
            if not exc.quiet:
                await _notify(surface, f"{WARNING} {exc}")
        except UserFacingError as exc:
            await _notify(surface, f"{WARNING} {exc}")
        except Exception:
            log.exception("%s: failed to answer message %s", key, incoming.message_id)
            await _notify(surface, GENERIC_FAILURE)
        return None

    async def _user_turn(self, incoming: Incoming, surface: Surface) -> Turn | None:
        prepared = await prepare_attachments(
            incoming.attachments,
            self._config.max_attachment_bytes,
            self._config.max_text_attachment_bytes,
            decoder=self._decoder,
        )
        for note in prepared.notes:
            await _notify(surface, note)
        text = incoming.text.strip()
        parts: list[Part] = [TextPart(text)] if text else []
        parts.extend(prepared.parts)
        if not parts:
            if not prepared.notes:
                await _notify(surface, "Ask me something: write a question, attach an image, "
                                       "or both.")
            return None
        tokens = estimate_tokens(parts)
        if tokens > self._config.history_tokens:
            await _notify(surface, (
                f"{WARNING} That message is too long for me: about {tokens:,} tokens, and the "
                f"limit is {self._config.history_tokens:,}. Please shorten or split it."
            ))
            return None
        return Turn(
            role=Role.USER,
            parts=tuple(parts),
            author_id=incoming.author.id,
            author_name=incoming.author.name,
            message_ids=(incoming.message_id,) if incoming.message_id else (),
        )

    async def _reply(
        self, key: ConversationKey, question: Turn, author: Author, surface: Surface,
        budget: EditBudget | None,
    ) -> ReplyOutcome:
        settings, history = await self._store.add_question(
            key, question, self._config.history_tokens, self._config.max_images
        )
        system_prompt = (
            settings.system_prompt
            if settings.system_prompt is not None
            else self._config.default_system_prompt
        )
        parameters = self._bounded(request_parameters(self._config.default_model, settings))
        request = build_request(system_prompt, history, parameters,
                                max_request_bytes=self._config.max_request_bytes)
        renderer = renderer_for(surface, budget, clock=self._clock, sleep=self._sleep)
        answer = _Answer(self._store, key, author.id, parameters["model"])
        try:
            end, stopped = await self._generate(key, author, request, renderer, answer)
        except asyncio.CancelledError:
            log.info("%s: reply cancelled (shutting down); keeping what was written", key)
            cut = StreamEnd(error=StreamInterrupted("The bot shut down before the answer ended."))
            await asyncio.shield(answer.save(renderer.text, cut, TurnStatus.INTERRUPTED,
                                             renderer.message_ids))
            raise
        if isinstance(end.error, RequestRejected) and question.images:
            await self._store.refuse_images(image.sha256 for image in question.images)
        status, note = _ending(end, stopped, renderer.text)
        rendered = await renderer.finish(note)
        if not rendered.delivered:
            log.warning("%s: the answer could not be shown in full; it is stored", key)
        try:
            await answer.save(renderer.text, end, status, rendered.message_ids)
        except UserFacingError:
            log.error("%s: the answer could not be stored", key)
            await _notify(surface, f"{WARNING} The answer could not be saved, so I may not "
                                   "remember it later.")
        return ReplyOutcome(renderer.text, note, status,
                            str(end.error) if end.error else None, rendered.message_ids)

    def _bounded(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """The request parameters within the operator's limits: an allowed model (a channel
        set before the list changed falls back to the default) and a capped answer length."""
        if parameters["model"] not in self._config.models():
            log.warning("model %r is no longer allowed; using %s", parameters["model"],
                        self._config.default_model)
            parameters["model"] = self._config.default_model
        cap = self._config.max_completion_tokens
        parameters["max_completion_tokens"] = min(parameters.get("max_completion_tokens", cap),
                                                  cap)
        return parameters

    async def _generate(
        self, key: ConversationKey, author: Author, request: ChatRequest, renderer: Renderer,
        answer: _Answer,
    ) -> tuple[StreamEnd, bool]:
        active = _ActiveReply(requester=author.id)
        self._active[key] = active
        renderer.start()
        task = asyncio.create_task(self._pump(request, renderer))
        active.task = task
        saving = asyncio.create_task(self._save_as_it_grows(answer, renderer))
        try:
            return await task, False
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not active.stopped or (current is not None and current.cancelling()):
                task.cancel()
                await renderer.cancel()
                raise
            log.info("%s: answer stopped by a user", key)
            return StreamEnd(), True
        finally:
            saving.cancel()
            del self._active[key]

    async def _save_as_it_grows(self, answer: _Answer, renderer: Renderer) -> None:
        """Every few seconds, store the text so far, marked interrupted until the answer
        ends: a process killed mid-answer keeps what was shown."""
        saved = ""
        cut = StreamEnd(error=StreamInterrupted("The bot stopped before the answer ended."))
        while True:
            await self._sleep(self._config.partial_save_seconds)
            text = renderer.text
            if text.strip() and text != saved:
                try:
                    await answer.save(text, cut, TurnStatus.INTERRUPTED, renderer.message_ids)
                except UserFacingError:
                    log.warning("%s: saving the answer so far failed", answer.key)
                saved = text

    async def _pump(self, request: ChatRequest, renderer: Renderer) -> StreamEnd:
        async for event in self._model.stream(request):
            if renderer.delivery_failed:
                return StreamEnd(error=StreamInterrupted(
                    "The answer could no longer be shown here (the message or thread is gone)."
                ))
            if isinstance(event, TextDelta):
                renderer.feed(event.text)
            else:
                return event
        return StreamEnd(error=StreamInterrupted("The model's stream ended without a result."))


class _Answer:
    """One answer's row in the store: inserted by its first save, replaced by later ones.

    Saves take turns, and a save runs to its end even when its caller is cancelled, so the
    answer is never stored twice.
    """

    def __init__(self, store: Store, key: ConversationKey, requester: str, model: str) -> None:
        self._store = store
        self.key = key
        self._requester = requester
        self._model = model
        self._turn_id: int | None = None
        self._lock = asyncio.Lock()

    async def save(self, text: str, end: StreamEnd, status: TurnStatus,
                   message_ids: tuple[str, ...]) -> None:
        """Store the answer as it is now."""
        turn = Turn(
            role=Role.ASSISTANT,
            parts=(TextPart(text),),
            message_ids=message_ids,
            usage=end.usage,
            model=end.model or self._model,
            status=status,
            error=str(end.error) if end.error else None,
        )
        await asyncio.shield(self._save(turn))

    async def _save(self, turn: Turn) -> None:
        async with self._lock:
            self._turn_id = await self._store.save_answer(
                self.key, turn, turn_id=self._turn_id, billed_to=self._requester
            )


def _ending(end: StreamEnd, stopped: bool, text: str) -> tuple[TurnStatus, str]:
    if stopped:
        return TurnStatus.STOPPED, "(Stopped.)"
    if end.error is not None:
        status = TurnStatus.INTERRUPTED if text else TurnStatus.FAILED
        return status, f"{WARNING} {end.error}"
    if not text.strip():
        return TurnStatus.COMPLETE, "(The model returned an empty answer.)"
    return TurnStatus.COMPLETE, FINISH_NOTES.get(end.finish_reason or "", "")


async def _notify(surface: Surface, text: str) -> None:
    try:
        await surface.notify(text)
    except Exception:
        log.exception("could not show a notice")

