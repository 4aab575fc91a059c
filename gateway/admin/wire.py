"""Request and response shapes of the admin API. The same Structs validate requests, encode
answers and generate `/admin/v1/openapi.json`."""
from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from ..config import Ident, Slug
from ..problems import ProblemItem
from ..types import Choice, Event, Reply
from ..store.records import KeyInfo, TenantInfo, VersionInfo

MAX_TTL = 366 * 24 * 3600          # a year: sessions idle longer are gone anyway
MAX_VERSION = 2**31 - 1
TenantRole = Literal["owner", "editor", "agent", "viewer"]
Settings = dict[str, Any]


# --- tenants ---------------------------------------------------------------------------------
class TenantCreate(msgspec.Struct, forbid_unknown_fields=True):
    slug: Slug
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    locale: str = "fr"
    locales: list[str] = []
    timezone: str = "Europe/Paris"
    session_ttl: Annotated[int, msgspec.Meta(ge=60, le=MAX_TTL)] = 7 * 24 * 3600


class TenantPatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | msgspec.UnsetType = msgspec.UNSET
    locale: str | msgspec.UnsetType = msgspec.UNSET
    locales: list[str] | msgspec.UnsetType = msgspec.UNSET
    timezone: str | msgspec.UnsetType = msgspec.UNSET
    session_ttl: Annotated[int, msgspec.Meta(ge=60, le=MAX_TTL)] | msgspec.UnsetType = msgspec.UNSET


class TenantList(msgspec.Struct):
    tenants: list[TenantInfo]


class ApplyResult(msgspec.Struct):
    slug: str
    tenant: list[str] = []
    plugins: list[str] = []
    channels: list[str] = []
    flows: list[str] = []
    published: list[str] = []
    removed: list[str] = []
    warnings: list[ProblemItem] = []


# --- keys ------------------------------------------------------------------------------------
class KeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    role: TenantRole = "viewer"
    name: Annotated[str, msgspec.Meta(max_length=100)] = ""


class AgencyKeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(max_length=100)] = ""


class KeyCreated(msgspec.Struct, omit_defaults=True):
    """The only answer that ever holds the key itself: store it now, it is not shown again."""
    id: str
    key: str
    role: str
    tenant: str | None = None
    name: str = ""


class KeyList(msgspec.Struct):
    keys: list[KeyInfo]


# --- plugins ---------------------------------------------------------------------------------
class InstalledPlugin(msgspec.Struct):
    name: str
    dist: str
    version: str
    hooks: list[str]
    registers: dict[str, list[str]]
    settings_schema: dict[str, Any] | None = None
    secrets: list[str] = []


class InstalledList(msgspec.Struct):
    plugins: list[InstalledPlugin]


class TenantPlugin(msgspec.Struct):
    name: str
    enabled: bool
    settings: Settings = {}          # secrets shown as "***set***"
    settings_schema: dict[str, Any] | None = None
    version: str = ""
    registers: dict[str, list[str]] = {}


class TenantPlugins(msgspec.Struct):
    available: list[TenantPlugin]
    enabled: dict[str, Settings]


class PluginSettingsIn(msgspec.Struct, forbid_unknown_fields=True):
    settings: Settings = {}


# --- channels --------------------------------------------------------------------------------
class ChannelCreate(msgspec.Struct, forbid_unknown_fields=True):
    id: Ident
    type: str
    settings: Settings = {}
    enabled: bool = True


class ChannelPut(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    settings: Settings = {}
    enabled: bool = True


class ChannelOut(msgspec.Struct):
    id: str
    type: str
    settings: Settings                 # secret fields appear as "***set***" when they hold a value
    enabled: bool
    webhook: str                       # path the provider calls, under the gateway's public URL
    plugin: str = ""
    capabilities: dict[str, Any] = {}
    created_at: float = 0.0
    updated_at: float = 0.0


class ChannelList(msgspec.Struct):
    channels: list[ChannelOut]


# --- flows -----------------------------------------------------------------------------------
class FlowSummary(msgspec.Struct):
    id: str
    name: str
    engine: str
    revision: int
    etag: str
    latest_version: int
    draft_published: bool
    updated_at: float


class FlowList(msgspec.Struct):
    flows: list[FlowSummary]


class FlowOut(msgspec.Struct):
    id: str
    name: str
    engine: str
    revision: int
    etag: str
    latest_version: int
    draft_published: bool
    updated_at: float
    draft: dict[str, Any]
    problems: list[ProblemItem] = []       # validation of the draft (drafts may be invalid)


class ValidateOut(msgspec.Struct):
    valid: bool
    errors: int
    warnings: int
    problems: list[ProblemItem]


class PublishIn(msgspec.Struct, forbid_unknown_fields=True):
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""


class PublishOut(msgspec.Struct):
    id: str
    version: int
    created: bool                      # False: the draft equals the latest version already
    published_at: float
    warnings: list[ProblemItem] = []


class RollbackIn(msgspec.Struct, forbid_unknown_fields=True):
    version: Annotated[int, msgspec.Meta(ge=1, le=MAX_VERSION)]
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""


class VersionList(msgspec.Struct):
    versions: list[VersionInfo]


class VersionOut(msgspec.Struct):
    id: str
    version: int
    published_at: float
    definition: dict[str, Any]
    hash: str = ""
    note: str = ""
    by: str = ""
    rollback_of: int = 0


class Change(msgspec.Struct, omit_defaults=True):
    """One field that differs; `path` is a JSON path inside the node (or the flow)."""
    path: str
    op: Literal["added", "removed", "changed"]
    before: Any = None
    after: Any = None


class NodeDiff(msgspec.Struct, omit_defaults=True):
    node: str
    status: Literal["added", "removed", "changed"]
    type: str = ""
    changes: list[Change] = []


class FlowDiff(msgspec.Struct):
    id: str
    a: int | str
    b: int | str
    identical: bool
    flow: list[Change] = []            # top-level fields other than `nodes`
    nodes: list[NodeDiff] = []
    summary: dict[str, int] = {}


class GraphOut(msgspec.Struct, omit_defaults=True):
    mermaid: str = ""
    svg: str = ""


# --- simulate --------------------------------------------------------------------------------
class ScriptItem(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One user action. A bare string in the script is `{"text": ...}`."""
    text: str = ""
    choice: str = ""                   # a button's id, as a click sends it
    payload: str = ""
    kind: Literal["text", "choice", "postback", "media", "location", "referral", "open"] | None = None
    ref: str = ""                      # referral ref (ad, deep link)
    wait: Annotated[float, msgspec.Meta(ge=0)] = 0.0   # move the clock on (fires due timers) first


class SimulateIn(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    script: list[str | ScriptItem] = []
    version: Annotated[int, msgspec.Meta(ge=1, le=MAX_VERSION)] | Literal["draft"] = "draft"  # or a version
    contact: dict[str, Any] = {}       # contact attributes the flow sees (first_name, email...)
    vars: dict[str, Any] = {}
    channel: str = ""                  # a channel instance id of the tenant, or a channel type
    locale: str = ""
    now: float | str | None = None     # unix seconds or ISO 8601; default: the server's clock
    live_steps: bool = False           # run steps for real (editor role); default: dry-run
    max_turns: Annotated[int, msgspec.Meta(ge=1, le=500)] = 100


class TranscriptEntry(msgspec.Struct, omit_defaults=True):
    who: Literal["user", "bot", "system"]
    text: str = ""
    choices: list[Choice] = []
    reply: Reply | None = None         # the bot's whole reply (cards, media, template)
    node: str = ""                     # for the bot: the node waiting after this turn
    at: float = 0.0                    # simulated clock


class StepCall(msgspec.Struct, omit_defaults=True):
    step: str
    args: dict[str, Any]
    dry_run: bool
    ok: bool
    vars: dict[str, Any] = {}
    error: str = ""


class SimulateOut(msgspec.Struct):
    flow: str
    version: int | str
    transcript: list[TranscriptEntry]
    path: list[str]                    # nodes visited, in order
    vars: dict[str, Any]
    contact: dict[str, Any]
    waiting: str = ""                  # node waiting for the user when the script ran out
    ended: str = ""                    # outcome when the run ended
    handoff: dict[str, Any] | None = None
    steps: list[StepCall] = []
    events: list[Event] = []
    problems: list[ProblemItem] = []       # warnings of the simulated definition


# --- conversations ---------------------------------------------------------------------------
class AgentAction(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A human agent's action; `agent` names who (default: the API key's name)."""
    agent: Annotated[str, msgspec.Meta(max_length=100)] = ""
    text: Annotated[str, msgspec.Meta(max_length=4096)] = ""


class ConversationOut(msgspec.Struct):
    channel: str
    contact: str
    session: dict[str, Any] | None     # the live state (None: no conversation running)
    events: list[Event]                # latest events, or those of the action just taken
