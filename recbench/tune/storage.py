"""Where studies live: the default SQLite file, `journal:PATH` and database URLs, opening a storage,
and creating, continuing or loading a study in it."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.exceptions import ExperimentalWarning

from .. import paths
from ..errors import UsageError
from .trials import requeue

if TYPE_CHECKING:
    from .plan import Plan, TuneOptions

STUDY_ATTR = "recbench"  # the study's user attribute that records what it tunes


def default_storage() -> str:
    return f"sqlite:///{(paths.home() / 'tune' / 'studies.db').resolve()}"


def journal_path(url: str) -> Path | None:
    return Path(url[len("journal:"):]).expanduser() if url.startswith("journal:") else None


def sqlite_path(url: str) -> Path | None:
    rest = url[len("sqlite:///"):] if url.startswith("sqlite:///") else None
    return None if rest in (None, "", ":memory:") else Path(rest)


def check_storage_url(url: str) -> None:
    if not url.startswith("journal:") and "://" not in url:
        raise UsageError(f"--storage '{url}' is not a storage URL. Valid: sqlite:///PATH, journal:PATH, or another "
                         "SQLAlchemy database URL (postgresql://..., mysql://...).")


def open_storage(url: str, options: TuneOptions | None = None, create: bool = True) -> optuna.storages.BaseStorage:
    """`journal:PATH` -> a JournalStorage on that file; any other URL -> an RDBStorage (SQLite, PostgreSQL,
    MySQL, ...). With `options` (to run trials), RDB storage gets heartbeats: a running trial whose
    worker stopped beating is failed and queued again (Optuna's stale-trial retry, through `requeue`).
    With create=False a missing SQLite or journal file is a UsageError instead of a new empty storage."""
    local = journal_path(url) or sqlite_path(url)
    if local is not None:
        if not create and not local.is_file():
            raise UsageError(f"--storage {url}: '{local}' does not exist (no study was run with this storage yet).")
        local.parent.mkdir(parents=True, exist_ok=True)
    if journal_path(url) is not None:
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(local)))
    check_storage_url(url)
    sqlite = url.startswith("sqlite:")
    # wait up to 60 s for other workers' writes; transactions are begun by SQLAlchemy (see `lock_sqlite_transactions`)
    engine = {"connect_args": {"timeout": 60, "isolation_level": None}} if sqlite else None
    heartbeat = {} if options is None else {
        "heartbeat_interval": options.heartbeat_interval, "grace_period": options.grace_period,
        "heartbeat_stale_trial_callback": lambda study, trial: requeue(study, trial, options.max_retries)}
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                storage = optuna.storages.RDBStorage(url, engine_kwargs=engine, **heartbeat)
            break
        except Exception as exc:  # noqa: BLE001 - a bad URL, a missing driver, an unreachable server
            if attempt < 4 and schema_made_meanwhile(exc):
                time.sleep(0.2 * (attempt + 1))
                continue
            raise UsageError(open_error(url, exc)) from exc
    if sqlite:
        lock_sqlite_transactions(storage.engine)
    return storage


def schema_made_meanwhile(exc: Exception) -> bool:
    """Whether opening failed because another process created the new database's tables at the same
    moment (machines starting one study on an empty database): opening it again then finds them."""
    from sqlalchemy.exc import IntegrityError

    return isinstance(exc, IntegrityError) or "already exists" in str(exc)


DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}


def open_error(url: str, exc: Exception) -> str:
    """What went wrong opening database storage `url`, in one message: a server that cannot be reached is
    named by host and port (the driver's own first line says why: refused, unknown host, timed out, a
    password), anything else (a bad URL, a missing driver) with the storage URLs that are valid. The
    URL is shown without its password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, OperationalError

    try:
        parsed = make_url(url)
        shown = parsed.render_as_string(hide_password=True)
    except ArgumentError:
        parsed, shown = None, url
    if isinstance(exc, OperationalError) and parsed is not None and parsed.host:
        port = parsed.port or DEFAULT_PORTS.get(parsed.get_backend_name(), "default port")
        why = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc).splitlines()[0]
        return (f"--storage '{shown}': cannot connect to the database server at {parsed.host}:{port} ({why}). "
                "Is the server running and does it accept connections from this machine at that address?")
    return (f"--storage '{shown}' cannot be opened: {str(exc).splitlines()[0]}. Valid: sqlite:///PATH, journal:PATH, or another "
            "SQLAlchemy database URL (postgresql://..., mysql://...; postgresql needs the psycopg driver: pip install 'psycopg[binary]').")


def lock_sqlite_transactions(engine) -> None:
    """Begin every transaction on this SQLite engine with BEGIN IMMEDIATE (the database's write lock).
    SQLite ignores Optuna's SELECT ... FOR UPDATE, so without it two worker processes can both read a
    queued trial as WAITING and both take it (trial 0, the defaults, run twice at once)."""
    from sqlalchemy import event

    event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN IMMEDIATE"))


def open_study(plan: Plan, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """The plan's study, created (maximising the validation metric) or loaded; a study of the same
    name made for another generator, dataset, fixed config, search space or seed is a UsageError.

    Only the process that creates the study queues trial 0 (the defaults): the database's unique study
    name decides which one, so two machines starting the same study at once queue it once, not twice."""
    info = {**plan.identity, "metric": plan.metric}
    try:
        study = optuna.create_study(storage=storage, study_name=plan.study, direction="maximize")
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=plan.study, storage=storage)
        stored = stored_identity(study)
    else:
        study.set_user_attr(STUDY_ATTR, info)
        study.enqueue_trial(plan.defaults, user_attrs={"defaults": True})
        stored = info
    if isinstance(stored, dict) and stored.get("config") != info["config"] and same_fixed_config(stored.get("config"), plan):
        stored = {**stored, "config": info["config"]}  # a study made before fingerprints hashed the whole config
    if stored is None and not study.trials:
        study.set_user_attr(STUDY_ATTR, info)
    elif stored != info or study.direction != optuna.study.StudyDirection.MAXIMIZE:
        differ = sorted(k for k in info if (stored or {}).get(k) != info[k]) if isinstance(stored, dict) else ["everything"]
        raise UsageError(f"Study '{plan.study}' in {plan.storage} was made for another run (differs in: {', '.join(differ)}); "
                         "pick another --study-name, or leave it out for the default name.")
    return study


def stored_identity(study: optuna.Study, wait: float = 5.0):
    """The identity stored with a loaded study. A study created a moment ago by another machine may not
    carry it yet (open_study stores it right after create_study): wait for it up to `wait` seconds."""
    deadline = time.monotonic() + wait
    while (stored := study.user_attrs.get(STUDY_ATTR)) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return stored


def same_fixed_config(stored, plan: Plan) -> bool:
    """Whether fingerprint `stored` is that of the plan's fixed config under either fingerprint scheme (records.same_config)."""
    from ..results.records import same_config
    from ..runner import resolved_config

    resolved = plan.resolved
    return same_config(stored, resolved_config(resolved), resolved.tokenizer.name if resolved.tokenizer else None)


def load_study(name: str, storage_url: str | None = None) -> optuna.Study:
    """An existing study; an unknown name is a UsageError that lists the studies in the storage."""
    url = storage_url or default_storage()
    storage = open_storage(url, create=False)
    names = optuna.study.get_all_study_names(storage)
    if name not in names:
        raise UsageError(f"No study named '{name}' in {url}. Studies there: {', '.join(sorted(names)) or '(none)'}.")
    return optuna.load_study(study_name=name, storage=storage)
