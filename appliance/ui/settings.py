"""The UI's settings pages: the effective settings of the global level, a namespace or an
environment, editable by those allowed to change them there.

Paths (under ``<url prefix>/ui``), each GET (the page) and POST (save):

``/settings/``
    Global settings (reading and changing them needs a ``*/*`` binding).
``/namespace/{ns}/settings/``
    A namespace's (a ``<ns>/*`` binding).
``/environment/{ns}/{env}/settings/``
    An environment's.

The page lists every key (:data:`~appliance.services.settings.SETTING_KEYS`) with its effective
value (``get_settings``, as ``GET /api/v1/setting/...``), what it means (the help of
``c.CondaStore.<key>``) and where it can be set. Callers with ``setting::update`` at the level
get a typed field per key that can be set there: lists one entry per line, artifacts as
checkboxes, numbers; a checkbox per key removes the level's own value (the level above applies
again). Saving sends only the keys whose field changed, so values inherited from above are
never copied down by a save; it calls ``update_settings`` (as ``PUT /api/v1/setting/...``),
which checks the permission and every value. Invalid values show the use case's message next
to their field and change nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect
from litestar.types import ControllerRouterHandler

from appliance.api.context import ApiContext
from appliance.api.dependencies import Context, Who
from appliance.auth.rbac import Permission
from appliance.config.store import ALWAYS_PRODUCED, ARTIFACT_TYPES, CondaStore
from appliance.services import settings
from appliance.services.access import Caller
from appliance.services.settings import SETTING_KEYS, SettingError, check_setting
from appliance.ui.forms import Form, read_form, see_other
from appliance.ui.namespaces import Rights, rights_of
from appliance.ui.rendering import Pages

Kind = Literal["list", "artifacts", "number", "optional_number", "text", "optional_text"]

#: How each key is edited (a form field per kind).
KINDS: dict[str, Kind] = {
    "build_artifacts": "artifacts",
    "conda_channel_alias": "text",
    "conda_max_solve_time": "number",
    "default_uid": "optional_number",
    "default_gid": "optional_number",
    "default_permissions": "optional_text",
    "default_namespace": "text",
    "filesystem_namespace": "text",
    "storage_threshold": "number",
}

#: Where each reach of :data:`SETTING_KEYS` lets a key be set, as the page says it.
WHERE = {
    "any": "at every level",
    "global": "globally only",
    "deployment": "in kiln_config.py only",
}


def kind_of(key: str) -> Kind:
    return KINDS.get(key, "list")


def meaning(key: str) -> str:
    """The first part of ``c.CondaStore.<key>``'s help (before its example), on one line."""
    help_text = CondaStore.class_traits()[key].help or ""
    return " ".join(help_text.split("Example:")[0].split())


@dataclass(frozen=True)
class Level:
    """Whose settings a page shows: global, a namespace, or an environment."""

    namespace: str | None = None
    environment: str | None = None

    @property
    def depth(self) -> int:
        """0 global, 1 namespace, 2 environment."""
        return 0 if self.namespace is None else 1 if self.environment is None else 2

    @property
    def title(self) -> str:
        if self.namespace is None:
            return "Global settings"
        if self.environment is None:
            return f"Settings of the namespace {self.namespace}"
        return f"Settings of {self.namespace}/{self.environment}"

    def source_text(self, source: str) -> str:
        """Where a value comes from, as this page says it (``source``: a value of
        :func:`~appliance.services.settings.setting_sources`)."""
        here = ("global", "namespace", "environment")[self.depth]
        if source == here:
            return "set here"
        return {
            "default": "from kiln_config.py (the deployment's default)",
            "global": "from the global settings",
            "namespace": f"from the namespace {self.namespace}",
        }.get(source, f"from the {source} level")

    def url(self, ui: str) -> str:
        if self.namespace is None:
            return f"{ui}/settings/"
        if self.environment is None:
            return f"{ui}/namespace/{self.namespace}/settings/"
        return f"{ui}/environment/{self.namespace}/{self.environment}/settings/"

    def above(self) -> str:
        """What applies when this level sets nothing."""
        return ("kiln_config.py", "the global settings", "the namespace's settings")[self.depth]

    def may_update(self, rights: Rights) -> bool:
        """Whether ``rights`` show ``setting::update`` here (as the use case requires it)."""
        if self.namespace is None:
            held = rights.over("*/*")
        elif self.environment is None:
            held = rights.over(f"{self.namespace}/*")
        else:
            held = rights.on(self.namespace, self.environment)
        return Permission.SETTING_UPDATE in held

    def settable(self, key: str) -> bool:
        """Whether ``key`` can be set at this level at all."""
        reach = SETTING_KEYS[key]
        return reach == "any" or (reach == "global" and self.depth == 0)


def shown(value: Any) -> str:
    """A value as its form field holds it."""
    if value is None:
        return ""
    if isinstance(value, list):
        return "\n".join(str(item) for item in value)
    return str(value)


def entered_value(form: Form, key: str) -> tuple[bool, Any]:
    """``(sent, value)`` of ``key``'s field: the value a PUT would carry (numbers as numbers
    when they read as such; anything else as typed, for the use case to judge)."""
    kind = kind_of(key)
    if kind == "artifacts":
        if not form.has(f"{key}:shown"):
            return False, None
        chosen = set(form.values(key)) | set(ALWAYS_PRODUCED)
        return True, [name for name in ARTIFACT_TYPES if name in chosen]
    if not form.has(key):
        return False, None
    if kind == "list":
        return True, [line.strip() for line in form.raw(key).splitlines() if line.strip()]
    text = form.text(key)
    if kind.startswith("optional") and not text:
        return True, None
    if kind.endswith("number") and re.fullmatch(r"-?\d+", text):
        return True, int(text)
    return True, text


def unchanged(key: str, entered: Any, current: Any) -> bool:
    if kind_of(key) == "artifacts":
        return set(entered) == set(current)
    return bool(entered == current)


@dataclass(frozen=True)
class Row:
    """One key as the page shows it."""

    key: str
    kind: Kind
    value: Any
    field: str
    meaning: str
    where: str
    editable: bool
    problem: str = ""
    #: Where the effective value comes from (``"set here"``, ``"from the global settings"``).
    source: str = ""
    #: Whether this level sets the key itself (only then can it go back to the level above).
    set_here: bool = False


def rows(
    level: Level,
    effective: Mapping[str, Any],
    may_update: bool,
    entered: Mapping[str, str] | None = None,
    problems: Mapping[str, str] | None = None,
    sources: Mapping[str, str] | None = None,
) -> list[Row]:
    """Every key, settable ones first (in :data:`SETTING_KEYS` order)."""
    found = []
    for key, reach in SETTING_KEYS.items():
        kind = kind_of(key)
        value = effective[key]
        field = (entered or {}).get(key, shown(value))
        row = Row(
            key=key, kind=kind, value=value, field=field, meaning=meaning(key),
            where=WHERE[reach], editable=may_update and level.settable(key),
            problem=(problems or {}).get(key, ""),
            source=level.source_text((sources or {}).get(key, "default")),
            set_here=level.source_text((sources or {}).get(key, "default")) == "set here",
        )  # fmt: skip
        found.append(row)
    return sorted(found, key=lambda row: not level.settable(row.key))


def problems_by_key(message: str, keys: Sequence[str]) -> dict[str, str]:
    """A :class:`SettingError`'s message placed at the one key it names (``form`` otherwise)."""
    named = [key for key in keys if re.search(rf"\b{re.escape(key)}\b", message)]
    return {named[0] if len(named) == 1 else "form": message}


def routes(pages: Pages) -> list[ControllerRouterHandler]:
    """The settings pages' handlers (for the ``/ui`` router)."""

    async def show(
        request: Request[Any, Any, Any],
        context: ApiContext,
        caller: Caller,
        level: Level,
        *,
        status_code: int = 200,
        entered: Mapping[str, str] | None = None,
        problems: Mapping[str, str] | None = None,
    ) -> Response[str]:
        found = await context.db.read(
            settings.get_settings, caller, context.setting_defaults, level.namespace,
            level.environment,
        )  # fmt: skip
        sources = await context.db.read(
            settings.setting_sources, caller, context.setting_defaults, level.namespace,
            level.environment,
        )  # fmt: skip
        may_update = level.may_update(await rights_of(context, caller))
        return pages.render(
            "settings.html", caller, request, status_code=status_code, level=level,
            action=level.url(pages.ui), may_update=may_update,
            rows=rows(
                level, msgspec.structs.asdict(found), may_update, entered, problems, sources
            ),
            form_problem=(problems or {}).get("form", ""), artifact_types=ARTIFACT_TYPES,
            always_produced=ALWAYS_PRODUCED,
        )  # fmt: skip

    async def save(
        request: Request[Any, Any, Any], context: ApiContext, caller: Caller, level: Level
    ) -> Response[Any]:
        form = await read_form(request, caller, pages.secret)
        found = await context.db.read(
            settings.get_settings, caller, context.setting_defaults, level.namespace,
            level.environment,
        )  # fmt: skip
        current = msgspec.structs.asdict(found)
        reset = set(form.values("reset"))
        changes: dict[str, Any] = {}
        problems: dict[str, str] = {}
        for key in SETTING_KEYS:
            if not level.settable(key):
                continue
            if key in reset:
                changes[key] = None
                continue
            sent, value = entered_value(form, key)
            if not sent or unchanged(key, value, current[key]):
                continue
            if value is not None:
                try:
                    check_setting(key, value)
                except SettingError as error:
                    problems[key] = error.message
                    continue
            changes[key] = value
        try:
            if problems:
                # Nothing is written; the permission is still the use case's to check.
                await context.db.run(
                    settings.update_settings, caller, context.setting_defaults, {},
                    level.namespace, level.environment,
                )  # fmt: skip
            else:
                await context.db.run(
                    settings.update_settings, caller, context.setting_defaults, changes,
                    level.namespace, level.environment,
                )  # fmt: skip
        except SettingError as error:
            problems = problems_by_key(error.message, list(changes))
        if problems:
            entered = {}
            for key in SETTING_KEYS:
                sent, value = entered_value(form, key)
                if sent:
                    entered[key] = form.raw(key) if kind_of(key) != "artifacts" else shown(value)
            return await show(
                request, context, caller, level, status_code=400, entered=entered,
                problems=problems,
            )  # fmt: skip
        return see_other(level.url(pages.ui), "saved")

    @get("/settings/", include_in_schema=False)
    async def global_settings(
        request: Request[Any, Any, Any], context: Context, caller: Who
    ) -> Response[Any]:
        """The global settings; a logged-in caller who may not read them (most users) is sent
        to their primary namespace's settings instead of a refusal."""
        rights = await rights_of(context, caller)
        if rights.authenticated and Permission.SETTING_READ not in rights.over("*/*"):
            primary = Level(namespace=rights.primary_namespace)
            if Permission.SETTING_READ in rights.on(rights.primary_namespace):
                return Redirect(primary.url(pages.ui), status_code=303)
        return await show(request, context, caller, Level())

    @post("/settings/", include_in_schema=False)
    async def save_global_settings(
        request: Request[Any, Any, Any], context: Context, caller: Who
    ) -> Response[Any]:
        return await save(request, context, caller, Level())

    @get("/namespace/{namespace:str}/settings/", include_in_schema=False)
    async def namespace_settings(
        request: Request[Any, Any, Any], context: Context, caller: Who, namespace: FromPath[str]
    ) -> Response[str]:
        return await show(request, context, caller, Level(namespace))

    @post("/namespace/{namespace:str}/settings/", include_in_schema=False)
    async def save_namespace_settings(
        request: Request[Any, Any, Any], context: Context, caller: Who, namespace: FromPath[str]
    ) -> Response[Any]:
        return await save(request, context, caller, Level(namespace))

    @get("/environment/{namespace:str}/{environment:str}/settings/", include_in_schema=False)
    async def environment_settings(
        request: Request[Any, Any, Any],
        context: Context,
        caller: Who,
        namespace: FromPath[str],
        environment: FromPath[str],
    ) -> Response[str]:
        return await show(request, context, caller, Level(namespace, environment))

    @post("/environment/{namespace:str}/{environment:str}/settings/", include_in_schema=False)
    async def save_environment_settings(
        request: Request[Any, Any, Any],
        context: Context,
        caller: Who,
        namespace: FromPath[str],
        environment: FromPath[str],
    ) -> Response[Any]:
        return await save(request, context, caller, Level(namespace, environment))

    return [
        global_settings, save_global_settings, namespace_settings, save_namespace_settings,
        environment_settings, save_environment_settings,
    ]  # fmt: skip
