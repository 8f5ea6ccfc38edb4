"""Request and response bodies of the REST API, one module per resource (Create / Update /
Public per entity). The names most routers share are importable from here."""

from api.schemas.apps import AppPublic, EnvironmentSummary, GitConnectionSummary
from api.schemas.bootstraps import GITHUB_NAME, GITHUB_OWNER, BootstrapCreate, BootstrapPublic
from api.schemas.common import (
    MAX_INSTALLATION_ID,
    MAX_VERSION,
    InstallationId,
    Strict,
    Version,
    check_slug,
)
from api.schemas.deployments import DeploymentCreate, DeploymentPublic, LogPage
from api.schemas.installations import InstallationBind, InstallationPublic
from api.schemas.keys import KeyCreate, KeyCreated, KeyPublic
from api.schemas.templates import TemplateCreate, TemplatePublic, TemplateUpdate
from api.schemas.tenants import TenantCreate, TenantCreated, TenantPublic

__all__ = [
    "GITHUB_NAME",
    "GITHUB_OWNER",
    "MAX_INSTALLATION_ID",
    "MAX_VERSION",
    "AppPublic",
    "BootstrapCreate",
    "BootstrapPublic",
    "DeploymentCreate",
    "DeploymentPublic",
    "EnvironmentSummary",
    "GitConnectionSummary",
    "InstallationBind",
    "InstallationId",
    "InstallationPublic",
    "KeyCreate",
    "KeyCreated",
    "KeyPublic",
    "LogPage",
    "Strict",
    "TemplateCreate",
    "TemplatePublic",
    "TemplateUpdate",
    "TenantCreate",
    "TenantCreated",
    "TenantPublic",
    "Version",
    "check_slug",
]
