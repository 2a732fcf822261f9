"""Azure Blob Storage through azure-storage-blob (v12)."""

from cloudstore.config import ConfigKey
from cloudstore.registry import ProviderSpec

SPEC = ProviderSpec(
    id="azure",
    backend="cloudstore.providers.azure.backend:AzureBackend",
    sdk_modules=("azure.storage.blob",),
    extra="azure",
    description="Azure Blob Storage (and Azurite), through azure-storage-blob",
    keys={
        "azure_connection_string": ConfigKey(
            env="AZURE_STORAGE_CONNECTION_STRING", secret=True, group="credentials", help="A full connection string."
        ),
        "azure_storage_account": ConfigKey(env="AZURE_STORAGE_ACCOUNT", help="Storage account name."),
        "azure_account_key": ConfigKey(
            env="AZURE_STORAGE_KEY", secret=True, group="credentials", help="Account key; signs service SAS URLs."
        ),
        "azure_sas_token": ConfigKey(
            env="AZURE_STORAGE_SAS_TOKEN", secret=True, group="credentials", help="A SAS token."
        ),
        "azure_credential": ConfigKey(
            kind=object, secret=True, group="credentials", help="An azure-identity TokenCredential (dict only)."
        ),
        "azure_blob_endpoint": ConfigKey(url=True, help="Blob endpoint other than <account>.blob.core.windows.net."),
        "azure_ca_bundle": ConfigKey(
            help="A PEM file of the CA certificates that sign the endpoint's TLS certificate (a private CA).",
        ),
    },
)
