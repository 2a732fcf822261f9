"""Google Cloud Storage through google-cloud-storage."""

from cloudstore.config import ConfigKey
from cloudstore.registry import ProviderSpec

SPEC = ProviderSpec(
    id="gcp",
    backend="cloudstore.providers.gcp.backend:GCSBackend",
    sdk_modules=("google.cloud.storage",),
    extra="gcp",
    schemes=("gs",),
    description="Google Cloud Storage (and fake-gcs-server), through google-cloud-storage",
    keys={
        "gcp_service_creds_file": ConfigKey(
            env="GOOGLE_APPLICATION_CREDENTIALS", group="credentials", help="Path of a service-account JSON key file."
        ),
        "gcp_service_creds_dict": ConfigKey(
            kind=object, secret=True, group="credentials", help="A service-account key as a dict (dict only)."
        ),
        "gcp_access_token": ConfigKey(secret=True, group="credentials", help="An OAuth 2.0 bearer token."),
        "gcp_project_name": ConfigKey(env="GOOGLE_CLOUD_PROJECT", help="Project buckets are created and listed in."),
        # STORAGE_EMULATOR_HOST is the SDK's own name for an emulator endpoint.
        "gcp_endpoint_url": ConfigKey(env="STORAGE_EMULATOR_HOST", help="Endpoint other than Google's (an emulator)."),
    },
)
