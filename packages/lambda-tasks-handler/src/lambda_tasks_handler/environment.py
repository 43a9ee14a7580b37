"""Cold-start environment loaders (SPEC §6 "Loader precedence", §8).

:func:`load_environment` runs once, at the first invocation, before
``django.setup()``. In order:

1. ``LAMBDA_TASKS_ENVIRONMENT_SECRETS_MANAGER_ARN`` names a Secrets Manager
   secret whose SecretString is a flat JSON object of string keys to string
   values; every key is written into the environment, overriding variables
   already set.
2. ``LAMBDA_TASKS_SSM_ENVIRONMENT`` names an SSM parameter (read with
   decryption, so a SecureString works) holding the same kind of object; it is
   applied after step 1, so it wins over it, and also overrides variables
   already set.
3. Every ``LAMBDA_TASKS_SECRET_<NAME>`` is a reference to a secret value to
   put into ``<NAME>``. ``<NAME>`` must not exist before this step: a secret
   and a plain variable (or a variable of steps 1-2) of the same name is an
   error, since one of them would silently lose.

Reference grammar (the ``#`` positions follow the ``valueFrom`` of ECS, whose
separator ``:`` cannot be used here because ARNs contain it)::

    reference     = secret-id [ "#" json-key [ "#" version-stage [ "#" version-id ] ] ]
    secret-id     = 1*2048 of  A-Z a-z 0-9 / _ + = . @ - :   (a secret name or ARN)
    json-key      = any characters but "#"; empty: the whole SecretString
    version-stage = visible ASCII but "#", at most 256; empty: not given
    version-id    = visible ASCII but "#", 32 to 64;     empty: not given

Examples: ``prod/db`` (the whole SecretString), ``prod/db#password`` (key
``password`` of the JSON object), ``prod/db#password#AWSPREVIOUS`` (that key
of the previous version), ``prod/db##AWSPREVIOUS`` (the whole previous
SecretString), ``prod/db#password##<uuid>`` (a version by id). With no version
Secrets Manager returns ``AWSCURRENT``. A selected key's value must be a JSON
string, or an integer (written in decimal, for the ``port`` of RDS secrets);
the other keys of the secret are not looked at.

Every error is a ``ValueError`` naming the variable at fault (the container
fails fast, SPEC §6). No secret value ever appears in a log line or an
exception message, nor does any part of a reference (a value pasted where a
reference belongs would otherwise leak): the variable's name says where to
look. AWS errors are reported by their error code; the keys of an environment
document (variable names) are named.

Each distinct (secret-id, version-stage, version-id) is fetched with a single
GetSecretValue and cached for the life of the process (:func:`clear_cache`
empties it, for tests). ``boto3`` is imported only when a variable above is
set. The AWS configuration (region, credentials, ``AWS_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_SECRETS_MANAGER``, ``AWS_ENDPOINT_URL_SSM``,
``AWS_MAX_ATTEMPTS``) is read by botocore from ``os.environ``, whatever
mapping is passed to :func:`load_environment`. Secrets are fetched in the
function's region: an ARN of another region is not redirected.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from boto3.session import Session
    from botocore.config import Config
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_secretsmanager.type_defs import GetSecretValueRequestTypeDef
    from mypy_boto3_ssm import SSMClient

__all__ = [
    "ENVIRONMENT_SECRET_VARIABLE",
    "SECRET_REFERENCE_PREFIX",
    "SSM_ENVIRONMENT_VARIABLE",
    "SecretReference",
    "clear_cache",
    "load_environment",
    "parse_secret_reference",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

ENVIRONMENT_SECRET_VARIABLE = "LAMBDA_TASKS_ENVIRONMENT_SECRETS_MANAGER_ARN"
SSM_ENVIRONMENT_VARIABLE = "LAMBDA_TASKS_SSM_ENVIRONMENT"
SECRET_REFERENCE_PREFIX = "LAMBDA_TASKS_SECRET_"

# Bounded waits: botocore's defaults (60 s read timeout, retried) would block a
# cold start for minutes on a hung endpoint. Attempts: botocore's "standard"
# mode makes 3 in all unless AWS_MAX_ATTEMPTS says otherwise.
CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 10

# GetSecretValue limits: https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html
MAX_SECRET_ID_CHARS = 2048
MAX_VERSION_STAGE_CHARS = 256
MIN_VERSION_ID_CHARS = 32
MAX_VERSION_ID_CHARS = 64

_SECRET_ID = re.compile(r"[A-Za-z0-9/_+=.@:-]+")
_VERSION = re.compile(r"[!-\"$-~]+")  # visible ASCII except "#"


@dataclass(frozen=True, slots=True)
class SecretReference:
    """A parsed ``LAMBDA_TASKS_SECRET_<NAME>`` value (see the module docstring)."""

    secret_id: str
    json_key: str | None = None
    version_stage: str | None = None
    version_id: str | None = None


def parse_secret_reference(reference: str) -> SecretReference:
    """Parse a reference; raise ``ValueError`` (never quoting it) when malformed."""
    if not reference:
        raise ValueError("the reference is empty")
    parts = reference.split("#")
    if len(parts) > 4:
        raise ValueError("the reference has more than 4 '#'-separated fields")
    parts += [""] * (4 - len(parts))
    secret_id, json_key, version_stage, version_id = parts
    if not secret_id:
        raise ValueError("the secret id (before the first '#') is empty")
    if len(secret_id) > MAX_SECRET_ID_CHARS or not _SECRET_ID.fullmatch(secret_id):
        raise ValueError(
            f"the secret id is not a secret name or ARN (at most {MAX_SECRET_ID_CHARS} of "
            "A-Z a-z 0-9 / _ + = . @ - :)"
        )
    if version_stage and (
        len(version_stage) > MAX_VERSION_STAGE_CHARS or not _VERSION.fullmatch(version_stage)
    ):
        raise ValueError(
            f"the version stage is not 1 to {MAX_VERSION_STAGE_CHARS} visible ASCII characters"
        )
    if version_id and (
        not MIN_VERSION_ID_CHARS <= len(version_id) <= MAX_VERSION_ID_CHARS
        or not _VERSION.fullmatch(version_id)
    ):
        raise ValueError(
            f"the version id is not {MIN_VERSION_ID_CHARS} to {MAX_VERSION_ID_CHARS} visible "
            "ASCII characters"
        )
    return SecretReference(secret_id, json_key or None, version_stage or None, version_id or None)


# (secret id, version stage, version id) -> SecretString. Lives as long as the
# process, so a cold start retried after a failure fetches nothing twice.
_secret_strings: dict[tuple[str, str | None, str | None], str] = {}
# (id of the environment mapping, NAME) -> value written by step 3, so that a
# cold start retried in the same process (after django.setup() failed, say)
# does not take the variables it wrote itself for plain ones.
_resolved: dict[tuple[int, str], str] = {}


def clear_cache() -> None:
    """Forget fetched secrets and the variables written from references (for tests)."""
    _secret_strings.clear()
    _resolved.clear()


def load_environment(environ: MutableMapping[str, str] | None = None) -> None:
    """Run the three loaders of the module docstring, in order, on ``environ``.

    ``environ`` defaults to ``os.environ``. Raises ``ValueError`` naming the
    variable at fault. Does nothing, and imports nothing, when none of the
    variables is set.
    """
    env: MutableMapping[str, str] = os.environ if environ is None else environ
    clients = _Clients()

    if ENVIRONMENT_SECRET_VARIABLE in env:
        variable = ENVIRONMENT_SECRET_VARIABLE
        reference = SecretReference(_required(env, variable))
        document = _fetch_secret_string(clients, variable, reference)
        _apply_document(env, variable, document, "Secrets Manager secret", reference.secret_id)

    if SSM_ENVIRONMENT_VARIABLE in env:
        variable = SSM_ENVIRONMENT_VARIABLE
        name = _required(env, variable)
        document = _fetch_parameter(clients, variable, name)
        _apply_document(env, variable, document, "SSM parameter", name)

    _resolve_references(env, clients)


def _required(env: Mapping[str, str], variable: str) -> str:
    value = env[variable]
    if not value:
        raise ValueError(f"{variable} is set but empty; unset it to disable this loader")
    return value


def _apply_document(
    env: MutableMapping[str, str], variable: str, document: str, kind: str, source: str
) -> None:
    values = _parse_flat_document(variable, f"the {kind}", document)
    env.update(values)
    logger.info(
        "Loaded %d environment variable(s) from %s %s (named by %s): %s",
        len(values),
        kind,
        source,
        variable,
        ", ".join(sorted(values)) or "-",
    )


def _resolve_references(env: MutableMapping[str, str], clients: _Clients) -> None:
    # Check every reference before fetching any: a typo fails without a network call.
    wanted: dict[str, tuple[str, SecretReference]] = {}
    for variable in sorted(env):
        if not variable.startswith(SECRET_REFERENCE_PREFIX):
            continue
        name = variable.removeprefix(SECRET_REFERENCE_PREFIX)
        if not name:
            raise ValueError(f"{variable} names no variable: use {SECRET_REFERENCE_PREFIX}<NAME>")
        if name.startswith(SECRET_REFERENCE_PREFIX):
            raise ValueError(f"{variable} would write another secret reference, {name}")
        if name in env and _resolved.get((id(env), name)) != env[name]:
            raise ValueError(
                f"{variable} and a plain variable {name} are both set: remove one of them"
            )
        try:
            reference = parse_secret_reference(env[variable])
        except ValueError as exc:
            raise ValueError(f"{variable} is malformed: {exc}") from None
        wanted[name] = (variable, reference)

    values = {
        name: _select(variable, reference, _fetch_secret_string(clients, variable, reference))
        for name, (variable, reference) in wanted.items()
    }
    for name, value in values.items():
        env[name] = value
        _resolved[id(env), name] = value
    if values:
        logger.info(
            "Loaded %d environment variable(s) from Secrets Manager references: %s",
            len(values),
            ", ".join(values),
        )


def _select(variable: str, reference: SecretReference, secret_string: str) -> str:
    key = reference.json_key
    if key is None:
        value = secret_string
    else:
        document = _load_json(variable, "the secret", secret_string)
        if not isinstance(document, dict):
            raise ValueError(
                f"{variable}: the secret is a JSON {_json_type(document)}, not an object, "
                "so it has no key to select"
            )
        if key not in document:
            raise ValueError(f"{variable}: the secret has no key of the name in the reference")
        selected = document[key]
        if isinstance(selected, str):
            value = selected
        elif isinstance(selected, int) and not isinstance(selected, bool):
            value = str(selected)
        else:
            raise ValueError(
                f"{variable}: the key selected in the secret holds a JSON "
                f"{_json_type(selected)}, not a string or an integer"
            )
    _check_storable(variable, "the secret value", value)
    return value


def _parse_flat_document(variable: str, what: str, document: str) -> dict[str, str]:
    parsed = _load_json(variable, what, document)
    if not isinstance(parsed, dict):
        raise ValueError(
            f"{variable}: {what} is a JSON {_json_type(parsed)}, not an object of names to strings"
        )
    for key, value in parsed.items():
        if not isinstance(value, str):
            raise ValueError(
                f"{variable}: key {key!r} of {what} holds a JSON {_json_type(value)}; "
                "it must be a flat object of strings"
            )
        if not key or "=" in key:
            raise ValueError(f"{variable}: key {key!r} is not an environment variable name")
        _check_storable(variable, f"key {key!r}", key)
        _check_storable(variable, f"the value of key {key!r}", value)
    return parsed


class _DuplicateKeyError(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _DuplicateKeyError(key)
        document[key] = value
    return document


def _load_json(variable: str, what: str, text: str) -> object:
    # The error is raised outside the handlers, so that it has no __context__:
    # a JSONDecodeError carries the whole document in its .doc attribute.
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKeyError as exc:
        problem = f"a JSON object that repeats key {exc.key!r}"
    except json.JSONDecodeError as exc:
        problem = f"not valid JSON (line {exc.lineno}, column {exc.colno})"
    except (ValueError, RecursionError):  # e.g. an integer of over 4300 digits, deep nesting
        problem = "JSON that cannot be read"
    raise ValueError(f"{variable}: {what} is {problem}")


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _check_storable(variable: str, what: str, text: str) -> None:
    if "\0" in text:
        raise ValueError(f"{variable}: {what} contains a NUL character")
    try:
        os.fsencode(text)
    except UnicodeEncodeError:  # its .object is the whole text: keep it out of __context__
        encodable = False
    else:
        encodable = True
    if not encodable:
        raise ValueError(f"{variable}: {what} is not encodable in the environment")


def _fetch_secret_string(clients: _Clients, variable: str, reference: SecretReference) -> str:
    cache_key = (reference.secret_id, reference.version_stage, reference.version_id)
    cached = _secret_strings.get(cache_key)
    if cached is not None:
        return cached
    request: GetSecretValueRequestTypeDef = {"SecretId": reference.secret_id}
    if reference.version_stage is not None:
        request["VersionStage"] = reference.version_stage
    if reference.version_id is not None:
        request["VersionId"] = reference.version_id
    response = _call_aws(
        variable, "GetSecretValue", lambda: clients.secretsmanager().get_secret_value(**request)
    )
    secret_string = response.get("SecretString")
    if secret_string is None:
        raise ValueError(f"{variable}: the secret has no SecretString (a binary secret?)")
    _secret_strings[cache_key] = secret_string
    return secret_string


def _fetch_parameter(clients: _Clients, variable: str, name: str) -> str:
    response = _call_aws(
        variable,
        "GetParameter",
        lambda: clients.ssm().get_parameter(Name=name, WithDecryption=True),
    )
    value = response.get("Parameter", {}).get("Value")
    if value is None:
        raise ValueError(f"{variable}: GetParameter returned no value")
    return value


def _call_aws(variable: str, operation: str, call: Callable[[], _T]) -> _T:
    """``call()``, its failures turned into a ValueError naming ``variable``.

    botocore's own errors are chained: they say what failed (an AWS error
    code, an endpoint URL) without quoting a response. Anything else (a
    response parser error, say) may quote the body, so it is neither chained
    nor left as the context (the error is raised outside the handler).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return call()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "Unknown")
        error = ValueError(f"{variable}: {operation} failed with AWS error {code}")
        error.__cause__ = exc
    except BotoCoreError as exc:
        error = ValueError(f"{variable}: {operation} failed: {type(exc).__name__}")
        error.__cause__ = exc
    except Exception as exc:
        error = ValueError(f"{variable}: {operation} failed: {type(exc).__name__}")
    raise error


class _Clients:
    """One session, and one client per service, per :func:`load_environment` call."""

    def __init__(self) -> None:
        self._session: Session | None = None
        self._secretsmanager: SecretsManagerClient | None = None
        self._ssm: SSMClient | None = None

    def secretsmanager(self) -> SecretsManagerClient:
        if self._secretsmanager is None:
            self._secretsmanager = self.session().client("secretsmanager", config=_config())
        return self._secretsmanager

    def ssm(self) -> SSMClient:
        if self._ssm is None:
            self._ssm = self.session().client("ssm", config=_config())
        return self._ssm

    def session(self) -> Session:
        if self._session is None:
            import boto3

            # A fresh session reads the current environment (credentials, region, endpoints).
            self._session = boto3.session.Session()
        return self._session


def _config() -> Config:
    from botocore.config import Config

    return Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        retries={"mode": "standard"},
    )
