"""alley-s3, installed, against a real S3 server (MinIO) and a real MongoDB server.

Needs the plugin installed as a distribution (``pip install .``): it is found through
its entry point. The S3 server comes from alley's pytest plugin (``s3_server``: MinIO
built once into the cache, started on loopback ports with its own credentials), the
database from ``mongo_db`` / ``mongo_db_uri``. ``alley`` runs as a subprocess, with
only boto3's own variables telling it where S3 is.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from alley.testing.s3 import S3Server, provide_s3

ALLEY = shutil.which("alley", path=os.path.dirname(sys.executable)) or shutil.which("alley")
COUNTING_ALLEY = Path(__file__).with_name("counting_alley.py")
THREE = {
    "0001_create_users.py": "def up(db):\n    db.users.insert_one({'_id': 'ada'})\n\n\n"
    "def down(db):\n    db.users.drop()\n",
    "0002_add_email.py": "def up(db):\n    db.users.update_many({}, {'$set': {'email': None}})\n"
    "\n\ndef down(db):\n    db.users.update_many({}, {'$unset': {'email': ''}})\n",
    "0003_index.py": "def up(db):\n    db.users.create_index('email')\n\n\n"
    "def down(db):\n    db.users.drop_index('email_1')\n",
}


def client_for(server: S3Server) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name=server.region,
        config=Config(max_pool_connections=16),
    )


@pytest.fixture(scope="session")
def s3(s3_server: S3Server) -> Any:
    """A boto3 client of the session's S3 server, for arranging buckets."""
    return client_for(s3_server)


@pytest.fixture
def bucket(s3: Any) -> Iterator[str]:
    """A new, empty bucket, emptied and removed after the test."""
    name = f"alley-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", ())]
            if keys:
                s3.delete_objects(Bucket=name, Delete={"Objects": keys})
        s3.delete_bucket(Bucket=name)


@pytest.fixture
def deploy_dir(tmp_path: Path) -> Path:
    """An empty directory: no migrations/ folder, no pyproject.toml."""
    folder = tmp_path / "deploy"
    folder.mkdir()
    return folder


def put(s3: Any, bucket: str, objects: dict[str, str | bytes], prefix: str = "m/") -> None:
    def one(item: tuple[str, str | bytes]) -> None:
        body = item[1].encode() if isinstance(item[1], str) else item[1]
        s3.put_object(Bucket=bucket, Key=prefix + item[0], Body=body)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, objects.items()))


def many(count: int) -> dict[str, str]:
    """``count`` migrations, each inserting one document into ``n``."""
    return {
        f"{i:04}_step_{i}.py": f"def up(db):\n    db.n.insert_one({{'_id': {i}}})\n\n\n"
        f"def down(db):\n    db.n.delete_one({{'_id': {i}}})\n"
        for i in range(1, count + 1)
    }


def environment(server: S3Server, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ALLEY_", "AWS_")) and k != "MONGODB_URI"
    }
    return {**env, **server.env(), **(extra or {})}


def alley(
    cwd: Path, server: S3Server, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``alley`` command in ``cwd`` with ``server``'s boto3 variables."""
    assert ALLEY, "the alley command is not installed"
    return subprocess.run(
        [ALLEY, *args],
        cwd=cwd,
        env=environment(server, env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def counted(
    cwd: Path, server: S3Server, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, int]]:
    """``alley ARGS`` through ``counting_alley.py``: the result and its S3 requests."""
    counts = cwd / f"counts-{uuid.uuid4().hex[:6]}.json"
    result = subprocess.run(
        [sys.executable, str(COUNTING_ALLEY), *args],
        cwd=cwd,
        env=environment(server, {**(env or {}), "COUNT_S3_REQUESTS_TO": str(counts)}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result, json.loads(counts.read_text())


def nothing_ran(db: Any) -> bool:
    """No migration ran and none was recorded (the lock may have been taken and released)."""
    return not set(db.list_collection_names()) & {"users", "n", "db_migrations"}


def one_error_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    [line] = result.stderr.splitlines()
    assert line.startswith("alley: error: "), line
    assert "Traceback" not in result.stderr
    return line


def test_the_installed_plugin_is_listed_with_its_distribution(
    deploy_dir: Path, s3_server: S3Server
) -> None:
    result = alley(deploy_dir, s3_server, "plugins", "--json")

    assert result.returncode == 0, result.stderr
    plugins = {plugin["name"]: plugin for plugin in json.loads(result.stdout)}
    assert plugins["s3"] == {
        "name": "s3",
        "module": "alley_s3",
        "distribution": "alley-s3",
        "version": "0.1.0",
        "hooks": ["alley_create_migration", "alley_discover_migrations"],
        "default": False,
    }


def test_up_applies_the_migrations_of_the_bucket(
    deploy_dir: Path, s3_server: S3Server, s3: Any, bucket: str, mongo_db: Any, mongo_db_uri: str
) -> None:
    put(s3, bucket, {**THREE, "README.txt": "not a migration", "sub/0009_nested.py": "x"})
    url = f"s3://{bucket}/m/"

    up = alley(deploy_dir, s3_server, "--url", mongo_db_uri, "-o", f"s3_url={url}", "up")
    status = alley(
        deploy_dir, s3_server, "--url", mongo_db_uri, "-o", f"s3_url={url}", "status", "--json"
    )

    assert up.returncode == 0, up.stderr
    assert list(mongo_db.users.find()) == [{"_id": "ada", "email": None}]
    assert "email_1" in mongo_db.users.index_information()
    records = sorted(mongo_db.db_migrations.find(), key=lambda record: record["id"])
    assert [(r["id"], r["filename"]) for r in records] == [
        (1, "0001_create_users.py"),
        (2, "0002_add_email.py"),
        (3, "0003_index.py"),
    ]
    assert status.returncode == 0, status.stderr
    migrations = json.loads(status.stdout)["migrations"]
    assert [(m["state"], m["location"]) for m in migrations] == [
        ("applied", url + name) for name in THREE
    ]
    assert json.loads(status.stdout)["folder"] == f"s3://{bucket}/m"  # where they came from
    # No secret reaches the output.
    for text in (up.stdout, up.stderr, status.stdout, status.stderr):
        assert s3_server.secret_key not in text


def test_with_the_filesystem_default_disabled_s3_is_the_only_source(
    deploy_dir: Path, s3_server: S3Server, s3: Any, bucket: str, mongo_db: Any, mongo_db_uri: str
) -> None:
    put(s3, bucket, THREE)
    options = ("--url", mongo_db_uri, "-o", f"s3_url=s3://{bucket}/m/")

    beside = alley(deploy_dir, s3_server, *options, "status")
    alone = alley(deploy_dir, s3_server, *options, "--disable-plugin", "filesystem", "up")

    # Beside the default, its missing migrations/ folder is a warning; alone, nothing.
    assert beside.returncode == 0, beside.stderr
    assert beside.stdout.startswith(f"migrations: s3://{bucket}/m · server: ")
    assert beside.stderr == f"alley: warning: no migrations/ folder in {deploy_dir}\n"
    assert alone.returncode == 0, alone.stderr
    assert "warning" not in alone.stderr
    assert mongo_db.db_migrations.count_documents({}) == 3


def test_the_url_can_be_set_in_the_config_table(
    deploy_dir: Path, s3_server: S3Server, s3: Any, bucket: str, mongo_db: Any, mongo_db_uri: str
) -> None:
    put(s3, bucket, THREE, prefix="releases/7/")
    (deploy_dir / "pyproject.toml").write_text(
        f'[tool.alley]\ns3_url = "s3://{bucket}/releases/7"\n'
    )

    result = alley(deploy_dir, s3_server, "--url", mongo_db_uri, "up", "2")

    assert result.returncode == 0, result.stderr
    assert sorted(r["id"] for r in mongo_db.db_migrations.find()) == [1, 2]


def test_an_edited_object_is_drift_in_status_and_verify(
    deploy_dir: Path, s3_server: S3Server, s3: Any, bucket: str, mongo_db: Any, mongo_db_uri: str
) -> None:
    put(s3, bucket, THREE)
    options = ("--url", mongo_db_uri, "-o", f"s3_url=s3://{bucket}/m/")
    assert alley(deploy_dir, s3_server, *options, "up").returncode == 0
    assert alley(deploy_dir, s3_server, *options, "verify").returncode == 0

    edited = THREE["0002_add_email.py"].replace("'email': None", "'email': ''")
    put(s3, bucket, {"0002_add_email.py": edited})
    status = alley(deploy_dir, s3_server, *options, "status", "--json")
    verify = alley(deploy_dir, s3_server, *options, "verify")
    up = alley(deploy_dir, s3_server, *options, "up")

    assert status.returncode == 0, status.stderr
    drift = {m["filename"]: m["drift"] for m in json.loads(status.stdout)["migrations"]}
    assert drift == {
        "0001_create_users.py": None,
        "0002_add_email.py": "changed",
        "0003_index.py": None,
    }
    assert verify.returncode == 6, verify.stderr
    assert "0002_add_email.py" in verify.stdout + verify.stderr
    assert up.returncode == 6
    assert "0002_add_email.py (changed)" in up.stderr


def test_create_refuses_and_names_the_key_to_write(
    deploy_dir: Path, s3_server: S3Server, s3: Any, bucket: str
) -> None:
    put(s3, bucket, THREE)

    result = alley(deploy_dir, s3_server, "-o", f"s3_url=s3://{bucket}/m/", "create", "add x")

    line = one_error_line(result, 3)
    assert f"create s3://{bucket}/m/0004_add_x.py" in line
    assert not (deploy_dir / "migrations").exists()


def test_a_prefix_of_more_than_a_thousand_objects_is_listed_in_pages(
    deploy_dir: Path, s3_server: S3Server, s3: Any, bucket: str, mongo_db: Any, mongo_db_uri: str
) -> None:
    put(s3, bucket, many(1500))
    options = ("--url", mongo_db_uri, "-o", f"s3_url=s3://{bucket}/m/")

    status, status_requests = counted(deploy_dir, s3_server, *options, "status", "--json")
    up, up_requests = counted(deploy_dir, s3_server, *options, "up", "2")

    assert status.returncode == 0, status.stderr
    migrations = json.loads(status.stdout)["migrations"]
    assert [m["filename"] for m in migrations] == list(many(1500))
    assert {m["state"] for m in migrations} == {"pending"}
    assert up.returncode == 0, up.stderr
    assert sorted(doc["_id"] for doc in mongo_db.n.find()) == [1, 2]
    # Two pages of listing, one GET per migration: nothing else, whatever the command.
    for requests in (status_requests, up_requests):
        assert requests == {"ListObjectsV2": 2, "GetObject": 1500}, requests


def test_ten_migrations_take_one_listing_and_ten_reads(
    deploy_dir: Path, s3_server: S3Server, s3: Any, bucket: str, mongo_db: Any, mongo_db_uri: str
) -> None:
    put(s3, bucket, many(10))
    options = ("--url", mongo_db_uri, "-o", f"s3_url=s3://{bucket}/m/")

    results = [
        counted(deploy_dir, s3_server, *options, *command)
        for command in (["up"], ["status"], ["verify"], ["down", "1"])
    ]

    for result, requests in results:
        assert result.returncode == 0, result.stderr
        assert requests == {"ListObjectsV2": 1, "GetObject": 10}, requests
    assert mongo_db.db_migrations.count_documents({}) == 0


# ------------------------------------------------------------------------- failures


def test_a_missing_bucket_is_exit_3(
    deploy_dir: Path, s3_server: S3Server, mongo_db: Any, mongo_db_uri: str
) -> None:
    missing = f"alley-missing-{uuid.uuid4().hex[:8]}"

    result = alley(
        deploy_dir, s3_server, "--url", mongo_db_uri, "-o", f"s3_url=s3://{missing}/m/", "up"
    )

    line = one_error_line(result, 3)
    assert f"bucket '{missing}' does not exist at {s3_server.endpoint_url}" in line
    assert nothing_ran(mongo_db)


def test_wrong_keys_are_access_denied_exit_4(
    deploy_dir: Path, s3_server: S3Server, s3: Any, bucket: str, mongo_db: Any, mongo_db_uri: str
) -> None:
    put(s3, bucket, THREE)
    wrong = {"AWS_SECRET_ACCESS_KEY": "not-the-secret-0123456789"}

    result = alley(
        deploy_dir,
        s3_server,
        "--url",
        mongo_db_uri,
        "-o",
        f"s3_url=s3://{bucket}/m/",
        "up",
        env=wrong,
    )

    line = one_error_line(result, 4)
    assert f"S3 at {s3_server.endpoint_url} refused to list s3://{bucket}/m/" in line
    assert "SignatureDoesNotMatch" in line
    assert "not-the-secret" not in result.stderr
    assert s3_server.secret_key not in result.stderr
    assert nothing_ran(mongo_db)


def test_no_credentials_at_all_is_exit_3(
    deploy_dir: Path, s3_server: S3Server, bucket: str, mongo_db: Any, mongo_db_uri: str
) -> None:
    env = environment(s3_server, {"AWS_EC2_METADATA_DISABLED": "true"})
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    assert ALLEY
    options = ("--url", mongo_db_uri, "-o", f"s3_url=s3://{bucket}/m/")

    result = subprocess.run(
        [ALLEY, *options, "up"],
        cwd=deploy_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    line = one_error_line(result, 3)
    assert f"no AWS credentials to list s3://{bucket}/m/" in line
    assert nothing_ran(mongo_db)


def test_a_wrong_endpoint_is_exit_4(
    deploy_dir: Path, s3_server: S3Server, mongo_db: Any, mongo_db_uri: str
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"

    result = alley(
        deploy_dir,
        s3_server,
        "--url",
        mongo_db_uri,
        "-o",
        "s3_url=s3://any-bucket/m/",
        "up",
        env={"AWS_ENDPOINT_URL": endpoint},
    )

    line = one_error_line(result, 4)
    assert f"cannot reach S3 at {endpoint} to list s3://any-bucket/m/" in line
    assert nothing_ran(mongo_db)


def test_a_network_timeout_is_exit_4(
    deploy_dir: Path, s3_server: S3Server, mongo_db: Any, mongo_db_uri: str
) -> None:
    # A socket that listens but never answers: the connection is made, no reply comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"

        result = alley(
            deploy_dir,
            s3_server,
            "--url",
            mongo_db_uri,
            "-o",
            "s3_url=s3://any-bucket/m/",
            "-o",
            "s3_timeout=0.5",
            "-o",
            "s3_attempts=1",
            "up",
            env={"AWS_ENDPOINT_URL": endpoint},
        )

    line = one_error_line(result, 4)
    assert f"S3 at {endpoint} did not answer within the timeout" in line
    assert nothing_ran(mongo_db)


def test_an_object_that_is_not_utf8_is_exit_3(
    deploy_dir: Path, s3_server: S3Server, s3: Any, bucket: str, mongo_db: Any, mongo_db_uri: str
) -> None:
    put(s3, bucket, {**THREE, "0004_latin1.py": "# caf\xe9\n".encode("latin-1")})

    result = alley(
        deploy_dir, s3_server, "--url", mongo_db_uri, "-o", f"s3_url=s3://{bucket}/m/", "up"
    )

    line = one_error_line(result, 3)
    assert f"cannot read s3://{bucket}/m/0004_latin1.py: it is not UTF-8 text" in line
    assert nothing_ran(mongo_db)


def test_a_prefix_without_migrations_is_exit_3(
    deploy_dir: Path, s3_server: S3Server, s3: Any, bucket: str, mongo_db: Any, mongo_db_uri: str
) -> None:
    put(s3, bucket, THREE, prefix="elsewhere/")

    result = alley(
        deploy_dir, s3_server, "--url", mongo_db_uri, "-o", f"s3_url=s3://{bucket}/m/", "up"
    )

    line = one_error_line(result, 3)
    assert f"no migrations under s3://{bucket}/m/" in line
    assert nothing_ran(mongo_db)


def test_the_service_going_away_between_listing_and_reading_is_exit_4(
    deploy_dir: Path, s3: Any, mongo_db: Any, mongo_db_uri: str
) -> None:
    # A server of its own: this test kills it.
    with provide_s3() as doomed:
        client = client_for(doomed)
        client.create_bucket(Bucket="doomed")
        put(client, "doomed", many(50))

        result, requests = counted(
            deploy_dir,
            doomed,
            "--url",
            mongo_db_uri,
            "-o",
            "s3_url=s3://doomed/m/",
            "-o",
            "s3_attempts=2",
            "up",
            env={"KILL_PID_BEFORE_FIRST_GET": str(doomed.pid)},
        )

    line = one_error_line(result, 4)
    assert f"cannot reach S3 at {doomed.endpoint_url} to read s3://doomed/m/" in line
    assert requests["ListObjectsV2"] == 1
    assert nothing_ran(mongo_db)


def test_a_malformed_url_is_exit_3(deploy_dir: Path, s3_server: S3Server) -> None:
    result = alley(deploy_dir, s3_server, "-o", "s3_url=https://bucket/m/", "status")

    line = one_error_line(result, 3)
    assert "invalid s3_url 'https://bucket/m/': it must be s3://BUCKET/PREFIX/" in line
