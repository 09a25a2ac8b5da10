"""mongo-java-server 1.47.0 (memory backend) as a test server: built once with Maven, run with Java.

mongo-java-server is an in-memory MongoDB wire-protocol server in Java, published on
Maven Central as ``de.bwaldvogel:mongo-java-server-memory-backend`` (which brings
``de.bwaldvogel:mongo-java-server-core``). Unlike FerretDB 1.x its compare-and-swap and
``$inc`` are atomic and a unique index treats a missing field as ``null``, so the
branches of alley written for MongoDB's semantics run on it.

Two gaps are closed by a small launcher class, compiled with the server:

* the backend reports wire version 8 (``ServerVersion.MONGO_5_0``), which PyMongo 4.20
  refuses (it needs >= 9): the launcher sets ``AbstractMongoBackend.version(...)`` to
  an own ``MongoVersion`` reporting MongoDB 5.0.0 with wire version 13 (MongoDB 5.0's);
* it has no ``hello`` command: the launcher subclasses ``MemoryBackend`` and answers
  ``hello`` from ``isMaster`` (``handleCommand`` is the backend's command dispatch),
  adding ``isWritablePrimary``. Its ``buildInfo`` also says
  ``mongoJavaServerVersion`` so a server given by URI is recognised.

The build (once, under a lock, into ``$XDG_CACHE_HOME/alley/mongo-java-server-1.47.0/``):
a throwaway Maven project (the POM of :func:`pom_xml` and the launcher of
:func:`launcher_java`) in a temporary directory, ``mvn -B -q package``, which compiles
the launcher and copies the runtime dependencies (``dependency:copy-dependencies``);
the jars are kept in a folder named after a digest of that POM and source, so a changed
launcher is built anew. Maven runs with its default settings (``~/.m2``).

Only the standard library is imported at module level.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from alley.testing.capabilities import MONGO_JAVA_SERVER_MEMORY
from alley.testing.server import (
    Credentials,
    Log,
    Server,
    ServerUnavailable,
    _create_user,
    _default_log,
    _run_logged,
    cache_root,
    start_on_free_port,
)

__all__ = [
    "LAUNCHER_CLASS",
    "MIN_JAVA",
    "MONGO_JAVA_SERVER_VERSION",
    "NETTY_VERSION",
    "REPORTED_MONGODB_VERSION",
    "REPORTED_WIRE_VERSION",
    "build_digest",
    "build_mongo_java_server",
    "find_mongo_java_server",
    "java_command",
    "java_major_version",
    "launcher_java",
    "mongo_java_server_build_dir",
    "mongo_java_server_cache_dir",
    "parse_java_version",
    "pom_xml",
    "start_mongo_java_server",
]

MONGO_JAVA_SERVER_VERSION = "1.47.0"
#: The Netty that mongo-java-server-core 1.47.0 depends on (at runtime scope; the
#: launcher names ``io.netty.channel.Channel`` in an override, so it compiles against it).
NETTY_VERSION = "4.2.2.Final"
REPORTED_MONGODB_VERSION = (5, 0, 0)
REPORTED_WIRE_VERSION = 13
LAUNCHER_CLASS = "AlleyMongoJavaServer"
MIN_JAVA = 17  # mongo-java-server 1.47's classes are Java 17 (class file 61)
READY_TIMEOUT = 60.0
BUILT_MARKER = "alley-build.txt"

_POM = """\
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by alley.testing to build mongo-java-server's launcher; throwaway. -->
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 https://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>alley.testing</groupId>
  <artifactId>alley-mongo-java-server</artifactId>
  <version>{version}</version>
  <packaging>jar</packaging>
  <properties>
    <maven.compiler.release>{java}</maven.compiler.release>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
  </properties>
  <dependencies>
    <dependency>
      <groupId>de.bwaldvogel</groupId>
      <artifactId>mongo-java-server-memory-backend</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>de.bwaldvogel</groupId>
      <artifactId>mongo-java-server-core</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>io.netty</groupId>
      <artifactId>netty-transport</artifactId>
      <version>{netty}</version>
    </dependency>
  </dependencies>
  <build>
    <finalName>alley-mongo-java-server</finalName>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-compiler-plugin</artifactId>
        <version>3.13.0</version>
      </plugin>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-resources-plugin</artifactId>
        <version>3.3.1</version>
      </plugin>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-jar-plugin</artifactId>
        <version>3.4.2</version>
      </plugin>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>3.8.1</version>
        <executions>
          <execution>
            <id>copy-runtime-jars</id>
            <phase>package</phase>
            <goals><goal>copy-dependencies</goal></goals>
            <configuration>
              <outputDirectory>${{project.build.directory}}/lib</outputDirectory>
              <includeScope>runtime</includeScope>
            </configuration>
          </execution>
        </executions>
      </plugin>
    </plugins>
  </build>
</project>
"""

_LAUNCHER = """\
// Written by alley.testing: starts mongo-java-server's memory backend on HOST PORT.
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import de.bwaldvogel.mongo.bson.Document;
import io.netty.channel.Channel;
import java.util.List;
import java.util.concurrent.CountDownLatch;

public final class {cls} {{
    /** The backend's newest ServerVersion reports wire version 8; PyMongo 4.20 needs 9+. */
    private static final class ReportedVersion implements MongoVersion {{
        @Override
        public List<Integer> getVersionArray() {{
            return List.of({major}, {minor}, {patch});
        }}

        @Override
        public int getWireVersion() {{
            return {wire};
        }}
    }}

    /** The memory backend, answering hello (which it lacks) as isMaster. */
    private static final class Backend extends MemoryBackend {{
        @Override
        public Document handleCommand(
                Channel channel, String database, String command, Document query) {{
            if (command.equalsIgnoreCase("hello")) {{
                Document answer = super.handleCommand(channel, database, "isMaster", query);
                answer.remove("ismaster");
                answer.put("isWritablePrimary", Boolean.TRUE);
                return answer;
            }}
            Document answer = super.handleCommand(channel, database, command, query);
            if (command.equalsIgnoreCase("buildInfo")) {{
                answer.put("mongoJavaServerVersion", "{version}");
            }}
            return answer;
        }}
    }}

    public static void main(String[] args) throws InterruptedException {{
        if (args.length != 2) {{
            System.err.println("usage: {cls} HOST PORT");
            System.exit(2);
        }}
        Backend backend = new Backend();
        backend.version(new ReportedVersion());
        MongoServer server = new MongoServer(backend);
        server.bind(args[0], Integer.parseInt(args[1]));
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {{
            server.shutdownNow();
            stopped.countDown();
        }}));
        System.out.println("mongo-java-server {version} listening on " + args[0] + ":" + args[1]);
        System.out.flush();
        stopped.await();
    }}
}}
"""


def pom_xml() -> str:
    """The POM of the throwaway project: mongo-java-server + the launcher, jars copied."""
    return _POM.format(version=MONGO_JAVA_SERVER_VERSION, java=MIN_JAVA, netty=NETTY_VERSION)


def launcher_java() -> str:
    """The launcher's Java source (class :data:`LAUNCHER_CLASS`, default package)."""
    major, minor, patch = REPORTED_MONGODB_VERSION
    return _LAUNCHER.format(
        cls=LAUNCHER_CLASS,
        version=MONGO_JAVA_SERVER_VERSION,
        major=major,
        minor=minor,
        patch=patch,
        wire=REPORTED_WIRE_VERSION,
    )


def build_digest() -> str:
    """12 hex digits of SHA-256 over the POM and the launcher: the build folder's name."""
    digest = hashlib.sha256()
    for text in (pom_xml(), launcher_java()):
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def mongo_java_server_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/alley/mongo-java-server-1.47.0`` (default ``~/.cache``)."""
    return cache_root(env) / f"mongo-java-server-{MONGO_JAVA_SERVER_VERSION}"


def mongo_java_server_build_dir(env: Mapping[str, str] | None = None) -> Path:
    """The folder holding this launcher's jars: ``<cache dir>/<build digest>``."""
    return mongo_java_server_cache_dir(env) / build_digest()


def _is_built(folder: Path) -> bool:
    marker = folder / BUILT_MARKER
    try:
        jars = marker.read_text().split()
    except OSError:
        return False
    return bool(jars) and all((folder / jar).is_file() for jar in jars)


def find_mongo_java_server(env: Mapping[str, str] | None = None) -> Path | None:
    """The cached build folder (jars of the server and the launcher), if complete."""
    folder = mongo_java_server_build_dir(env)
    return folder if _is_built(folder) else None


def parse_java_version(text: str) -> int | None:
    """The major version in ``java -version`` output (``"17.0.15"`` → 17, ``"1.8.0"`` → 8)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        return int(match.group(2))
    return major


def java_major_version(java: str) -> int | None:
    """The major version of the ``java`` executable, or ``None`` if it does not run."""
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_java_version(out.stderr + out.stdout)


def java_command(java: str, build_dir: Path, host: str, port: int) -> list[str]:
    """The command line starting the launcher from ``build_dir`` on ``host:port``."""
    return [java, "-cp", str(build_dir / "*"), LAUNCHER_CLASS, host, str(port)]


def _how_to_provide(env: Mapping[str, str]) -> str:
    return (
        f"mongo-java-server {MONGO_JAVA_SERVER_VERSION} needs Java >= {MIN_JAVA} (`java`) "
        f"and Maven (`mvn`) on PATH to be built once into {mongo_java_server_cache_dir(env)}"
    )


def _java(env: Mapping[str, str]) -> str:
    java = shutil.which("java", path=env.get("PATH"))
    if java is None:
        raise ServerUnavailable(f"no `java` on PATH: {_how_to_provide(env)}")
    major = java_major_version(java)
    if major is None or major < MIN_JAVA:
        found = "an unknown version" if major is None else f"Java {major}"
        raise ServerUnavailable(f"{java} is {found}; {_how_to_provide(env)}")
    return java


def build_mongo_java_server(
    target: Path | None = None,
    *,
    mvn: str | None = None,
    env: Mapping[str, str] | None = None,
    log: Log = _default_log,
) -> Path:
    """Build the launcher and gather mongo-java-server's jars into ``target`` (once).

    ``target`` defaults to :func:`mongo_java_server_build_dir`. A lock file in its parent
    (``fcntl.flock``) makes concurrent callers wait for one build; the folder appears
    atomically (built beside it, then renamed), with a marker listing its jars.
    """
    env = dict(os.environ if env is None else env)
    target = target or mongo_java_server_build_dir(env)
    _java(env)
    mvn = mvn or shutil.which("mvn", path=env.get("PATH"))
    if mvn is None:
        raise ServerUnavailable(f"no `mvn` on PATH: {_how_to_provide(env)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / ".build.lock").open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another process building mongo-java-server into {target.parent}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_built(target):
            return target
        log(
            f"building mongo-java-server {MONGO_JAVA_SERVER_VERSION} with {mvn} into {target}; "
            "this happens once and takes about a minute (10 s when ~/.m2 has the jars)"
        )
        started = time.monotonic()
        what = f"mongo-java-server {MONGO_JAVA_SERVER_VERSION}"
        staging = target.parent / f".build.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            with tempfile.TemporaryDirectory(prefix="alley-mongo-java-server-build-") as name:
                work = Path(name)
                (work / "src" / "main" / "java").mkdir(parents=True)
                (work / "pom.xml").write_text(pom_xml())
                (work / "src" / "main" / "java" / f"{LAUNCHER_CLASS}.java").write_text(
                    launcher_java()
                )
                _run_logged(
                    [mvn, "-B", "-q", "-Dstyle.color=never", "-Dmaven.test.skip=true", "package"],
                    work,
                    env,
                    log,
                    what,
                )
                jars = [work / "target" / "alley-mongo-java-server.jar"]
                jars += sorted((work / "target" / "lib").glob("*.jar"))
                missing = [str(jar) for jar in jars if not jar.is_file()]
                if missing or len(jars) < 3:
                    raise ServerUnavailable(
                        f"building {what}: Maven succeeded but the jars are missing: "
                        f"{missing or jars}"
                    )
                shutil.rmtree(staging, ignore_errors=True)
                staging.mkdir()
                for jar in jars:
                    shutil.copy2(jar, staging / jar.name)
                (staging / BUILT_MARKER).write_text("\n".join(jar.name for jar in jars) + "\n")
            shutil.rmtree(target, ignore_errors=True)  # an incomplete earlier attempt
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log(f"built {what} in {time.monotonic() - started:.0f} s: {target}")
        return target


def start_mongo_java_server(
    build_dir: Path,
    *,
    credentials: Credentials | None = None,
    env: Mapping[str, str] | None = None,
    log: Log = _default_log,
) -> Server:
    """Start the launcher from ``build_dir`` on a free loopback port; wait until it answers.

    With ``credentials`` the user is created with ``createUser``, which
    mongo-java-server does not know: :class:`ServerUnavailable` says it has no
    authentication.
    """
    env = os.environ if env is None else env
    java = _java(env)
    process, uri, tmp = start_on_free_port(
        f"mongo-java-server {MONGO_JAVA_SERVER_VERSION} ({build_dir})",
        lambda tmp, port: java_command(java, build_dir, "127.0.0.1", port),
        env,
        log,
        prefix="alley-mongo-java-server-",
        timeout=READY_TIMEOUT,
    )
    if credentials is not None:
        from pymongo.errors import PyMongoError

        try:
            _create_user(uri, credentials)
        except PyMongoError as exc:
            process.stop()
            raise ServerUnavailable(
                f"mongo-java-server has no authentication (createUser: {exc}); "
                "use FerretDB or a MongoDB for a server with users"
            ) from exc
        except BaseException:
            process.stop()
            raise
    major, minor, patch = REPORTED_MONGODB_VERSION
    return Server(
        uri=uri,
        kind="mongo-java-server",
        version=MONGO_JAVA_SERVER_VERSION,
        description=(
            f"mongo-java-server {MONGO_JAVA_SERVER_VERSION} (memory backend; reports "
            f"MongoDB {major}.{minor}.{patch}, wire {REPORTED_WIRE_VERSION}) at {uri}"
        ),
        credentials=credentials,
        pid=process.proc.pid,
        workdir=tmp,
        capabilities=MONGO_JAVA_SERVER_MEMORY,
        _stopper=process.stop,
    )
