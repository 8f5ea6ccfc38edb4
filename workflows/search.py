"""Search attributes that let operators find any Shipyard run in the Temporal Web UI."""

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

TENANT = SearchAttributeKey.for_keyword("ShipyardTenant")
APP = SearchAttributeKey.for_keyword("ShipyardApp")
ENV = SearchAttributeKey.for_keyword("ShipyardEnv")
STAGE = SearchAttributeKey.for_keyword("ShipyardStage")

ALL = (TENANT, APP, ENV, STAGE)


def dev_server_flags() -> list[str]:
    """`--search-attribute` flags registering ALL on `temporal server start-dev`."""
    flags = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    return flags


def for_whole_app(tenant: str, app: str, stage: str) -> TypedSearchAttributes:
    """The attributes of a run about the app as a whole, not one of its environments."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(TENANT, tenant),
            SearchAttributePair(APP, app),
            SearchAttributePair(STAGE, stage),
        ]
    )


def for_app(tenant: str, app: str, env: str, stage: str) -> TypedSearchAttributes:
    """The attributes a run starts with; the workflow keeps ShipyardStage current."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(TENANT, tenant),
            SearchAttributePair(APP, app),
            SearchAttributePair(ENV, env),
            SearchAttributePair(STAGE, stage),
        ]
    )
