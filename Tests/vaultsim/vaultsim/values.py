"""Request field coercion the way Vault's framework does it (weakly typed JSON input), plus the
duration and time formats Vault prints."""

from __future__ import annotations

import datetime
import re

from .errors import bad_request

_UNIT_SECONDS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3,
    "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")


def parse_duration(value, field: str) -> int:
    """Seconds from an int, a numeric string ("3600") or a duration string ("1h30m", "30s")."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise bad_request(f'error converting input {value} for field "{field}": invalid duration')
    if isinstance(value, (int, float)):
        return int(value)
    if not isinstance(value, str):
        raise bad_request(f'error converting input {value!r} for field "{field}": invalid duration')
    text = value.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    pos, total = 0, 0.0
    sign = 1
    if text.startswith("-"):
        sign, pos = -1, 1
    if pos == len(text):
        raise bad_request(f'error converting input {value} for field "{field}": '
                          f'time: invalid duration "{value}"')
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if not m:
            raise bad_request(f'error converting input {value} for field "{field}": '
                              f'time: invalid duration "{value}"')
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    return sign * int(total)


def parse_int(value, field: str, default: int = 0) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        return int(value.strip())
    raise bad_request(f'error converting input {value!r} for field "{field}": '
                      f'strconv.ParseInt: parsing "{value}": invalid syntax')


def parse_bool(value, field: str, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("1", "t", "true"):
            return True
        if low in ("0", "f", "false"):
            return False
    raise bad_request(f'error converting input {value!r} for field "{field}": '
                      f'strconv.ParseBool: parsing "{value}": invalid syntax')


def parse_str_list(value, field: str) -> list[str]:
    """A list of strings from a JSON list or a comma-separated string (Vault's TypeCommaStringSlice)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    if isinstance(value, list):
        out = []
        for item in value:
            if not isinstance(item, str):
                raise bad_request(f'error converting input for field "{field}": expected strings')
            out.extend(p.strip() for p in item.split(",") if p.strip())
        return out
    raise bad_request(f'error converting input for field "{field}": expected a list of strings')


def parse_str(value, field: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise bad_request(f"'{field}' expected type 'string', got unconvertible type '{type(value).__name__}'")


def human_duration(seconds: float) -> str:
    """Go's time.Duration String() with Vault's trimming of trailing "0s"/"0m" ("1h", "1h30m", "59m57s")."""
    secs = int(seconds)
    if secs == 0:
        return "0s"
    neg = secs < 0
    secs = abs(secs)
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    if h:
        text = f"{h}h{m}m{s}s"
    elif m:
        text = f"{m}m{s}s"
    else:
        text = f"{s}s"
    if text.endswith("m0s"):
        text = text[:-2]
    if text.endswith("h0m"):
        text = text[:-2]
    return ("-" if neg else "") + text


def rfc3339(ts: float) -> str:
    """RFC 3339 with sub-second digits, UTC ("2024-05-01T12:00:00.123456Z")."""
    dt = datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
