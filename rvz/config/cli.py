"""Command-line options generated from settings: the flag, help, default shown and env var of each.

An option takes text and leaves its checking to the setting's ``Spec`` (``rvz.config.fields``), so a
value is refused on the command line, in the environment and in the file with the same message. The
command receives what was given (on the command line or through the option's env var) as one dict
of ``Given`` by setting key, and nothing for what was not: a setting the user did not give keeps the
value of the file (or of a [[models]] entry), which a default filled in by click would hide.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from rvz.config.fields import Spec, specs
from rvz.config.overrides import Given

F = TypeVar("F", bound=Callable[..., Any])
_METAVARS = {int: "INTEGER", float: "NUMBER", bool: "true|false", str: "TEXT"}


class SettingOption(click.Option):
    """A click option that sets a setting: ``settings_class`` and ``setting_key`` name it (for the
    configuration reference, ``rvz.config.reference``)."""

    def __init__(self, *args: Any, settings_class: type, setting_key: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings_class = settings_class
        self.setting_key = setting_key


def flag_of(key: str) -> str:
    return "--" + key.replace("_", "-")


def setting_options(cls: type, keys: Sequence[str], *, into: str, envvar_prefix: str = "",
                    flags: Mapping[str, str] | None = None, envvars: Mapping[str, str] | None = None,
                    defaults: Mapping[str, Any] | None = None, helps: Mapping[str, str] | None = None,
                    required: Sequence[str] = ()) -> Callable[[F], F]:
    """Add an option per setting ``keys`` of ``cls``; the command gets ``into=dict[key, Given]``.

    Each option is ``--key-name`` (or ``flags[key]``); its env var is ``envvars[key]``, else
    ``envvar_prefix + KEY`` (none without a prefix). ``helps`` replace what the setting declares, and
    ``defaults`` its default, for a command that uses it differently (e.g. `rvz replay`'s role): a
    command's own default is passed as given when the option is not. Click refuses a command
    without the ``required`` ones.
    """
    flags, envvars, defaults, helps = flags or {}, envvars or {}, defaults or {}, helps or {}
    options = [_Option(cls, spec, flags.get(key) or flag_of(key), envvars.get(key) or _envvar(envvar_prefix, key),
                       f"{into}__{key}") for key, spec in ((k, specs(cls)[k]) for k in keys)]

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def collect(**kwargs: Any) -> Any:
            given = {option.spec.key: option.given(kwargs.pop(option.param), defaults.get(option.spec.key))
                     for option in options}
            return command(**kwargs, **{into: {key: g for key, g in given.items() if g is not None}})

        for option in reversed(options):
            key = option.spec.key
            default = None if option.spec.required else option.spec.default  # a required setting has none
            collect = option.decorator(defaults.get(key, default), helps.get(key, option.spec.help),
                                       key in required)(collect)
        return collect  # type: ignore[return-value]

    return decorate


def _envvar(prefix: str, key: str) -> str | None:
    return prefix + key.upper() if prefix else None


class _Option:
    def __init__(self, cls: type, spec: Spec, flag: str, envvar: str | None, param: str) -> None:
        self.cls = cls
        self.spec = spec
        self.flag = flag
        self.envvar = envvar
        self.param = param

    def decorator(self, default: Any, help_text: str, required: bool) -> Callable[[F], F]:
        # A default click fills in is told apart from a value given by its source (see ``given``).
        # (No default at all rather than None: click takes None for a value given, even for a required option.)
        shown: dict[str, Any] = {} if required or default in (None, "") else {"default": self.spec.to_text(default)}
        metavar = ("[" + "|".join(self.spec.choices) + "]" if self.spec.choices else
                   self.spec.setting.metavar or _METAVARS[self.spec.kind])
        return click.option(self.flag, self.param, **shown, cls=SettingOption, settings_class=self.cls,
                            setting_key=self.spec.key, metavar=metavar, envvar=self.envvar,
                            show_envvar=self.envvar is not None, allow_from_autoenv=False, show_default=True,
                            required=required, help=help_text)

    def given(self, text: str | None, default: Any) -> Given | None:
        source = click.get_current_context().get_parameter_source(self.param)
        if text is None or source in (None, ParameterSource.DEFAULT):
            return None if default is None else Given(self.spec.to_text(default), "default", self.flag)
        if source is ParameterSource.ENVIRONMENT:
            return Given(text, "environment", self.envvar or "")
        return Given(text, "command line", self.flag)
