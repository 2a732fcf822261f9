"""OpenStack Swift through openstacksdk's object store."""

from cloudstore.config import ConfigKey, ProviderList, ProviderSpec

SPEC = ProviderSpec(
    id=ProviderList.OPENSTACK,
    backend="cloudstore.providers.openstack.backend:SwiftBackend",
    sdk_modules=("openstack",),
    extra="openstack",
    keys={
        "os_auth_url": ConfigKey(env="OS_AUTH_URL", url=True),
        "os_username": ConfigKey(env="OS_USERNAME"),
        "os_password": ConfigKey(env="OS_PASSWORD", secret=True, group="credentials"),
        "os_project_name": ConfigKey(env="OS_PROJECT_NAME"),
        "os_user_domain_name": ConfigKey(env="OS_USER_DOMAIN_NAME"),
        "os_project_domain_name": ConfigKey(env="OS_PROJECT_DOMAIN_NAME"),
        "os_region_name": ConfigKey(env="OS_REGION_NAME"),
        "os_storage_url": ConfigKey(env="OS_STORAGE_URL", url=True),
        "os_auth_token": ConfigKey(env="OS_AUTH_TOKEN", secret=True, group="credentials"),
        "os_temp_url_key": ConfigKey(secret=True),
    },
)
