"""The throwaway servers of tests/services.py work as the other tests expect."""

from __future__ import annotations

import os

import pytest

from tests.services import MotoServer, PostgresServer, SqsQueueFactory, _missing


def test_sqs_round_trip(sqs_queue: str) -> None:
    import boto3

    sqs = boto3.client("sqs")  # endpoint, region and credentials come from aws_env
    sqs.send_message(QueueUrl=sqs_queue, MessageBody="hello")
    response = sqs.receive_message(QueueUrl=sqs_queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    assert [m["Body"] for m in response.get("Messages", [])] == ["hello"]


def test_queue_factory_makes_distinct_and_fifo_queues(
    aws_env: MotoServer, sqs_queue_factory: SqsQueueFactory
) -> None:
    client = aws_env.sqs_client()
    first = sqs_queue_factory("orders")
    second = sqs_queue_factory("orders", VisibilityTimeout=5)
    fifo = sqs_queue_factory("orders", fifo=True, ContentBasedDeduplication=True)
    assert len({first, second, fifo}) == 3
    assert fifo.endswith(".fifo")
    attributes = client.get_queue_attributes(QueueUrl=fifo, AttributeNames=["All"])["Attributes"]
    assert attributes["FifoQueue"] == "true"
    assert attributes["ContentBasedDeduplication"] == "true"
    attributes = client.get_queue_attributes(QueueUrl=second, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "5"
    client.send_message(QueueUrl=fifo, MessageBody="x", MessageGroupId="g")
    assert client.receive_message(QueueUrl=fifo)["Messages"][0]["Body"] == "x"


def test_stop_fails_requests_and_start_brings_queues_back(
    aws_env: MotoServer, sqs_queue: str
) -> None:
    from botocore.exceptions import EndpointConnectionError

    client = aws_env.sqs_client()
    aws_env.stop()
    try:
        assert not aws_env.is_running()
        with pytest.raises(EndpointConnectionError):
            client.send_message(QueueUrl=sqs_queue, MessageBody="lost")
    finally:
        aws_env.start()
    assert aws_env.is_running()
    # Same port, same queue URL; the queue was re-created (empty) by start().
    client.send_message(QueueUrl=sqs_queue, MessageBody="back")
    messages = client.receive_message(QueueUrl=sqs_queue, WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in messages] == ["back"]


def test_request_count_counts_api_calls(aws_env: MotoServer, sqs_queue: str) -> None:
    client = aws_env.sqs_client()
    aws_env.reset_recording()
    for n in range(3):
        client.send_message(QueueUrl=sqs_queue, MessageBody=str(n))
    client.send_message_batch(
        QueueUrl=sqs_queue, Entries=[{"Id": str(n), "MessageBody": str(n)} for n in range(4)]
    )
    assert aws_env.request_count("SendMessage") == 3
    assert aws_env.request_count("SendMessageBatch") == 1
    assert aws_env.request_count() == 4
    aws_env.reset_recording()
    assert aws_env.request_count() == 0


def test_reset_forgets_resources(aws_env: MotoServer, sqs_queue_factory: SqsQueueFactory) -> None:
    client = aws_env.sqs_client()
    url = sqs_queue_factory("gone")
    assert url in client.list_queues().get("QueueUrls", [])
    aws_env.reset()
    assert url not in client.list_queues().get("QueueUrls", [])


def test_redis_set_get(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0  # redis_url flushed it
        client.set("lambda-tasks", "ok")
        assert client.get("lambda-tasks") == b"ok"
    finally:
        client.close()


def test_postgres_select_one(postgres_server: PostgresServer, postgres_dsn: str) -> None:
    import psycopg

    with psycopg.connect(postgres_dsn) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        assert conn.info.dbname == postgres_dsn.rsplit("/", 1)[1]
        assert conn.info.port == postgres_server.port


def test_missing_service_skips_unless_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAMBDA_TASKS_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install thing"):
        _missing("thing-server", "apt-get install thing")
    monkeypatch.setenv("LAMBDA_TASKS_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="thing-server"):
        _missing("thing-server", "apt-get install thing")


@pytest.mark.django_db
def test_django_database_follows_lambda_tasks_test_db() -> None:
    from django.db import connection

    expected = "postgresql" if os.environ.get("LAMBDA_TASKS_TEST_DB") == "postgres" else "sqlite"
    assert connection.vendor == expected
    with connection.cursor() as cursor:
        cursor.execute("select 1")
        assert cursor.fetchone() == (1,)
    if expected == "postgresql":
        assert connection.settings_dict["NAME"] == "test_lambda_tasks"
        assert os.environ["LAMBDA_TASKS_TEST_PG_PORT"] == str(connection.settings_dict["PORT"])
