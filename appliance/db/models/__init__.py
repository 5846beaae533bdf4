"""Kiln's tables as SQLAlchemy 2 typed declarative models (conda-store's data model, with
Kiln's fixes: aware timestamps, soft-delete-aware unique names, recorded pip packages, accounts,
API tokens, storage samples, and the fields a queue needs for cancel and recovery).

``Base.metadata`` is the schema the Alembic migrations must produce; a test compares them.
"""

from appliance.db.enums import BuildArtifactType, BuildStatus
from appliance.db.models.accounts import ApiToken, User
from appliance.db.models.base import NAMING_CONVENTION, Base
from appliance.db.models.builds import (
    Build,
    BuildArtifact,
    BuildPipPackage,
    Specification,
    build_conda_package_build,
    next_build_id,
)
from appliance.db.models.metrics import StorageSample
from appliance.db.models.namespaces import (
    Environment,
    Namespace,
    NamespaceRoleMapping,
    NamespaceRoleMappingV2,
)
from appliance.db.models.packages import CondaChannel, CondaPackage, CondaPackageBuild
from appliance.db.models.queue import QueueSchema
from appliance.db.models.settings import Setting

__all__ = [
    "NAMING_CONVENTION",
    "ApiToken",
    "Base",
    "Build",
    "BuildArtifact",
    "BuildArtifactType",
    "BuildPipPackage",
    "BuildStatus",
    "CondaChannel",
    "CondaPackage",
    "CondaPackageBuild",
    "Environment",
    "Namespace",
    "NamespaceRoleMapping",
    "NamespaceRoleMappingV2",
    "QueueSchema",
    "Setting",
    "Specification",
    "StorageSample",
    "User",
    "build_conda_package_build",
    "next_build_id",
]
