"""alley.testing.s3: the S3 server the plugin's tests use is real, private and cleaned up."""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from alley.testing.s3 import S3Server, find_minio, minio_cache_path, provide_s3

TESTING_MD = Path(__file__).resolve().parents[4] / "docs" / "testing.md"


def test_the_server_comes_from_the_cache(s3_server: S3Server) -> None:
    assert find_minio() == minio_cache_path() == s3_server.binary


def test_it_answers_s3_with_its_own_credentials_only(s3_server: S3Server) -> None:
    options = {"endpoint_url": s3_server.endpoint_url, "region_name": s3_server.region}
    good = boto3.client(
        "s3",
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
        **options,
    )
    bad = boto3.client(
        "s3", aws_access_key_id="minioadmin", aws_secret_access_key="minioadmin", **options
    )

    good.create_bucket(Bucket="provisioning")
    good.put_object(Bucket="provisioning", Key="a/b.txt", Body=b"hello")
    listed = good.list_objects_v2(Bucket="provisioning", Prefix="a/", Delimiter="/")
    body = good.get_object(Bucket="provisioning", Key="a/b.txt")["Body"].read()
    with pytest.raises(ClientError) as refused:
        bad.list_buckets()

    assert [item["Key"] for item in listed["Contents"]] == ["a/b.txt"]
    assert body == b"hello"
    assert refused.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    assert s3_server.endpoint_url.startswith("http://127.0.0.1:")
    good.delete_object(Bucket="provisioning", Key="a/b.txt")
    good.delete_bucket(Bucket="provisioning")


def test_provide_s3_stops_the_server_and_removes_its_data(s3_server: S3Server) -> None:
    with provide_s3() as other:
        assert other.endpoint_url != s3_server.endpoint_url
        assert other.access_key != s3_server.access_key
        assert other.data_dir.is_dir()
        with urllib.request.urlopen(f"{other.endpoint_url}/minio/health/live") as reply:
            assert reply.status == 200

    assert not other.data_dir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(other.pid, 0)
    with pytest.raises(urllib.error.URLError, match="refused"):
        urllib.request.urlopen(f"{other.endpoint_url}/minio/health/live", timeout=2)


def test_the_example_of_docs_testing_md_runs() -> None:
    """The ```python block of "An S3 server" in docs/testing.md, as written."""
    section = TESTING_MD.read_text(encoding="utf-8").split("## An S3 server", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "docs/testing.md has no python block in its S3 section"
    namespace: dict[str, object] = {}

    exec(compile(match[1], str(TESTING_MD), "exec"), namespace)

    # The block's server is stopped and its data gone once the ``with`` ended.
    s3 = namespace["s3"]
    assert isinstance(s3, S3Server)
    assert not s3.data_dir.exists()
