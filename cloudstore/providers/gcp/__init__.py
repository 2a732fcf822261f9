"""Google Cloud Storage through google-cloud-storage."""

from cloudstore.config import ConfigKey, ProviderList, ProviderSpec

SPEC = ProviderSpec(
    id=ProviderList.GCP,
    backend="cloudstore.providers.gcp.backend:GCSBackend",
    sdk_modules=("google.cloud.storage",),
    extra="gcp",
    keys={
        "gcp_service_creds_file": ConfigKey(env="GOOGLE_APPLICATION_CREDENTIALS", group="credentials"),
        "gcp_service_creds_dict": ConfigKey(kind=object, secret=True, group="credentials"),
        "gcp_access_token": ConfigKey(secret=True, group="credentials"),
        "gcp_project_name": ConfigKey(env="GOOGLE_CLOUD_PROJECT"),
        # STORAGE_EMULATOR_HOST is the SDK's own name for an emulator endpoint.
        "gcp_endpoint_url": ConfigKey(env="STORAGE_EMULATOR_HOST"),
    },
)
