"""Errors aimod raises on purpose.

Every error is an :class:`AimodError` and also the matching builtin, so a plain ``except ValueError`` works::

    AimodError
     ├── InvalidArgumentError (ValueError)       an argument outside what is allowed
     │    ├── InvalidModulationError             a Modulation: sigma, focus, or its string form
     │    │    └── UnknownClassError (LookupError) a focus class the model does not have
     │    ├── InvalidLogitsError                 logits of the wrong type or shape, NaN or infinite values
     │    ├── InvalidKeysError                   row keys missing, of the wrong shape or dtype
     │    └── InvalidTargetError                 a utility target outside (1/K, 1]
     ├── ConfigError (ValueError)                a field of a configuration file (server.toml)
     ├── UnknownModelError (LookupError)         a model name that is not in the catalog
     ├── ModelSourceError (OSError)              an hf: source that cannot be read, or of no supported kind
     ├── MissingExtraError (ImportError)         an optional dependency that is not installed
     └── RequestError                            a request a service refuses (names its field and a code)
          ├── InvalidRequestError                a malformed or out-of-range request      -> HTTP 400
          ├── AuthenticationError                a missing, malformed or unknown API key  -> HTTP 401
          ├── PermissionDeniedError              a revoked API key                        -> HTTP 403
          │    └── TierLimitError                beyond the tier or the focus policy      -> HTTP 403
          ├── NotFoundError (LookupError)        another model, or a route of another kind -> HTTP 404
          ├── TooLargeError                      a body or an image over the server's limits -> HTTP 413
          ├── UnsupportedMediaTypeError          a body that is not JSON (or multipart)   -> HTTP 415
          └── ShuttingDownError                  the server is draining                   -> HTTP 503

Only the server's error handler (``aimod.server.errors``) knows the HTTP status codes. Request errors are not
``ValueError`` on purpose: pydantic would wrap a ``ValueError`` raised in a validator into a validation error,
and these must reach the handler as they are.

Messages say three things: what was given, what is allowed, and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "AimodError",
    "AuthenticationError",
    "ConfigError",
    "InvalidArgumentError",
    "InvalidKeysError",
    "InvalidLogitsError",
    "InvalidModulationError",
    "InvalidRequestError",
    "InvalidTargetError",
    "MissingExtraError",
    "ModelSourceError",
    "NotFoundError",
    "PermissionDeniedError",
    "RequestError",
    "ShuttingDownError",
    "TierLimitError",
    "TooLargeError",
    "UnknownClassError",
    "UnknownModelError",
    "UnsupportedMediaTypeError",
]


class AimodError(Exception):
    """Base class of every error aimod raises on purpose."""


class InvalidArgumentError(AimodError, ValueError):
    """An argument outside what is allowed.

    Args:
        name: The argument's name, as the caller spelled it.
        value: What was given (shown with ``repr``).
        expected: What is allowed, phrased to follow "must be".
        fix: How to fix it; optional.
    """

    def __init__(self, name: str, value: object, expected: str, fix: str = "") -> None:
        self.name = name
        self.value = value
        self.expected = expected
        shown = repr(value)
        if len(shown) > 200:
            shown = shown[:197] + "..."
        message = f"`{name}` must be {expected}, got {shown}."
        if fix:
            message += f" {fix}"
        super().__init__(message)


class InvalidModulationError(InvalidArgumentError):
    """A :class:`~aimod.Modulation` that cannot be built: bad sigma, focus, or string form."""


class UnknownClassError(InvalidModulationError, LookupError):
    """A focus class (name or id) that the model does not have."""

    def __str__(self) -> str:  # LookupError would otherwise quote the message like a KeyError
        return str(self.args[0])


class InvalidLogitsError(InvalidArgumentError):
    """Logits that cannot be modulated: not a floating tensor, a bad class dim, NaN or infinite values."""


class InvalidKeysError(InvalidArgumentError):
    """Row keys for keyed noise that are missing or of the wrong shape or dtype."""


class InvalidTargetError(InvalidArgumentError):
    """A utility target (expected agreement with the clean model) outside (1/K, 1]."""


class ConfigError(AimodError, ValueError):
    """A configuration file that cannot be used; the message names the file and the field.

    Args:
        where: The file (or "config").
        field: The field's dotted path, e.g. ``tenants[1].tier``.
        problem: What is wrong and what is allowed, phrased to follow the field name.
    """

    def __init__(self, where: str, field: str, problem: str) -> None:
        self.where = where
        self.field = field
        super().__init__(f"{where}: `{field}` {problem}")


class UnknownModelError(AimodError, LookupError):
    """A model name that is neither in the catalog nor of the form ``hf:<id or path>``."""

    def __str__(self) -> str:
        return str(self.args[0])


class ModelSourceError(AimodError, OSError):
    """An ``hf:`` source that cannot be read, or whose config is of no kind aimod supports.

    Unreadable: no such folder or hub id, no hub access, missing weights, tokenizer or processor files.

    Args:
        name: The model name, ``hf:<id or path>``.
        problem: What went wrong (the underlying error, or a sentence).
    """

    def __init__(self, name: str, problem: object) -> None:
        self.name = name
        text = str(problem).strip().rstrip(".")
        super().__init__(
            f"Cannot load {name}: {text}. An hf: model is a transformers image classifier, semantic segmenter "
            "or causal language model, as a local folder or a hub id (with hub access)."
        )

    def __str__(self) -> str:
        return str(self.args[0])


class MissingExtraError(AimodError, ImportError):
    """An optional dependency that is not installed; the message gives the command that installs it.

    Args:
        package: The missing package, as pip names it.
        extra: The aimod extra that provides it.
        command: The install command, when ``pip install "aimod[<extra>]"`` does not install the package
            (for example a package that must be installed with ``--no-deps``).
    """

    def __init__(self, package: str, extra: str, command: str | None = None) -> None:
        self.package = package
        self.extra = extra
        self.command = command or f'pip install "aimod[{extra}]"'
        super().__init__(
            f"This feature needs the optional package {package!r}, which is not installed. "
            f"Install it with: {self.command}"
        )


class RequestError(AimodError):
    """A request a service refuses.

    Args:
        message: What was wrong, what is allowed and how to fix it. Never a key or a secret.
        param: The request field at fault, if any (``focus``, ``messages.0.content``, ...).
        code: A short machine-readable reason (``invalid_api_key``, ``tier_not_allowed``, ...).
    """

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def __str__(self) -> str:
        return self.message


class InvalidRequestError(RequestError):
    """A malformed request, or a field outside what the server allows."""


class AuthenticationError(RequestError):
    """A missing, malformed or unknown API key."""


class PermissionDeniedError(RequestError):
    """A caller who may not do this: e.g. a revoked API key."""


class TierLimitError(PermissionDeniedError):
    """A request beyond what the caller's tier or the owner's focus policy allows (e.g. a ``sigma`` field)."""


class NotFoundError(RequestError, LookupError):
    """A model this server does not run, or a route for another kind of model."""


class TooLargeError(RequestError):
    """A body or an image over the server's byte or pixel limits."""


class UnsupportedMediaTypeError(RequestError):
    """A body of a content type the route does not read."""


class ShuttingDownError(RequestError):
    """The server is shutting down and takes no new work."""
