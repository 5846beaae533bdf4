"""The models on real PostgreSQL: the rules the schema enforces and the queries its indexes
serve, as the services will use them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from appliance.db.engine import async_session_factory, create_async_engine
from appliance.db.models import (
    ApiToken,
    Build,
    BuildArtifact,
    BuildArtifactType,
    BuildPipPackage,
    BuildStatus,
    CondaChannel,
    CondaPackage,
    CondaPackageBuild,
    Environment,
    Namespace,
    NamespaceRoleMapping,
    NamespaceRoleMappingV2,
    Setting,
    Specification,
    StorageSample,
    User,
    next_build_id,
)
from appliance.schemas.specification import EnvironmentSpec


def specification(
    name: str = "science", channels: tuple[str, ...] = ("conda-forge",)
) -> Specification:
    spec = EnvironmentSpec(name=name, channels=channels, dependencies=("python >=3.11", "numpy"))
    return Specification(name=spec.name, spec=spec.to_dict(), sha256=spec.sha256())


def new_build(session: Session, environment: Environment, spec: Specification) -> Build:
    build_id = next_build_id(session)
    build = Build(
        id=build_id,
        environment=environment,
        specification=spec,
        build_key=f"{spec.sha256[:8]}-1700000000-{build_id}-{environment.name}",
    )
    session.add(build)
    return build


def test_an_environment_and_its_first_build_are_saved_together(
    db_sessions: sessionmaker[Session],
) -> None:
    with db_sessions.begin() as session:
        namespace = Namespace(name="default")
        environment = Environment(namespace=namespace, name="science", description="numpy")
        build = new_build(session, environment, specification())
        environment.current_build = build  # environment <-> build point at each other

    with db_sessions() as session:
        found = session.scalars(select(Environment).where(Environment.active())).one()
        assert found.current_build is not None
        assert found.current_build.status is BuildStatus.QUEUED
        assert found.current_build.build_key.endswith(f"-{found.current_build.id}-science")
        assert found.namespace.metadata_ == {}
        assert found.current_build.size == 0
        assert found.current_build.key_version == 2
        scheduled = found.current_build.scheduled_on
        assert scheduled.tzinfo is not None and scheduled.utcoffset() == timedelta(0)
        assert abs(datetime.now(UTC) - scheduled) < timedelta(minutes=1)


def test_specifications_are_content_addressed_and_keep_channel_order(
    db_sessions: sessionmaker[Session],
) -> None:
    first = specification(channels=("conda-forge", "bioconda"))
    swapped = specification(channels=("bioconda", "conda-forge"))
    assert first.sha256 != swapped.sha256
    with db_sessions.begin() as session:
        session.add_all([first, swapped])
    with db_sessions() as session:
        stored = session.scalars(select(Specification).where(Specification.sha256 == first.sha256))
        assert stored.one().spec["channels"] == ["conda-forge", "bioconda"]
    with pytest.raises(IntegrityError, match="uq_specification_sha256"), db_sessions.begin() as s:
        s.add(specification(channels=("conda-forge", "bioconda")))


def test_a_deleted_name_can_be_used_again(db_sessions: sessionmaker[Session]) -> None:
    with db_sessions.begin() as session:
        old = Namespace(name="team")
        session.add(Environment(namespace=old, name="analysis"))
    with db_sessions.begin() as session:
        namespace = session.scalars(select(Namespace).where(Namespace.name == "team")).one()
        duplicate = pytest.raises(IntegrityError, match="uq_environment_namespace_id_name_active")
        with duplicate, session.begin_nested():
            session.add(Environment(namespace=namespace, name="analysis"))
        session.scalars(select(Environment)).one().deleted_on = func.now()
        session.flush()
        session.add(Environment(namespace=namespace, name="analysis"))
        namespace.deleted_on = func.now()
        session.flush()
        session.add(Namespace(name="team"))
    with db_sessions() as session:
        names = session.execute(select(Namespace.name, func.count()).group_by(Namespace.name)).all()
        assert names == [("team", 2)]
        active = session.scalars(select(Namespace).where(Namespace.active())).one()
        assert active.environments == []


def test_deleting_a_namespace_removes_what_is_in_it(db_sessions: sessionmaker[Session]) -> None:
    with db_sessions.begin() as session:
        namespace = Namespace(name="doomed")
        other = Namespace(name="friends")
        environment = Environment(namespace=namespace, name="env")
        build = new_build(session, environment, specification())
        environment.current_build = build
        build.artifacts.append(
            BuildArtifact(artifact_type=BuildArtifactType.LOGS, key="logs/x.log")
        )
        build.pip_packages.append(BuildPipPackage(name="requests", version="2.32.3"))
        session.add_all(
            [
                NamespaceRoleMapping(namespace=namespace, entity="doomed/*", role="viewer"),
                NamespaceRoleMappingV2(namespace=namespace, other_namespace=other, role="editor"),
            ]
        )
    with db_sessions.begin() as session:
        session.execute(text("DELETE FROM namespace WHERE name = 'doomed'"))
    with db_sessions() as session:
        for model in (Environment, Build, BuildArtifact, BuildPipPackage, NamespaceRoleMapping):
            assert session.scalars(select(model)).all() == [], model.__name__
        assert session.scalars(select(NamespaceRoleMappingV2)).all() == []
        assert session.scalars(select(Specification)).one().name == "science"  # shared, kept


def test_a_deleted_build_stops_being_current(db_sessions: sessionmaker[Session]) -> None:
    with db_sessions.begin() as session:
        environment = Environment(namespace=Namespace(name="default"), name="env")
        environment.current_build = new_build(session, environment, specification())
    with db_sessions.begin() as session:
        session.execute(text("DELETE FROM build"))
    with db_sessions() as session:
        assert session.scalars(select(Environment)).one().current_build_id is None


def test_statuses_outside_the_enum_are_refused(db_sessions: sessionmaker[Session]) -> None:
    with db_sessions.begin() as session:
        environment = Environment(namespace=Namespace(name="default"), name="env")
        new_build(session, environment, specification())
    with pytest.raises(IntegrityError, match="ck_build_status"), db_sessions.begin() as session:
        session.execute(text("UPDATE build SET status = 'STUCK'"))


def test_usernames_are_unique_without_regard_to_case(db_sessions: sessionmaker[Session]) -> None:
    with db_sessions.begin() as session:
        session.add(User(username="Alice", password_hash="scrypt$..."))
    duplicate = pytest.raises(IntegrityError, match="uq_user_account_username_lower")
    with duplicate, db_sessions.begin() as session:
        session.add(User(username="alice"))
    with db_sessions() as session:
        query = select(User).where(func.lower(User.username) == "ALICE".lower())
        user = session.scalars(query).one()
        assert (user.username, user.is_admin, user.disabled) == ("Alice", False, False)


def test_a_deleted_user_takes_their_tokens(db_sessions: sessionmaker[Session]) -> None:
    with db_sessions.begin() as session:
        user = User(username="bob")
        user.tokens.append(ApiToken(name="laptop", role_bindings={"bob/*": ["admin"]}))
        session.add(user)
        session.add(ApiToken(name="automation"))  # minted by `kiln token create`, no user
    with db_sessions() as session:
        tokens = session.scalars(select(ApiToken).order_by(ApiToken.created_on)).all()
        assert {t.name for t in tokens} == {"laptop", "automation"}
        assert all(t.id.version == 4 for t in tokens)
    with db_sessions.begin() as session:
        session.execute(text("DELETE FROM user_account"))
    with db_sessions() as session:
        assert [t.name for t in session.scalars(select(ApiToken))] == ["automation"]


def test_settings_are_one_value_per_scope_and_key(db_sessions: sessionmaker[Session]) -> None:
    with db_sessions.begin() as session:
        session.add_all(
            [
                Setting(scope="", key="conda_allowed_channels", value=["conda-forge"]),
                Setting(scope="team", key="conda_allowed_channels", value=["bioconda"]),
                Setting(scope="team/env", key="conda_included_packages", value=["ipykernel"]),
                Setting(scope="teammate", key="conda_included_packages", value=[]),
            ]
        )
    with db_sessions() as session:
        in_team = session.scalars(
            select(Setting.scope).where(
                (Setting.scope == "team") | Setting.scope.startswith("team/")
            )
        ).all()
        assert sorted(in_team) == ["team", "team/env"]
    with pytest.raises(IntegrityError, match="uq_setting_scope_key"), db_sessions.begin() as s:
        s.add(Setting(scope="team", key="conda_allowed_channels", value=[]))


def test_installed_packages_are_recorded_per_build(db_sessions: sessionmaker[Session]) -> None:
    with db_sessions.begin() as session:
        channel = CondaChannel(name="https://conda.anaconda.org/conda-forge")
        numpy = CondaPackage(channel=channel, name="numpy", version="2.1.0", license="BSD-3-Clause")
        numpy_build = CondaPackageBuild(
            package=numpy,
            channel=channel,
            subdir="linux-64",
            filename="numpy-2.1.0-py311h0000000_0.conda",
            build="py311h0000000_0",
            build_number=0,
            depends=["python >=3.11,<3.12.0a0", "libblas >=3.9.0"],
        )
        environment = Environment(namespace=Namespace(name="default"), name="env")
        build = new_build(session, environment, specification())
        build.package_builds.append(numpy_build)
        build.pip_packages.append(BuildPipPackage(name="requests", version="2.32.3"))
    with db_sessions() as session:
        # The `packages` filter: builds that contain numpy.
        query = (
            select(Build.id)
            .join(Build.package_builds)
            .join(CondaPackageBuild.package)
            .where(CondaPackage.name == "numpy")
        )
        assert len(session.scalars(query).all()) == 1
        stored = session.scalars(select(CondaPackageBuild)).one()
        assert stored.depends == ["python >=3.11,<3.12.0a0", "libblas >=3.9.0"]
        assert stored.constrains == []


def explain(engine: Engine, query: str) -> str:
    with engine.connect() as connection:
        connection.execute(text("SET enable_seqscan = off"))
        return "\n".join(connection.execute(text(f"EXPLAIN {query}")).scalars())


def test_package_search_is_served_by_indexes(db_engine: Engine) -> None:
    substring = explain(db_engine, "SELECT id FROM conda_package WHERE name ILIKE '%umpy%'")
    assert "ix_conda_package_name_trgm" in substring
    prefix = explain(db_engine, "SELECT id FROM conda_package WHERE name LIKE 'num%'")
    assert "ix_conda_package_name_version" in prefix


def test_storage_samples_give_a_trend(db_sessions: sessionmaker[Session]) -> None:
    with db_sessions.begin() as session:
        for used in (10, 20, 30):
            session.add(
                StorageSample(
                    host="worker-1",
                    path="/var/lib/kiln/store",
                    disk_total=100,
                    disk_used=used,
                    disk_free=100 - used,
                )
            )
    with db_sessions() as session:
        latest = session.scalars(
            select(StorageSample).order_by(StorageSample.sampled_on.desc(), StorageSample.id.desc())
        ).first()
        assert latest is not None and latest.disk_free == 70


def test_async_sessions_for_the_web_process(database_url: str) -> None:
    async def roundtrip() -> tuple[str, bool]:
        engine = create_async_engine(database_url)
        try:
            async with async_session_factory(engine).begin() as session:
                namespace = Namespace(name="async")
                session.add(namespace)
                await session.flush()
                created = namespace.created_on  # read back at insert, no lazy load
            async with async_session_factory(engine)() as session:
                found = await session.scalar(select(Namespace).where(Namespace.name == "async"))
                assert found is not None
                return found.name, created.tzinfo is not None
        finally:
            await engine.dispose()

    assert asyncio.run(roundtrip()) == ("async", True)
