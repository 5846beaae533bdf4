"""The HTTP status of each domain error, one mapping for the API's JSON errors
(appliance.web.errors) and the UI's error pages (appliance.ui.errors)."""

from __future__ import annotations

from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from appliance.common.errors import (
    ArtifactNotFound,
    ChannelError,
    ConfigurationError,
    DatabaseError,
    KilnError,
    SpecificationError,
    StorageError,
)

#: HTTP status of each kind of domain error; a subclass inherits its nearest listed base's.
STATUS_BY_ERROR: dict[type[KilnError], int] = {
    KilnError: HTTP_400_BAD_REQUEST,  # conda-store answers its own errors with 400
    SpecificationError: HTTP_400_BAD_REQUEST,
    ChannelError: HTTP_400_BAD_REQUEST,
    ArtifactNotFound: HTTP_404_NOT_FOUND,
    StorageError: HTTP_503_SERVICE_UNAVAILABLE,
    DatabaseError: HTTP_503_SERVICE_UNAVAILABLE,
    ConfigurationError: HTTP_500_INTERNAL_SERVER_ERROR,
}


#: HTTP status of errors by their code, wherever they are defined.
STATUS_BY_CODE: dict[str, int] = {
    "unauthenticated": HTTP_401_UNAUTHORIZED,
    "invalid_token": HTTP_401_UNAUTHORIZED,
    "forbidden": HTTP_403_FORBIDDEN,
    "conflict": HTTP_409_CONFLICT,
    "busy": HTTP_503_SERVICE_UNAVAILABLE,
}


def status_of(error: KilnError) -> int:
    """The HTTP status code for ``error``."""
    if error.code.endswith("not_found"):
        return HTTP_404_NOT_FOUND
    if error.code in STATUS_BY_CODE:
        return STATUS_BY_CODE[error.code]
    for kind in type(error).__mro__:
        if kind in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[kind]
    return HTTP_400_BAD_REQUEST
