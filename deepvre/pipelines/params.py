"""Pipeline parameters: ``-p key=value`` strings coerced to each pipeline's defaults."""


def parse_pairs(pairs):
    """``["size=64", "seed=1"]`` -> ``{"size": "64", "seed": "1"}``."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"parameter {pair!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def _coerce(key, value, default):
    if isinstance(value, str) and not isinstance(default, str) and default is not None:
        try:
            if isinstance(default, bool):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            if isinstance(default, int):
                return int(value)
            if isinstance(default, float):
                return float(value)
            if isinstance(default, (list, tuple)):
                items = [v.strip() for v in value.split(",") if v.strip()]
                kind = type(default[0]) if default else str
                return [kind(v) for v in items]
        except ValueError:
            raise ValueError(f"parameter {key}={value!r}: expected {type(default).__name__}") from None
    if isinstance(default, tuple):
        return list(value)
    return value


def resolve(kind, params, defaults):
    """Fill defaults, coerce strings, and refuse unknown keys (naming them)."""
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(f"{kind}: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(defaults))}")
    out = {}
    for key, default in defaults.items():
        out[key] = _coerce(key, params[key], default) if key in params else (
            list(default) if isinstance(default, tuple) else default)
    return out
