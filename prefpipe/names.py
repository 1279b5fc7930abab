"""Names that users give (models, evaluation sets, combinations) become folder and partition names, so
each is one safe word: a letter or digit, then up to 99 letters, digits, '.', '_' or '-'. A name is
checked before anything is written."""

from __future__ import annotations

import re

from prefpipe.errors import InputError

NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"


def is_name(name: object) -> bool:
    return isinstance(name, str) and re.fullmatch(NAME, name) is not None


def check_name(name: str, field: str = "--name") -> str:
    if not is_name(name):
        raise InputError(f"must be one word of letters, digits, '.', '_' or '-' (starting with a letter or digit, "
                         f"at most 100 characters), got {name!r}", field=field)
    return name
