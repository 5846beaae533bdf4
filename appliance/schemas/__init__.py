"""Wire types for what users submit: environment specifications, lockfiles and channels.

Pure code (parsing text, no I/O). Entry points: :func:`parse_specification` and
:func:`specification_from_dict` return an :class:`EnvironmentSpec` or a :class:`LockfileSpec`;
:func:`normalize_channel` and :func:`check_allowed_channels` apply a server's channel alias and
policy.
"""

from appliance.schemas.channels import (
    ChannelReference,
    check_allowed_channels,
    normalize_channel,
)
from appliance.schemas.lockfile import LockedPackage, LockfileSpec
from appliance.schemas.specification import (
    EnvironmentSpec,
    SpecLimits,
    parse_specification,
    specification_from_dict,
)

__all__ = [
    "ChannelReference",
    "EnvironmentSpec",
    "LockedPackage",
    "LockfileSpec",
    "SpecLimits",
    "check_allowed_channels",
    "normalize_channel",
    "parse_specification",
    "specification_from_dict",
]
