"""The reply service: store the question, ask the model, draw the answer, store the answer.

With tools, one answer may take several rounds: the model's calls are run (all at once, a
status line showing meanwhile), the round's assistant turn and each result are stored as turns,
and the model is asked again with them, for up to `max_tool_rounds` rounds; after those it is
asked once more with tool_choice none. Text of every round is drawn as one answer, which ends
with the addresses the tools read."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

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
    ToolCall,
    Turn,
    TurnStatus,
)
from bot.documents import DocumentReader
from bot.drawing.pacing import Clock, EditBudget, Sleep, TimedEditBudget
from bot.drawing.render import Renderer, renderer_for
from bot.drawing.surface import AnswerControlsSurface, Surface
from bot.errors import LimitReached, RequestRejected, StreamInterrupted, UserFacingError
from bot.limits import Limits, LimitSettings
from bot.logs import log_context
from bot.metrics import FAILED, REFUSED, Metrics
from bot.model.llm import ChatRequest, StreamEnd, StreamEvent, TextDelta
from bot.model.parameters import request_parameters
from bot.model.prompt import build_request, follow_up
from bot.model.tokens import estimate_tokens
from bot.storage.locking import ConversationGate
from bot.storage.store import AnswerContext, Store
from bot.summaries import Summarised, Summariser
from bot.tools.base import ChannelReader, Tool, ToolContext
from bot.tools.registry import Toolbox
from bot.tools.runner import ToolRunner, status_line

if TYPE_CHECKING:  # redis is loaded only when REDIS_URL is set
    from bot.stop_relay import StopRelay

log = logging.getLogger(__name__)

WARNING = "⚠️"
GENERIC_FAILURE = (
    f"{WARNING} Something went wrong on my side while answering. Your message is saved; "
    "please try again."
)
RESTARTING = "I am restarting right now. Please ask again in a moment."
CUT_FOR_RESTART = "I had to stop here: the bot is restarting. Ask again in a moment to go on."
FINISH_NOTES = {
    "length": "(The answer reached its length limit, `max_completion_tokens`.)",
    "content_filter": "(The model stopped this answer for safety reasons.)",
    "safety": "(The model stopped this answer for safety reasons.)",
}
UNKNOWN_ANSWER = ("I no longer remember that answer (the conversation may have been reset), so "
                  "there is nothing to do with it.")
BUSY_REGENERATING = ("An answer is being written here right now: wait for it to end (or press "
                     "Stop), then regenerate.")
RATED_UP = "Thanks, noted: 👍."
RATED_DOWN = ("Thanks, noted: 👎. Whoever sets up this channel sees the ratings in "
              "`/gemini usage`.")
MAX_SOURCES = 10
ROUND_SEPARATOR = "\n\n"


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
    summary_tokens: int = defaults.SUMMARY_TOKENS
    summary_timeout: float = defaults.SUMMARY_TIMEOUT
    max_images: int = defaults.MAX_IMAGES
    max_attachment_bytes: int = defaults.MAX_ATTACHMENT_BYTES
    max_text_attachment_bytes: int = defaults.MAX_TEXT_ATTACHMENT_BYTES
    max_document_chars: int = defaults.MAX_DOCUMENT_CHARS
    allowed_models: tuple[str, ...] = ()
    max_completion_tokens: int = defaults.MAX_COMPLETION_TOKENS
    max_request_bytes: int = defaults.MAX_REQUEST_BYTES
    max_tool_rounds: int = defaults.MAX_TOOL_ROUNDS
    tool_timeout: float = defaults.TOOL_TIMEOUT
    tool_result_chars: int = defaults.TOOL_RESULT_CHARS
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


class _Refusal(Exception):
    """A click the service refuses; its text is for the clicker alone."""


@dataclass(slots=True)
class _ActiveReply:
    requester: str
    task: asyncio.Task[StreamEnd] | None = None
    stopped: bool = False
    cut: bool = False


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
        metrics: Metrics | None = None,
        tools: Toolbox | None = None,
        stop_relay: StopRelay | None = None,
    ) -> None:
        self._store = store
        self._model = model
        self._config = config
        self._clock = clock
        self._sleep = sleep
        self._gate = gate or ConversationGate(store)
        self.limits = limits or Limits(store, config.limits, clock=clock)
        self._decoder = ImageDecoder()
        self._documents = DocumentReader()
        self._active: dict[ConversationKey, _ActiveReply] = {}
        self._metrics = metrics or Metrics()
        self._metrics.watch_replies(lambda: self.limits.writing, lambda: self.limits.waiting)
        self._accepting = True
        self._cutting = False
        self._handling = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.tools = tools or Toolbox()
        self._runner = ToolRunner(timeout=config.tool_timeout,
                                  result_chars=config.tool_result_chars)
        self._stop_relay = stop_relay
        if stop_relay is not None:
            stop_relay.answer_with(self.stop_here)
        self._summaries = Summariser(
            store, model.stream, model=config.default_model,
            max_tokens=min(config.summary_tokens, config.max_completion_tokens),
            history_tokens=config.history_tokens, timeout=config.summary_timeout,
            metrics=self._metrics)
        self.commands = Commands(
            store, config.default_model, config.default_system_prompt,
            allowed_models=config.models(), max_completion_tokens=config.max_completion_tokens,
            limits=self.limits, tools=self.tools,
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
        """Stop the answer being written in `key`, by this process or (through the stop relay,
        with replicas) by another; return what to tell the user."""
        told = self.stop_here(key, user)
        if told is None and self._stop_relay is not None:
            told = await self._stop_relay.ask(key, user)
        return told or "There is no answer being written here."

    def stop_here(self, key: ConversationKey, user: Author) -> str | None:
        """Stop the answer this process is writing in `key` if `user` may (the asker or a
        channel manager); what to tell them, or None when this process writes none there."""
        active = self._active.get(key)
        if active is None or active.task is None or active.task.done():
            return None
        if user.id != active.requester and not user.can_configure:
            return "Only the person who asked, or a channel manager, can stop this answer."
        active.stopped = True
        active.task.cancel()
        return "Stopped. The text so far is kept."

    def drain(self) -> None:
        """Take no new messages (the bot is restarting): each gets a notice to ask again in a
        moment. The answers in progress, and the messages waiting for them, go on."""
        self._accepting = False

    def cut(self) -> int:
        """End every answer being written now, keeping its text with a notice that the bot
        restarts, and refuse the messages still waiting; return how many answers were cut."""
        self.drain()
        self._cutting = True
        writing = [a for a in self._active.values() if a.task is not None and not a.task.done()]
        for active in writing:
            active.cut = True
            if active.task is not None:
                active.task.cancel()
        return len(writing)

    @property
    def busy(self) -> int:
        """How many messages are being handled (answered, waiting, or refused)."""
        return self._handling

    async def idle(self) -> None:
        """Wait until no message is being handled."""
        await self._idle.wait()

    async def handle(
        self, incoming: Incoming, surface: Surface, budget: EditBudget | None = None
    ) -> ReplyOutcome | None:
        """Answer one message on `surface`; None when the message gets no answer.

        Every line logged meanwhile names the conversation, the platform and the event. While
        the bot drains for a restart, a new message gets a notice to ask again instead.
        """
        if incoming.author.is_bot:
            return None
        key = incoming.key
        with self._busy(), log_context(conversation=str(key), platform=key.platform,
                                       event_id=incoming.event_id):
            return await self._handle(incoming, surface, budget)

    @contextmanager
    def _busy(self) -> Iterator[None]:
        self._handling += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._handling -= 1
            if not self._handling:
                self._idle.set()

    async def _handle(
        self, incoming: Incoming, surface: Surface, budget: EditBudget | None
    ) -> ReplyOutcome | None:
        key = incoming.key

        async def answer() -> ReplyOutcome | None:
            turn = await self._user_turn(incoming, surface)
            if turn is None:
                return None
            context = partial(self._store.add_question, key, turn,
                              self._config.history_tokens, self._config.max_images)
            return await self._answered(key, turn, incoming.author, surface, budget, context)

        return await self._guarded(key, incoming.author, surface, answer,
                                   event_id=incoming.event_id)

    async def _guarded(
        self, key: ConversationKey, author: Author, surface: Surface,
        answer: Callable[[], Awaitable[ReplyOutcome | None]], *, event_id: str | None = None,
    ) -> ReplyOutcome | None:
        """Run `answer` once the message passes the limits, holding the conversation and a
        reply slot; every failure is told on `surface` (a `_Refusal` goes to the caller)."""
        try:
            if not self._accepting:
                raise LimitReached(RESTARTING)
            if event_id and not await self._store.claim_event(key.platform, event_id):
                log.info("%s: event %s was already handled", key, event_id)
                return None
            self.limits.admit_message(key.platform, author)
            with self.limits.queued(key):
                async with self._gate.hold(key), self.limits.reply_slot():
                    if self._cutting:
                        raise LimitReached(RESTARTING)
                    await self.limits.check_quotas(key, author)
                    outcome = await answer()
            if outcome is not None:
                await _show_answer_controls(surface, outcome)
            return outcome
        except _Refusal:
            raise
        except LimitReached as exc:
            self._metrics.reply_ended(key.platform, REFUSED)
            if not exc.quiet:
                await _notify(surface, f"{WARNING} {exc}")
        except UserFacingError as exc:
            self._metrics.reply_ended(key.platform, FAILED)
            await _notify(surface, f"{WARNING} {exc}")
        except Exception:
            self._metrics.reply_ended(key.platform, FAILED)
            log.exception("%s: failed to answer", key)
            await _notify(surface, GENERIC_FAILURE)
        return None

    async def _answered(
        self, key: ConversationKey, question: Turn, author: Author, surface: Surface,
        budget: EditBudget | None, context: Callable[[], Awaitable[AnswerContext]],
    ) -> ReplyOutcome:
        timed = None if budget is None else TimedEditBudget(
            budget, partial(self._metrics.edit_budget_waited, key.platform), clock=self._clock)
        return await self._measured(key.platform, self._reply(
            key, question, author, surface, timed, context))

    async def regenerate(self, key: ConversationKey, message_id: str, user: Author,
                         surface: Surface, budget: EditBudget | None = None) -> str | None:
        """Answer the question of the answer shown in `message_id` again, in place of that
        answer (kept in the store as superseded, no longer sent as history). Returns a text
        for the clicker alone when refused (not the conversation's latest answer, not the
        asker or a channel manager, an answer being written here now, an unknown message);
        None when it answered again on `surface`."""
        if user.is_bot:
            return None
        with self._busy(), log_context(conversation=str(key), platform=key.platform):
            shown = await self._store.turn_of_message(key.platform, message_id)
            if shown is None or shown.key != key or shown.role is Role.USER:
                return UNKNOWN_ANSWER
            if self._writing(key):
                return BUSY_REGENERATING

            async def answer() -> ReplyOutcome | None:
                exchange = await self._store.latest_exchange(key)
                if exchange is None or shown.turn_id not in exchange.answer_ids:
                    raise _Refusal("Only the conversation's latest answer can be regenerated.")
                if user.id != exchange.question.author_id and not user.can_configure:
                    raise _Refusal("Only the person who asked, or a channel manager, can "
                                   "regenerate this answer.")
                log.info("%s: regenerating the answer to turn %d", key, exchange.question_id)
                context = partial(self._store.answer_again, key, exchange.question_id,
                                  self._config.history_tokens, self._config.max_images)
                return await self._answered(key, exchange.question, user, surface, budget,
                                            context)

            try:
                await self._guarded(key, user, surface, answer)
            except _Refusal as refusal:
                return str(refusal)
            return None

    async def answer_edited(self, incoming: Incoming, surface: Surface,
                            budget: EditBudget | None = None) -> ReplyOutcome | None:
        """A person edited their message `incoming.message_id`. If it is the conversation's
        latest question and its content changed, the stored question takes the edit and is
        answered again (its earlier answers superseded); otherwise nothing happens."""
        key = incoming.key
        if incoming.author.is_bot or not incoming.message_id:
            return None
        with self._busy(), log_context(conversation=str(key), platform=key.platform,
                                       event_id=incoming.event_id):
            shown = await self._store.turn_of_message(key.platform, incoming.message_id)
            if shown is None or shown.key != key or shown.role is not Role.USER:
                return None

            async def answer() -> ReplyOutcome | None:
                exchange = await self._store.latest_exchange(key)
                if (exchange is None or exchange.question_id != shown.turn_id
                        or exchange.question.author_id != incoming.author.id):
                    return None
                turn = await self._user_turn(incoming, surface)
                if turn is None or _same_content(turn, exchange.question):
                    return None
                log.info("%s: question %d was edited; answering it again", key, shown.turn_id)
                context = partial(self._store.answer_again, key, exchange.question_id,
                                  self._config.history_tokens, self._config.max_images,
                                  edited=turn)
                return await self._answered(key, turn, incoming.author, surface, budget,
                                            context)

            return await self._guarded(key, incoming.author, surface, answer,
                                       event_id=incoming.event_id)

    async def rate(self, platform: str, message_id: str, user: Author, value: int) -> str:
        """Store `user`'s 👍 (1) or 👎 (-1) for the answer shown in `message_id` (a second
        click replaces the first); return a short text for the clicker alone."""
        shown = await self._store.turn_of_message(platform, message_id)
        if shown is None or shown.role is Role.USER:
            return UNKNOWN_ANSWER
        await self._store.rate(shown.key.channel_key, shown.turn_id, user.id,
                               1 if value > 0 else -1)
        return RATED_UP if value > 0 else RATED_DOWN

    def _writing(self, key: ConversationKey) -> bool:
        active = self._active.get(key)
        return active is not None and active.task is not None and not active.task.done()

    async def _measured(self, platform: str, reply: Awaitable[ReplyOutcome]) -> ReplyOutcome:
        """Await a reply, counting how it ended and how long it took (cancelled: the bot
        stopped at once, and the answer is stored as interrupted)."""
        started = self._clock()
        try:
            outcome = await reply
        except asyncio.CancelledError:
            self._metrics.reply_ended(platform, TurnStatus.INTERRUPTED, self._clock() - started)
            raise
        self._metrics.reply_ended(platform, outcome.status, self._clock() - started)
        return outcome

    async def _user_turn(self, incoming: Incoming, surface: Surface) -> Turn | None:
        prepared = await prepare_attachments(
            incoming.attachments,
            self._config.max_attachment_bytes,
            self._config.max_text_attachment_bytes,
            max_document_chars=self._config.max_document_chars,
            decoder=self._decoder,
            reader=self._documents,
        )
        for note in prepared.notes:
            await _notify(surface, note)
        parts = prepared.turn_parts(incoming.text.strip())
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
        budget: EditBudget | None, context: Callable[[], Awaitable[AnswerContext]],
    ) -> ReplyOutcome:
        asked = await context()
        settings = asked.settings
        summarised = await self._summarised(key, author, asked)
        system_prompt = (
            settings.system_prompt
            if settings.system_prompt is not None
            else self._config.default_system_prompt
        )
        parameters = self._bounded(request_parameters(self._config.default_model, settings))
        reader = surface if isinstance(surface, ChannelReader) else None
        tools = self._offered_tools(parameters, settings.tools, reader is not None)
        request = build_request(
            system_prompt, summarised.history, parameters,
            summary=summarised.summary.text if summarised.summary is not None else None,
            max_request_bytes=self._config.max_request_bytes)
        renderer = renderer_for(surface, budget, clock=self._clock, sleep=self._sleep)
        reply = _Reply(_Answer(self._store, key, author.id, parameters["model"]),
                       tools, ToolContext(reader))
        try:
            end, stopped = await self._generate(key, author, request, renderer, reply)
        except asyncio.CancelledError:
            log.info("%s: reply cancelled (shutting down); keeping what was written", key)
            cut = StreamEnd(error=StreamInterrupted("The bot shut down before the answer ended."))
            await asyncio.shield(reply.answer.save(reply.round_text(renderer.text), cut,
                                                   TurnStatus.INTERRUPTED, renderer.message_ids))
            raise
        if isinstance(end.error, RequestRejected) and question.images:
            await self._store.refuse_images(image.sha256 for image in question.images)
        status, note = _ending(end, stopped, renderer.text)
        if reply.round_limit_reached:
            note = "\n".join(n for n in (note, self._round_limit_note()) if n)
        rendered = await renderer.finish(note)
        if not rendered.delivered:
            log.warning("%s: the answer could not be shown in full; it is stored", key)
        try:
            await reply.answer.save(reply.round_text(renderer.text), end, status,
                                    rendered.message_ids)
        except UserFacingError:
            log.error("%s: the answer could not be stored", key)
            await _notify(surface, f"{WARNING} The answer could not be saved, so I may not "
                                   "remember it later.")
        return ReplyOutcome(renderer.text, note, status,
                            str(end.error) if end.error else None, rendered.message_ids)

    async def _summarised(self, key: ConversationKey, author: Author, asked: AnswerContext
                          ) -> Summarised:
        """The summary to send and the turns after it: the stored ones, the summary refreshed
        first when turns fell out of the history; with summaries off, none, and the whole
        budget for the turns."""
        if self._config.summary_tokens <= 0:
            if asked.summary is None:
                return Summarised(None, asked.history)
            return Summarised(None, await self._store.history(
                key, self._config.history_tokens, self._config.max_images))
        if not asked.fallen:
            return Summarised(asked.summary, asked.history)
        return await self._summaries.refresh(key, author.id, asked)

    def _offered_tools(self, parameters: dict[str, Any], switches: Mapping[str, bool],
                       can_read_channel: bool) -> dict[str, Tool]:
        """The tools this reply offers (none with JSON answers, tool_choice none or no tool
        rounds allowed), put into `parameters` as function definitions with a tool_choice."""
        tools: dict[str, Tool] = {}
        if (self._config.max_tool_rounds > 0 and "response_format" not in parameters
                and parameters.get("tool_choice") != "none"):
            tools = self.tools.offered(switches, can_read_channel=can_read_channel)
        if not tools:
            parameters.pop("tool_choice", None)
            return tools
        parameters["tools"] = [tool.spec.definition() for tool in tools.values()]
        parameters.setdefault("tool_choice", "auto")
        return tools

    def _round_limit_note(self) -> str:
        return (f"(I stopped using tools after {self._config.max_tool_rounds} rounds, this "
                "bot's limit.)")

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
        reply: _Reply,
    ) -> tuple[StreamEnd, bool]:
        active = _ActiveReply(requester=author.id)
        self._active[key] = active
        renderer.start()
        task = asyncio.create_task(self._converse(request, renderer, reply))
        active.task = task
        saving = asyncio.create_task(self._save_as_it_grows(reply, renderer))
        try:
            return await task, False
        except asyncio.CancelledError:
            current = asyncio.current_task()
            ended = active.stopped or active.cut
            if not ended or (current is not None and current.cancelling()):
                task.cancel()
                await renderer.cancel()
                raise
            if active.cut:
                log.info("%s: answer cut: the bot is restarting", key)
                return StreamEnd(error=StreamInterrupted(CUT_FOR_RESTART)), False
            log.info("%s: answer stopped by a user", key)
            return StreamEnd(), True
        finally:
            saving.cancel()
            del self._active[key]

    async def _save_as_it_grows(self, reply: _Reply, renderer: Renderer) -> None:
        """Every few seconds, store the text so far, marked interrupted until the answer
        ends: a process killed mid-answer keeps what was shown."""
        saved = ""
        cut = StreamEnd(error=StreamInterrupted("The bot stopped before the answer ended."))
        while True:
            await self._sleep(self._config.partial_save_seconds)
            answer, text = reply.answer, reply.round_text(renderer.text)
            if text.strip() and text != saved:
                try:
                    await answer.save(text, cut, TurnStatus.INTERRUPTED, renderer.message_ids)
                except UserFacingError:
                    log.warning("%s: saving the answer so far failed", answer.key)
                saved = text

    async def _converse(self, request: ChatRequest, renderer: Renderer, reply: _Reply
                        ) -> StreamEnd:
        """Ask the model, running the tools it calls and asking again, round after round;
        the answer ends with the addresses the tools read."""
        rounds = 0
        while True:
            end = await self._pump(request, renderer, separate=rounds > 0)
            if end.error is not None or not end.tool_calls or not reply.tools:
                break
            if rounds >= self._config.max_tool_rounds:
                reply.round_limit_reached = True
                end = replace(end, tool_calls=())
                break
            rounds += 1
            request = await self._run_round(request, renderer, reply, end, rounds)
        if reply.sources:
            renderer.feed(_sources(reply.sources))
        return end

    async def _run_round(self, request: ChatRequest, renderer: Renderer, reply: _Reply,
                         end: StreamEnd, rounds: int) -> ChatRequest:
        """Store the round's calls, run them (a status line showing meanwhile), store their
        results, and return the request that asks again with them."""
        text = reply.round_text(renderer.text)
        answer = reply.answer
        await answer.save(text, end, TurnStatus.COMPLETE, renderer.message_ids,
                          tool_calls=end.tool_calls)
        reply.next_round(len(renderer.text))
        log.info("%s: tool round %d: %s", answer.key, rounds,
                 ", ".join(call.name[:64] for call in end.tool_calls))
        await renderer.show_status(status_line(end.tool_calls, reply.tools))
        outcomes = await self._runner.run(end.tool_calls, reply.tools, reply.context)
        await renderer.show_status("")
        results = [Turn(role=Role.TOOL, parts=(TextPart(o.text),), tool_call_id=o.call.id)
                   for o in outcomes]
        for result in results:
            await self._store.add_turn(answer.key, result)
        reply.sources.extend(s for o in outcomes for s in o.sources if s not in reply.sources)
        asked = Turn(role=Role.ASSISTANT, parts=_text_parts(text), tool_calls=end.tool_calls,
                     extra=end.extra)
        again = follow_up(request, [asked, *results])
        choice = "none" if rounds >= self._config.max_tool_rounds else "auto"
        return replace(again, parameters={**again.parameters, "tool_choice": choice})

    async def _pump(self, request: ChatRequest, renderer: Renderer, *, separate: bool = False
                    ) -> StreamEnd:
        """Stream one answer onto the renderer (a later round's text set apart from the
        text before it); its StreamEnd."""
        async for event in self._model.stream(request):
            if renderer.delivery_failed:
                return StreamEnd(error=StreamInterrupted(
                    "The answer could no longer be shown here (the message or thread is gone)."
                ))
            if isinstance(event, TextDelta):
                if separate and event.text and renderer.text.strip():
                    renderer.feed(ROUND_SEPARATOR)
                separate = separate and not event.text
                renderer.feed(event.text)
            else:
                return event
        return StreamEnd(error=StreamInterrupted("The model's stream ended without a result."))


@dataclass(slots=True)
class _Reply:
    """One reply's rounds: the current round's answer row and where its text begins in the
    drawn text, the tools offered, and the addresses the tools read."""

    answer: _Answer
    tools: dict[str, Tool]
    context: ToolContext
    start: int = 0
    sources: list[str] = field(default_factory=list)
    round_limit_reached: bool = False

    def round_text(self, text: str) -> str:
        """The current round's part of the drawn text."""
        return text[self.start :].removeprefix(ROUND_SEPARATOR)

    def next_round(self, start: int) -> None:
        """Begin a new round's answer row, its text at `start` of the drawn text."""
        self.answer = self.answer.successor()
        self.start = start


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

    def successor(self) -> _Answer:
        """The row of the next round's answer (not stored yet)."""
        return _Answer(self._store, self.key, self._requester, self._model)

    async def save(self, text: str, end: StreamEnd, status: TurnStatus,
                   message_ids: tuple[str, ...], *, tool_calls: tuple[ToolCall, ...] = ()
                   ) -> None:
        """Store the answer as it is now (with `tool_calls`: a round that called tools)."""
        turn = Turn(
            role=Role.ASSISTANT,
            parts=(TextPart(text),),
            message_ids=message_ids,
            usage=end.usage,
            model=end.model or self._model,
            status=status,
            error=str(end.error) if end.error else None,
            tool_calls=tool_calls,
            extra=end.extra,
        )
        await asyncio.shield(self._save(turn))

    async def _save(self, turn: Turn) -> None:
        async with self._lock:
            self._turn_id = await self._store.save_answer(
                self.key, turn, turn_id=self._turn_id, billed_to=self._requester
            )


def _text_parts(text: str) -> tuple[Part, ...]:
    return (TextPart(text),) if text else ()


def _sources(urls: list[str]) -> str:
    """The list that ends an answer whose tools read web pages."""
    shown = urls[:MAX_SOURCES]
    more = f"\n- and {len(urls) - len(shown)} more" if len(urls) > len(shown) else ""
    return "\n\nSources:\n" + "\n".join(f"- <{url}>" for url in shown) + more


def _same_content(edited: Turn, stored: Turn) -> bool:
    """Whether an edited question says what the stored one does (a link preview added)."""
    return (edited.text == stored.text
            and [i.sha256 for i in edited.images] == [i.sha256 for i in stored.images])


def _ending(end: StreamEnd, stopped: bool, text: str) -> tuple[TurnStatus, str]:
    if stopped:
        return TurnStatus.STOPPED, "(Stopped.)"
    if end.error is not None:
        status = TurnStatus.INTERRUPTED if text else TurnStatus.FAILED
        return status, f"{WARNING} {end.error}"
    if not text.strip():
        return TurnStatus.COMPLETE, "(The model returned an empty answer.)"
    return TurnStatus.COMPLETE, FINISH_NOTES.get(end.finish_reason or "", "")


async def _show_answer_controls(surface: Surface, outcome: ReplyOutcome) -> None:
    """Put the buttons on an answer that was shown, once the conversation is free again (a
    slow platform call holds up no one)."""
    if not outcome.message_ids or not isinstance(surface, AnswerControlsSurface):
        return
    try:
        await surface.show_answer_controls(outcome.message_ids[-1])
    except Exception:
        log.exception("could not show the answer's buttons")


async def _notify(surface: Surface, text: str) -> None:
    try:
        await surface.notify(text)
    except Exception:
        log.exception("could not show a notice")

