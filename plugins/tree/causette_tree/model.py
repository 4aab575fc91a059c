"""Flow format 1 of the `tree` engine, as msgspec Structs.

One definition does three jobs: it decodes flows for `compile`, it checks their shape in
`validate` (node by node, so every problem is reported at once), and it generates the JSON
Schema that the admin API publishes. Field names are the JSON names.
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, Union

import msgspec

FORMAT = 1

NodeId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$",
                                     description="a node id of this flow")]
Target = Annotated[str, msgspec.Meta(description="the id of the next node; empty ends the run "
                                     "with outcome `completed`")]
VarName = Annotated[str, msgspec.Meta(
    pattern=r"^(contact\.)?[A-Za-z_][A-Za-z0-9_]{0,63}$",
    description="a flow variable (`category`) or a contact attribute (`contact.email`)")]
Text = Annotated[Union[str, Annotated[dict[str, str], msgspec.Meta(min_length=1)]], msgspec.Meta(
    description="a text with `{{templates}}`, or a map of locale to text (at least one): "
                '{"fr": "Bonjour", "en": "Hello"}')]
# What the schema says of a duration is what compiled.duration accepts; decoding takes any
# number or text so that the validator can say what is wrong with it, at its path.
Duration = Annotated[Union[float, str], msgspec.Meta(
    description='seconds, or a duration such as "90s", "15m", "2h", "1d12h", "1w"; more than 0, '
                'at most a year (366d)',
    extra_json_schema={"allOf": [{"anyOf": [
        {"type": "number", "exclusiveMinimum": 0, "maximum": 366 * 86400},
        {"type": "string", "pattern": r"^ *(\d+(\.\d+)? *[smhdwSMHDW] *)+(?!\n)$"}]}]})]


class _Strict(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


# --- parts -------------------------------------------------------------------------------
class Retry(_Strict):
    """What happens to an answer that doesn't fit: say `text` and ask again, at most `max`
    times, then go to `then` (or end the run as `abandoned` when `then` is empty)."""
    text: Text | None = None
    max: Annotated[int, msgspec.Meta(ge=0, le=20)] = 0      # 0 = ask again without limit
    then: Target = ""


class Timeout(_Strict):
    """No answer within `after`: send `reminder` (when given) and wait `after` again; still
    nothing: go to `then`, or end the run as `abandoned`."""
    after: Duration
    reminder: Text | None = None
    then: Target = ""


class ChoiceOption(_Strict):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    title: Text
    next: Target = ""
    synonyms: list[str] = []
    description: Text | None = None


class Expr(_Strict):
    """A condition, never code: `{"var": "age", "gte": 18}`, `{"all": [...]}`,
    `{"any": [...]}`, `{"not": {...}}`. String operands may hold `{{templates}}`."""
    var: str = ""
    eq: Any = msgspec.UNSET
    ne: Any = msgspec.UNSET
    in_: list[Any] | msgspec.UnsetType = msgspec.field(default=msgspec.UNSET, name="in")
    nin: list[Any] | msgspec.UnsetType = msgspec.UNSET
    gt: float | str | msgspec.UnsetType = msgspec.UNSET
    gte: float | str | msgspec.UnsetType = msgspec.UNSET
    lt: float | str | msgspec.UnsetType = msgspec.UNSET
    lte: float | str | msgspec.UnsetType = msgspec.UNSET
    exists: bool | msgspec.UnsetType = msgspec.UNSET
    contains: Any = msgspec.UNSET
    matches: str | msgspec.UnsetType = msgspec.UNSET
    all: list["Expr"] | msgspec.UnsetType = msgspec.UNSET
    any: list["Expr"] | msgspec.UnsetType = msgspec.UNSET
    not_: Union["Expr", msgspec.UnsetType] = msgspec.field(default=msgspec.UNSET, name="not")


OPERATORS = ("eq", "ne", "in", "nin", "gt", "gte", "lt", "lte", "exists", "contains", "matches")
COMBINATORS = ("all", "any", "not")


class Branch(_Strict):
    if_: Expr = msgspec.field(name="if")
    next: Target


# Weights are relative (1 and 3 split 25/75): a bound costs nothing, and keeps their sum
# finite (1e308 twice is infinity, which sent every contact down the last variant). The
# validator enforces it rather than the decoder, so that a flow published before it still
# compiles; `weights` reads such a flow's weights as bounded.
MAX_WEIGHT = 1_000_000


class Variant(_Strict):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    next: Target
    weight: Annotated[float, msgspec.Meta(ge=0, extra_json_schema={"maximum": MAX_WEIGHT})] = 1.0


def weights(variants: "list[Variant]") -> list[float]:
    """The variants' weights within 0 to MAX_WEIGHT (NaN counts as 0), for the engine and
    the pictures."""
    return [min(max(v.weight, 0.0), MAX_WEIGHT) if v.weight == v.weight else 0.0 for v in variants]


class MediaItem(_Strict):
    url: str
    kind: Literal["image", "audio", "video", "file"] = "image"
    caption: Text | None = None


# --- nodes -------------------------------------------------------------------------------
class Node(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, omit_defaults=True,
           kw_only=True):
    """Common to every node: `label` names it in pictures and transcripts."""
    label: str = ""


class Message(Node, tag="message"):
    """Says something and goes on."""
    text: Text | None = None
    media: list[MediaItem] = []
    next: Target = ""


class ChoiceNode(Node, tag="choice"):
    """Asks a question with buttons and waits; free-text answers are matched tolerantly."""
    text: Text
    choices: Annotated[list[ChoiceOption], msgspec.Meta(min_length=1, max_length=50)]
    save_as: VarName | Literal[""] = ""
    next: Target = ""              # for choices without their own `next`
    retry: Retry | None = None
    timeout: Timeout | None = None


Validator = Literal["text", "email", "phone", "number", "date", "regex"]
VALIDATORS = ("text", "email", "phone", "number", "date", "regex")


class Input(Node, tag="input"):
    """Asks for a value, checks it with `validate` and saves it."""
    text: Text
    save_as: VarName
    validate: Validator = "text"
    pattern: str = ""              # validate = "regex": the whole answer must match
    min: float | None = None       # number: smallest value; text: shortest length
    max: float | None = None
    next: Target = ""
    retry: Retry | None = None
    timeout: Timeout | None = None


class Condition(Node, tag="condition"):
    """Goes to the first branch whose `if` holds, else to `else`."""
    branches: list[Branch]
    else_: Target = msgspec.field(default="", name="else")


class SetNode(Node, tag="set"):
    """Sets variables; string values are templates (`"{{a}}"` alone keeps a's type)."""
    vars: dict[str, Any]
    next: Target = ""


class StepNode(Node, tag="step"):
    """Calls a plugin's step type; its variables land in the session (under `save_as.` when
    given); `branches` route on the step's named outcome, `on_error` on failure."""
    step: str
    with_: dict[str, Any] = msgspec.field(default_factory=dict, name="with")
    next: Target = ""
    on_error: Target = ""
    branches: dict[str, Target] = {}
    save_as: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")] | Literal[""] = ""


class Goto(Node, tag="goto"):
    """Jumps to another node of this flow (`node`) or starts another flow (`flow`)."""
    node: str = ""
    flow: str = ""


class Wait(Node, tag="wait"):
    """A durable delay (minutes to days); the gateway's timers resume the run."""
    for_: Duration = msgspec.field(name="for")
    text: Text | None = None
    next: Target = ""


class End(Node, tag="end"):
    outcome: Literal["completed", "converted", "abandoned"] = "completed"
    text: Text | None = None


class Handoff(Node, tag="handoff"):
    """Hands the conversation to a human of `queue`; the bot stays silent until released.
    With `next`, the run goes on there at the contact's first message after release."""
    text: Text | None = None
    queue: str = "agents"
    reason: str = ""
    next: Target = ""


class Split(Node, tag="split"):
    """A/B test: each contact goes down one variant, by weight, always the same one."""
    variants: Annotated[list[Variant], msgspec.Meta(min_length=1, max_length=10)]


class Foreach(Node, tag="foreach"):
    """Runs `do` once per item of the list variable `list` (at most `max` times), with the
    item in `as` and its 1-based position in `<as>_index`; the body comes back here by
    its `next`; then goes to `next`."""
    list: str
    do: Target
    as_: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")] = \
        msgspec.field(default="item", name="as")
    max: Annotated[int, msgspec.Meta(ge=1, le=100)] = 10
    next: Target = ""


AnyNode = Union[Message, ChoiceNode, Input, Condition, SetNode, StepNode, Goto, Wait, End,
                Handoff, Split, Foreach]
NODE_TYPES: dict[str, type[Node]] = {c.__struct_config__.tag: c for c in AnyNode.__args__}  # type: ignore[attr-defined]
WAITING = ("choice", "input", "wait")   # nodes where a run stops until something happens


# --- top level ---------------------------------------------------------------------------
class KeywordTrigger(_Strict, tag_field="type", tag="keyword"):
    any: Annotated[list[str], msgspec.Meta(min_length=1)]


class ReferralTrigger(_Strict, tag_field="type", tag="referral"):
    ref: Annotated[str, msgspec.Meta(min_length=1)]


class StartTrigger(_Strict, tag_field="type", tag="start"):
    """The first message of a contact with no running flow."""


class WidgetTrigger(_Strict, tag_field="type", tag="widget"):
    """The contact opened the web chat widget."""


class CampaignTrigger(_Strict, tag_field="type", tag="campaign"):
    """The default flow of campaigns that start a flow."""


Trigger = Union[KeywordTrigger, ReferralTrigger, StartTrigger, WidgetTrigger, CampaignTrigger]


class Active(_Strict):
    """When the flow runs: ISO 8601 date-times, read in the tenant's time zone when they
    have no offset. Outside: `message`, or the flow `flow`."""
    from_: dt.datetime | None = msgspec.field(default=None, name="from")
    until: dt.datetime | None = None
    message: Text | None = None
    flow: str = ""


class Flow(_Strict):
    format: Literal[1]
    id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    start: str
    nodes: Annotated[dict[str, AnyNode], msgspec.Meta(extra_json_schema={"minProperties": 1})]
    name: str = ""
    engine: Literal["tree"] = "tree"
    locale: str = "fr"
    locales: list[str] = []           # declared locales: every text should have each
    description: str = ""
    active: Active | None = None
    triggers: list[Trigger] = []
    vars: dict[str, Any] = {}         # variables and their initial values


def schema() -> dict[str, Any]:
    out = msgspec.json.schema(Flow)
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["title"] = "Causette flow (engine tree, format 1)"
    return out
