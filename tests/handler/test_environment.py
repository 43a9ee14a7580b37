"""Cold-start environment loaders (SPEC §6 "Loader precedence", §8), against a real moto server."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError
from hypothesis import given
from hypothesis import strategies as st

from lambda_tasks_handler.environment import (
    ENVIRONMENT_SECRET_VARIABLE,
    SSM_ENVIRONMENT_VARIABLE,
    SecretReference,
    clear_cache,
    load_environment,
    parse_secret_reference,
)

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_ssm import SSMClient

    from tests.services import MotoServer

SECRET = "s3cr3t-value-9f2c"  # the text no message or log line may contain
VERSION_ID = "0123456789abcdef0123456789abcdef"

_FAST = Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1, "mode": "standard"})


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def secrets(aws_env: MotoServer) -> SecretsManagerClient:
    client: SecretsManagerClient = boto3.client("secretsmanager", config=_FAST)
    return client


@pytest.fixture
def ssm(aws_env: MotoServer) -> SSMClient:
    client: SSMClient = boto3.client("ssm", config=_FAST)
    return client


MakeSecret = Callable[..., str]


@pytest.fixture
def make_secret(secrets: SecretsManagerClient) -> MakeSecret:
    """``make(value, name=None) -> ARN``: a new secret (unique name) holding ``value``."""

    def make(value: str | dict[str, object], name: str | None = None) -> str:
        text = value if isinstance(value, str) else json.dumps(value)
        name = name or f"tests/env-{uuid.uuid4().hex[:12]}"
        return secrets.create_secret(Name=name, SecretString=text)["ARN"]

    return make


@pytest.fixture
def make_parameter(ssm: SSMClient) -> Callable[[str], str]:
    """``make(value) -> name``: a new SecureString parameter holding ``value``."""

    def make(value: str) -> str:
        name = f"/tests/env-{uuid.uuid4().hex[:12]}"
        ssm.put_parameter(Name=name, Value=value, Type="SecureString")
        return name

    return make


def assert_secret_kept_out(
    error: BaseException, caplog: pytest.LogCaptureFixture, *values: str
) -> None:
    """No exception of the chain (cause or context) nor log record contains ``values``."""
    texts = [record.getMessage() for record in caplog.records]
    seen: BaseException | None = error
    while seen is not None:
        texts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    for value in (SECRET, *values):
        for text in texts:
            assert value not in text


@pytest.fixture(autouse=True)
def _log_everything_of_ours(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="lambda_tasks_handler")


# --------------------------------------------------------------------------- nothing set


def test_nothing_set_changes_nothing_and_calls_no_aws(aws_env: MotoServer) -> None:
    environ = {"PATH": "/bin", "LAMBDA_TASKS_OTHER": "x"}

    load_environment(environ)

    assert environ == {"PATH": "/bin", "LAMBDA_TASKS_OTHER": "x"}
    assert aws_env.request_count() == 0


def test_nothing_set_imports_no_boto3() -> None:
    code = (
        "import os, sys\n"
        "for name in list(os.environ):\n"
        "    if name.startswith('LAMBDA_TASKS_'): del os.environ[name]\n"
        "import lambda_tasks_handler.environment as e\n"
        "e.load_environment()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


# --------------------------------------------------------------------------- environment documents


def test_secrets_manager_environment_overrides_existing_variables(
    make_secret: MakeSecret, caplog: pytest.LogCaptureFixture
) -> None:
    arn = make_secret({"DATABASE_URL": SECRET, "DEBUG": "0"})
    environ = {ENVIRONMENT_SECRET_VARIABLE: arn, "DEBUG": "1", "KEEP": "k"}

    load_environment(environ)

    assert environ == {
        ENVIRONMENT_SECRET_VARIABLE: arn,
        "DATABASE_URL": SECRET,
        "DEBUG": "0",
        "KEEP": "k",
    }
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("DATABASE_URL, DEBUG" in m and arn in m for m in messages)
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_ssm_environment_wins_over_secrets_manager_and_existing_variables(
    make_secret: MakeSecret,
    make_parameter: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    arn = make_secret({"A": "from-secret", "B": "from-secret"})
    parameter = make_parameter(json.dumps({"B": "from-ssm", "C": SECRET}))
    environ = {
        ENVIRONMENT_SECRET_VARIABLE: arn,
        SSM_ENVIRONMENT_VARIABLE: parameter,
        "A": "plain",
        "C": "plain",
    }

    load_environment(environ)

    assert (environ["A"], environ["B"], environ["C"]) == ("from-secret", "from-ssm", SECRET)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any(parameter in m and m.endswith(": B, C") for m in messages)
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_secrets_manager_environment_can_name_the_ssm_parameter(
    make_secret: MakeSecret, make_parameter: Callable[[str], str]
) -> None:
    parameter = make_parameter(json.dumps({"FROM_SSM": "yes"}))
    environ = {ENVIRONMENT_SECRET_VARIABLE: make_secret({SSM_ENVIRONMENT_VARIABLE: parameter})}

    load_environment(environ)

    assert environ["FROM_SSM"] == "yes"


def test_environment_document_may_be_empty(make_secret: MakeSecret) -> None:
    environ = {ENVIRONMENT_SECRET_VARIABLE: make_secret({})}

    load_environment(environ)

    assert list(environ) == [ENVIRONMENT_SECRET_VARIABLE]


BAD_DOCUMENTS = [
    pytest.param(f"not json {SECRET}", "not valid JSON", id="not-json"),
    pytest.param(json.dumps([SECRET]), "JSON array, not an object", id="array"),
    pytest.param(json.dumps(SECRET), "JSON string, not an object", id="string"),
    pytest.param(json.dumps({"A": 1}), "key 'A' of the", id="number"),
    pytest.param(json.dumps({"A": True}), "holds a JSON boolean", id="bool"),
    pytest.param(json.dumps({"A": None}), "holds a JSON null", id="null"),
    pytest.param(json.dumps({"A": {"B": SECRET}}), "holds a JSON object", id="nested"),
    pytest.param(json.dumps({"A": [SECRET]}), "holds a JSON array", id="list"),
    pytest.param(f'{{"A": "x", "A": "{SECRET}"}}', "repeats key 'A'", id="duplicate-key"),
    pytest.param(json.dumps({"": SECRET}), "key '' is not", id="empty-name"),
    pytest.param(json.dumps({"A=B": SECRET}), "key 'A=B' is not", id="equals-in-name"),
    pytest.param(json.dumps({"A": SECRET + "\0"}), "contains a NUL", id="nul"),
    pytest.param(json.dumps({"A": SECRET + "\ud800"}), "not encodable", id="surrogate"),
    pytest.param("[" * 30_000 + "]" * 30_000, "cannot be read", id="deep"),
]


@pytest.mark.parametrize(("document", "problem"), BAD_DOCUMENTS)
def test_malformed_secrets_manager_environment_is_an_error_naming_the_variable(
    make_secret: MakeSecret, caplog: pytest.LogCaptureFixture, document: str, problem: str
) -> None:
    environ = {ENVIRONMENT_SECRET_VARIABLE: make_secret(document)}

    with pytest.raises(ValueError, match=ENVIRONMENT_SECRET_VARIABLE) as caught:
        load_environment(environ)

    assert problem in str(caught.value)
    assert_secret_kept_out(caught.value, caplog)
    assert list(environ) == [ENVIRONMENT_SECRET_VARIABLE]


@pytest.mark.parametrize(("document", "problem"), BAD_DOCUMENTS[:6])
def test_malformed_ssm_environment_is_an_error_naming_the_variable(
    make_parameter: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
    document: str,
    problem: str,
) -> None:
    environ = {SSM_ENVIRONMENT_VARIABLE: make_parameter(document)}

    with pytest.raises(ValueError, match=SSM_ENVIRONMENT_VARIABLE) as caught:
        load_environment(environ)

    assert problem in str(caught.value)
    assert_secret_kept_out(caught.value, caplog)


@pytest.mark.parametrize("variable", [ENVIRONMENT_SECRET_VARIABLE, SSM_ENVIRONMENT_VARIABLE])
def test_missing_environment_source_is_an_error_with_the_aws_code(
    aws_env: MotoServer, variable: str
) -> None:
    with pytest.raises(ValueError, match=variable) as caught:
        load_environment({variable: f"tests/missing-{uuid.uuid4().hex}"})

    assert "ResourceNotFoundException" in str(caught.value) or "ParameterNotFound" in str(
        caught.value
    )
    assert isinstance(caught.value.__cause__, ClientError)


@pytest.mark.parametrize("variable", [ENVIRONMENT_SECRET_VARIABLE, SSM_ENVIRONMENT_VARIABLE])
def test_empty_environment_source_variable_is_an_error(aws_env: MotoServer, variable: str) -> None:
    with pytest.raises(ValueError, match=f"{variable} is set but empty"):
        load_environment({variable: ""})
    assert aws_env.request_count() == 0


def test_binary_secret_is_an_error(secrets: SecretsManagerClient) -> None:
    arn = secrets.create_secret(Name=f"tests/bin-{uuid.uuid4().hex}", SecretBinary=b"\x00\x01")[
        "ARN"
    ]

    with pytest.raises(ValueError, match=f"{ENVIRONMENT_SECRET_VARIABLE}: .*no SecretString"):
        load_environment({ENVIRONMENT_SECRET_VARIABLE: arn})


# --------------------------------------------------------------------------- per-key secrets


def test_reference_to_a_whole_secret_string(
    make_secret: MakeSecret, caplog: pytest.LogCaptureFixture
) -> None:
    arn = make_secret(SECRET)
    environ = {"LAMBDA_TASKS_SECRET_API_KEY": arn}

    load_environment(environ)

    assert environ["API_KEY"] == SECRET
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any(m.endswith("references: API_KEY") for m in messages)
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_reference_by_name_with_json_keys(make_secret: MakeSecret) -> None:
    name = f"tests/db@prod-{uuid.uuid4().hex[:8]}"  # "@" is valid in a secret name
    make_secret(
        {"username": "app", "password": SECRET, "port": 5432, "key with space": "v"}, name=name
    )
    environ = {
        "LAMBDA_TASKS_SECRET_DB_USER": f"{name}#username",
        "LAMBDA_TASKS_SECRET_DB_PASSWORD": f"{name}#password",
        "LAMBDA_TASKS_SECRET_DB_PORT": f"{name}#port##",
        "LAMBDA_TASKS_SECRET_SPACED": f"{name}#key with space",
    }

    load_environment(environ)

    assert (environ["DB_USER"], environ["DB_PASSWORD"]) == ("app", SECRET)
    assert (environ["DB_PORT"], environ["SPACED"]) == ("5432", "v")


def test_one_get_secret_value_per_distinct_secret_and_version(
    aws_env: MotoServer, make_secret: MakeSecret, secrets: SecretsManagerClient
) -> None:
    arn = make_secret({"a": "1", "b": "2", "c": "3"})
    secrets.put_secret_value(SecretId=arn, SecretString=json.dumps({"a": "new"}))
    other = make_secret("other")
    environ = {
        "LAMBDA_TASKS_SECRET_A": f"{arn}#a#AWSPREVIOUS",
        "LAMBDA_TASKS_SECRET_B": f"{arn}#b#AWSPREVIOUS",
        "LAMBDA_TASKS_SECRET_C": f"{arn}#c#AWSPREVIOUS",
        "LAMBDA_TASKS_SECRET_NEW_A": f"{arn}#a",
        "LAMBDA_TASKS_SECRET_OTHER": other,
        "LAMBDA_TASKS_SECRET_OTHER_AGAIN": other,
    }
    aws_env.reset_recording()

    load_environment(environ)

    assert [environ[name] for name in ("A", "B", "C", "NEW_A", "OTHER", "OTHER_AGAIN")] == [
        "1",
        "2",
        "3",
        "new",
        "other",
        "other",
    ]
    # (arn, AWSPREVIOUS), (arn, current), (other, current)
    assert aws_env.request_count("GetSecretValue") == 3

    # A later run (a cold start retried in this process) fetches nothing again.
    load_environment({"LAMBDA_TASKS_SECRET_X": f"{arn}#b#AWSPREVIOUS"})
    assert aws_env.request_count("GetSecretValue") == 3


def test_environment_secret_is_fetched_once_when_also_referenced(
    aws_env: MotoServer, make_secret: MakeSecret
) -> None:
    arn = make_secret({"TOKEN_SOURCE": "env"})
    environ = {ENVIRONMENT_SECRET_VARIABLE: arn, "LAMBDA_TASKS_SECRET_WHOLE": arn}
    aws_env.reset_recording()

    load_environment(environ)

    assert json.loads(environ["WHOLE"]) == {"TOKEN_SOURCE": "env"}
    assert aws_env.request_count("GetSecretValue") == 1


def test_version_selection_by_stage_and_by_id(
    make_secret: MakeSecret, secrets: SecretsManagerClient
) -> None:
    arn = make_secret({"k": "v1"})
    secrets.put_secret_value(
        SecretId=arn, SecretString=json.dumps({"k": "v2"}), ClientRequestToken=VERSION_ID
    )
    secrets.put_secret_value(SecretId=arn, SecretString=json.dumps({"k": "v3"}))
    environ = {
        "LAMBDA_TASKS_SECRET_CURRENT": f"{arn}#k",
        "LAMBDA_TASKS_SECRET_PREVIOUS": f"{arn}#k#AWSPREVIOUS",
        "LAMBDA_TASKS_SECRET_BY_ID": f"{arn}#k##{VERSION_ID}",
        "LAMBDA_TASKS_SECRET_WHOLE_BY_ID": f"{arn}###{VERSION_ID}",
    }

    load_environment(environ)

    assert (environ["CURRENT"], environ["PREVIOUS"], environ["BY_ID"]) == ("v3", "v2", "v2")
    assert json.loads(environ["WHOLE_BY_ID"]) == {"k": "v2"}


def test_plain_variable_of_the_same_name_is_an_error(
    aws_env: MotoServer, make_secret: MakeSecret
) -> None:
    arn = make_secret(SECRET)
    aws_env.reset_recording()
    environ = {"LAMBDA_TASKS_SECRET_API_KEY": arn, "API_KEY": ""}

    with pytest.raises(
        ValueError, match="LAMBDA_TASKS_SECRET_API_KEY and a plain variable API_KEY"
    ):
        load_environment(environ)

    assert environ["API_KEY"] == ""
    assert aws_env.request_count() == 0  # checked before anything is fetched


def test_variable_from_an_environment_document_conflicts_with_a_reference(
    make_secret: MakeSecret,
) -> None:
    environ = {
        ENVIRONMENT_SECRET_VARIABLE: make_secret({"API_KEY": "x"}),
        "LAMBDA_TASKS_SECRET_API_KEY": make_secret(SECRET),
    }

    with pytest.raises(ValueError, match="LAMBDA_TASKS_SECRET_API_KEY and a plain variable"):
        load_environment(environ)


def test_environment_document_may_hold_references(make_secret: MakeSecret) -> None:
    target = make_secret({"password": SECRET})
    environ = {
        ENVIRONMENT_SECRET_VARIABLE: make_secret({"LAMBDA_TASKS_SECRET_PW": f"{target}#password"})
    }

    load_environment(environ)

    assert environ["PW"] == SECRET


def test_retried_cold_start_takes_its_own_variables_for_its_own(make_secret: MakeSecret) -> None:
    environ = {"LAMBDA_TASKS_SECRET_API_KEY": make_secret(SECRET)}
    load_environment(environ)

    # Given django.setup() failed after the loaders, the next invocation runs them again.
    load_environment(environ)
    assert environ["API_KEY"] == SECRET

    # But a value changed since is a plain variable again.
    environ["API_KEY"] = "changed"
    with pytest.raises(ValueError, match="and a plain variable API_KEY"):
        load_environment(environ)


def test_defaults_to_os_environ(make_secret: MakeSecret, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMBDA_TASKS_TEST_TOKEN", "placeholder")
    monkeypatch.delenv("LAMBDA_TASKS_TEST_TOKEN")  # restored to absent after the test
    monkeypatch.setenv("LAMBDA_TASKS_SECRET_LAMBDA_TASKS_TEST_TOKEN", make_secret(SECRET))

    load_environment()

    assert os.environ["LAMBDA_TASKS_TEST_TOKEN"] == SECRET


MALFORMED_REFERENCES = [
    pytest.param("", "is empty", id="empty"),
    pytest.param(f"#{SECRET}", "secret id (before the first '#') is empty", id="no-secret-id"),
    pytest.param(f"{SECRET} x", "not a secret name or ARN", id="space-in-id"),
    pytest.param(f"{SECRET}\n", "not a secret name or ARN", id="newline"),
    pytest.param(f"{SECRET}!", "not a secret name or ARN", id="bad-char"),
    pytest.param("a" * 2049, "not a secret name or ARN", id="id-too-long"),
    pytest.param(f"a#b#c#d#{SECRET}", "more than 4", id="five-fields"),
    pytest.param(f"a#b#{SECRET} x", "version stage", id="space-in-stage"),
    pytest.param("a#b#" + "s" * 257, "version stage", id="stage-too-long"),
    pytest.param(f"a#b##{SECRET}", "version id", id="id-too-short"),
    pytest.param("a#b##" + "v" * 65, "version id", id="version-id-too-long"),
    pytest.param(f"a#b##{VERSION_ID}é", "version id", id="non-ascii-version"),
]


@pytest.mark.parametrize(("reference", "problem"), MALFORMED_REFERENCES)
def test_malformed_reference_is_an_error_naming_the_variable_not_the_reference(
    aws_env: MotoServer, caplog: pytest.LogCaptureFixture, reference: str, problem: str
) -> None:
    environ = {"LAMBDA_TASKS_SECRET_TOKEN": reference}

    with pytest.raises(ValueError, match="LAMBDA_TASKS_SECRET_TOKEN is malformed") as caught:
        load_environment(environ)

    assert problem in str(caught.value)
    if reference:
        assert_secret_kept_out(caught.value, caplog, reference)
    assert aws_env.request_count() == 0


@pytest.mark.parametrize(
    ("variable", "problem"),
    [
        ("LAMBDA_TASKS_SECRET_", "names no variable"),
        ("LAMBDA_TASKS_SECRET_LAMBDA_TASKS_SECRET_X", "would write another secret reference"),
    ],
)
def test_bad_target_name_is_an_error(aws_env: MotoServer, variable: str, problem: str) -> None:
    with pytest.raises(ValueError, match=f"{variable} {problem}"):
        load_environment({variable: "name"})


@pytest.mark.parametrize(
    ("secret", "key", "problem"),
    [
        pytest.param(f"plain {SECRET}", "k", "the secret is not valid JSON", id="not-json"),
        pytest.param(json.dumps([SECRET]), "k", "JSON array, not an object", id="array"),
        pytest.param(json.dumps({"other": SECRET}), "k", "no key of the name", id="missing-key"),
        pytest.param(json.dumps({"k": {"x": SECRET}}), "k", "holds a JSON object", id="nested"),
        pytest.param(json.dumps({"k": [SECRET]}), "k", "holds a JSON array", id="list"),
        pytest.param(json.dumps({"k": True}), "k", "holds a JSON boolean", id="bool"),
        pytest.param(json.dumps({"k": 1.5}), "k", "holds a JSON number", id="float"),
        pytest.param(json.dumps({"k": None}), "k", "holds a JSON null", id="null"),
        pytest.param(json.dumps({"k": SECRET + "\0"}), "k", "contains a NUL", id="nul-in-key"),
        pytest.param(SECRET + "\0", "", "contains a NUL", id="nul-in-whole"),
        pytest.param(json.dumps({"k": SECRET + "\udc00x\ud800"}), "k", "encodable", id="surr"),
        pytest.param(f'{{"k": "{SECRET}", "k": "x"}}', "k", "repeats key 'k'", id="dup"),
    ],
)
def test_unusable_secret_is_an_error_naming_the_variable_not_the_value(
    make_secret: MakeSecret,
    caplog: pytest.LogCaptureFixture,
    secret: str,
    key: str,
    problem: str,
) -> None:
    arn = make_secret(secret)
    environ = {"LAMBDA_TASKS_SECRET_TOKEN": f"{arn}#{key}" if key else arn}

    with pytest.raises(ValueError, match="LAMBDA_TASKS_SECRET_TOKEN: ") as caught:
        load_environment(environ)

    assert problem in str(caught.value)
    assert_secret_kept_out(caught.value, caplog)
    assert "TOKEN" not in environ


def test_nothing_is_written_when_one_reference_fails(make_secret: MakeSecret) -> None:
    environ = {
        "LAMBDA_TASKS_SECRET_A": make_secret(SECRET),
        "LAMBDA_TASKS_SECRET_B": f"{make_secret('{}')}#missing",
    }

    with pytest.raises(ValueError, match="LAMBDA_TASKS_SECRET_B"):
        load_environment(environ)

    assert "A" not in environ


def test_missing_secret_is_an_error_with_the_aws_code(aws_env: MotoServer) -> None:
    environ = {"LAMBDA_TASKS_SECRET_TOKEN": f"tests/missing-{uuid.uuid4().hex}#k"}

    with pytest.raises(
        ValueError,
        match="LAMBDA_TASKS_SECRET_TOKEN: GetSecretValue failed with AWS error "
        "ResourceNotFoundException",
    ) as caught:
        load_environment(environ)

    assert isinstance(caught.value.__cause__, ClientError)


# --------------------------------------------------------------------------- endpoints


def test_stopped_endpoint_is_a_quick_error_naming_the_variable(
    aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    aws_env.stop()
    try:
        started = time.monotonic()
        with pytest.raises(
            ValueError, match="LAMBDA_TASKS_SECRET_TOKEN: GetSecretValue failed: "
        ) as caught:
            load_environment({"LAMBDA_TASKS_SECRET_TOKEN": "tests/any#k"})
        elapsed = time.monotonic() - started
    finally:
        aws_env.start()

    assert isinstance(caught.value.__cause__, EndpointConnectionError)
    assert elapsed < 3


def test_retries_on_a_stopped_endpoint_are_bounded(aws_env: MotoServer) -> None:
    # botocore's standard mode: 3 attempts in all, with backoffs of at most 1 s and 2 s.
    aws_env.stop()
    try:
        started = time.monotonic()
        with pytest.raises(ValueError, match=SSM_ENVIRONMENT_VARIABLE):
            load_environment({SSM_ENVIRONMENT_VARIABLE: "/tests/any"})
        elapsed = time.monotonic() - started
    finally:
        aws_env.start()

    assert elapsed < 10


def test_service_specific_endpoint_variables_are_honoured(
    make_secret: MakeSecret, monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = make_secret(SECRET)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://127.0.0.1:9")  # discard port

    with pytest.raises(ValueError, match="LAMBDA_TASKS_SECRET_TOKEN: GetSecretValue failed: "):
        load_environment({"LAMBDA_TASKS_SECRET_TOKEN": arn})


# --------------------------------------------------------------------------- the parser


@pytest.mark.parametrize(
    ("reference", "parsed"),
    [
        ("name", SecretReference("name")),
        ("name#", SecretReference("name")),
        ("a/b_c+d=e.f@g-h#key", SecretReference("a/b_c+d=e.f@g-h", "key")),
        (
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf#pass word",
            SecretReference(
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf", "pass word"
            ),
        ),
        ("name#key#AWSPREVIOUS", SecretReference("name", "key", "AWSPREVIOUS")),
        ("name##AWSPREVIOUS", SecretReference("name", None, "AWSPREVIOUS")),
        (f"name#key##{VERSION_ID}", SecretReference("name", "key", None, VERSION_ID)),
        (f"name#key#S#{VERSION_ID}", SecretReference("name", "key", "S", VERSION_ID)),
    ],
)
def test_reference_grammar(reference: str, parsed: SecretReference) -> None:
    assert parse_secret_reference(reference) == parsed


@given(st.text(), st.text(), st.booleans())
def test_parser_raises_only_value_error_and_never_quotes_its_input(
    before: str, after: str, marked: bool
) -> None:
    # "Zq9" (in no message) stands for a secret pasted somewhere into the reference.
    reference = f"{before}Zq9{after}" if marked else before + after
    message = ""
    try:
        parse_secret_reference(reference)
    except ValueError as error:  # any other exception fails the test
        message = str(error)
    assert "Zq9" not in message


_ID_CHARS = st.sampled_from("abcXYZ019/_+=.@:-")
_VERSION_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#")


@given(
    secret_id=st.text(_ID_CHARS, min_size=1, max_size=2048),
    json_key=st.text().filter(lambda key: "#" not in key),
    version_stage=st.text(_VERSION_CHARS, max_size=256),
    version_id=st.one_of(st.just(""), st.text(_VERSION_CHARS, min_size=32, max_size=64)),
)
def test_parser_reads_back_every_well_formed_reference(
    secret_id: str, json_key: str, version_stage: str, version_id: str
) -> None:
    reference = f"{secret_id}#{json_key}#{version_stage}#{version_id}"

    assert parse_secret_reference(reference) == SecretReference(
        secret_id, json_key or None, version_stage or None, version_id or None
    )
