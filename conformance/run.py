"""Run Django's own session-backend tests against our stores.

Usage: ``python conformance/run.py [extra pytest arguments]``

The tests come from the source distribution of the Django installed for this
Python, downloaded with pip into ``.cache/conformance/`` on the first run. They
run twice, with ``USE_TZ`` on and off; the last line printed is
``conformance: N passed, N failed``. The cached_db tests use django-redis
against a private ``redis-server`` started on a free loopback port. The exit
status is non-zero when a test failed or errored, when no test ran, or when
the tests could not be fetched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path, PurePosixPath

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests.servers import RedisProcess  # noqa: E402

CACHE = ROOT / ".cache" / "conformance"
#: ``USE_TZ`` value of each run -> the ``CONFORMANCE_USE_TZ`` read by settings.py.
RUNS = {"USE_TZ=True": "1", "USE_TZ=False": "0"}
PIP_DOWNLOAD = ["-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
PYTEST_OPTIONS = ["-p", "no:cacheprovider", "--ds", "conformance.settings"]


class SetupError(Exception):
    """The tests could not be fetched or run; the message says why."""


def django_version() -> str:
    try:
        return version("django")
    except PackageNotFoundError:
        raise SetupError(f"Django is not installed for {sys.executable}.") from None


#: What is taken from Django's ``tests/``: the session tests, and the cache
#: backend that fails on purpose, used by the cached_db tests.
EXTRACTED = (
    ("sessions_tests",),
    ("cache", "__init__.py"),
    ("cache", "failing_cache.py"),
)


def django_tests_dir(django: str) -> Path:
    """Return Django's ``tests/`` directory, holding only what ``EXTRACTED`` names."""
    target = CACHE / f"django-{django}"
    tests = target / "tests"
    if all((tests / Path(*parts)).exists() for parts in EXTRACTED):
        return tests
    print(f"Downloading the source distribution of Django {django} to {target}")
    download = subprocess.run(
        [sys.executable, *PIP_DOWNLOAD, f"django=={django}", "-d", str(target)],
        check=False,
    )
    name = f"django-{django}.tar.gz"
    sdist = next((p for p in target.glob("*.tar.gz") if p.name.lower() == name), None)
    if download.returncode or sdist is None:
        raise SetupError(
            f"Could not download the source distribution of Django {django} "
            f"(pip exited with status {download.returncode}). The conformance "
            "tests are taken from it: check the network access and pip's index "
            "configuration, then run again."
        )
    with tempfile.TemporaryDirectory(dir=target) as tmp:
        _extract_sessions_tests(sdist, Path(tmp))
        shutil.rmtree(tests, ignore_errors=True)
        os.replace(Path(tmp) / "tests", tests)
    return tests


def _extract_sessions_tests(sdist: Path, dest: Path) -> None:
    """Extract what ``EXTRACTED`` names under ``<top>/tests/`` to ``dest/tests/``."""
    with tarfile.open(sdist) as tar:
        members = []
        for member in tar.getmembers():
            parts = PurePosixPath(member.name).parts
            wanted = any(parts[2 : 2 + len(w)] == w for w in EXTRACTED)
            if (
                parts[1:2] == ("tests",)
                and wanted
                and ".." not in parts
                and (member.isfile() or member.isdir())
            ):
                member.name = PurePosixPath(*parts[1:]).as_posix()
                members.append(member)
        if not members:
            raise SetupError(f"{sdist} holds no tests/sessions_tests/ directory.")
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(dest, members=members, **safe)  # type: ignore[arg-type]


def run_pytest(
    tests_dir: Path, use_tz: str, redis_url: str, junit: Path, args: list[str]
) -> int:
    paths = [str(tests_dir), str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {
        **os.environ,
        "CONFORMANCE_USE_TZ": use_tz,
        "CONFORMANCE_REDIS_URL": redis_url,
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
    }
    command = [sys.executable, "-m", "pytest", "-c", str(HERE / "pytest.ini")]
    command += ["--rootdir", str(ROOT), *PYTEST_OPTIONS, f"--junitxml={junit}"]
    command += [str(HERE / "test_django_sessions.py"), *args]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


def count(junit: Path) -> tuple[int, int, int]:
    """Return the passed, failed (or errored) and skipped tests of a report."""
    passed = failed = skipped = 0
    # Parsing the report pytest just wrote, not outside input.
    for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314
        outcomes = {child.tag for child in case}
        if outcomes & {"failure", "error"}:
            failed += 1
        elif "skipped" in outcomes:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


def main(args: list[str]) -> int:
    try:
        django = django_version()
        tests_dir = django_tests_dir(django)
        redis_server = RedisProcess().start()
    except (SetupError, RuntimeError) as exc:
        print(f"conformance: cannot run: {exc}", file=sys.stderr)
        return 2
    total_passed = total_failed = 0
    lines = []
    ok = True
    with tempfile.TemporaryDirectory() as tmp, redis_server:
        for label, use_tz in RUNS.items():
            junit = Path(tmp) / f"junit-{use_tz}.xml"
            status = run_pytest(tests_dir, use_tz, redis_server.url, junit, args)
            if not junit.is_file():
                lines.append(
                    f"Django {django}, {label}: pytest exited {status}, "
                    "without a report"
                )
                ok = False
                continue
            passed, failed, skipped = count(junit)
            total_passed += passed
            total_failed += failed
            ok = ok and status == 0 and failed == 0 and passed > 0
            lines.append(
                f"Django {django}, {label}: {passed} passed, "
                f"{failed} failed, {skipped} skipped"
            )
    print(*lines, sep="\n")
    print(f"conformance: {total_passed} passed, {total_failed} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
