"""OpenStack Swift through openstacksdk's object store."""

from cloudstore.config import ConfigKey
from cloudstore.registry import ProviderSpec

SPEC = ProviderSpec(
    id="openstack",
    backend="cloudstore.providers.openstack.backend:SwiftBackend",
    sdk_modules=("openstack",),
    extra="openstack",
    schemes=("swift",),
    description="OpenStack Swift (Keystone or Swift v1 auth), through openstacksdk",
    keys={
        "os_auth_url": ConfigKey(env="OS_AUTH_URL", url=True, help="Keystone (.../v3) or Swift v1 auth URL."),
        "os_username": ConfigKey(env="OS_USERNAME", help="User name."),
        "os_password": ConfigKey(env="OS_PASSWORD", secret=True, group="credentials", help="Password."),
        "os_project_name": ConfigKey(env="OS_PROJECT_NAME", help="Project (tenant) to scope the token to."),
        "os_user_domain_name": ConfigKey(env="OS_USER_DOMAIN_NAME", help="Domain of the user (default Default)."),
        "os_project_domain_name": ConfigKey(
            env="OS_PROJECT_DOMAIN_NAME", help="Domain of the project (default Default)."
        ),
        "os_region_name": ConfigKey(env="OS_REGION_NAME", help="Region of the object-store endpoint."),
        "os_storage_url": ConfigKey(env="OS_STORAGE_URL", url=True, help="Storage URL of the account."),
        "os_auth_token": ConfigKey(
            env="OS_AUTH_TOKEN", secret=True, group="credentials", help="A token already issued."
        ),
        "os_temp_url_key": ConfigKey(secret=True, help="TempURL key for signed URLs when the account has none."),
    },
)
