"""Two submissions creating the same new namespace and environment at the same moment both
succeed: one creates them, the other waits for it and uses them."""

from __future__ import annotations

import threading

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from appliance.builder.settings import BuildSettings
from appliance.db.models import Build, Environment, Namespace
from tests.fixtures.worker import submit

SPEC = "name: tool\ndependencies:\n  - kiln-demo-tool\n"


def test_concurrent_first_submissions_share_the_new_namespace_and_environment(
    db_sessions: sessionmaker[Session], build_settings: BuildSettings
) -> None:
    first = db_sessions()
    first.begin()
    from appliance.schemas.specification import parse_specification
    from appliance.services.builds import submit_specification

    submit_specification(
        first, namespace="fresh", specification=parse_specification(SPEC), settings=build_settings
    )
    outcome: list[object] = []

    def second() -> None:
        try:
            outcome.append(
                submit(
                    db_sessions, build_settings, SPEC + "  - kiln-demo-data\n", namespace="fresh"
                )
            )
        except Exception as error:  # reported below
            outcome.append(error)

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(timeout=1.0)
    assert thread.is_alive(), "the second submission should wait for the first's transaction"
    first.commit()
    first.close()
    thread.join(timeout=30)
    assert outcome and isinstance(outcome[0], int), outcome
    with db_sessions() as session:
        assert session.scalar(select(func.count()).select_from(Namespace)) == 1
        assert session.scalar(select(func.count()).select_from(Environment)) == 1
        assert session.scalar(select(func.count()).select_from(Build)) == 2
