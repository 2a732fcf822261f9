"""Azure Blob Storage through azure-storage-blob (v12)."""

from cloudstore.config import ConfigKey, ProviderList, ProviderSpec

SPEC = ProviderSpec(
    id=ProviderList.AZURE,
    backend="cloudstore.providers.azure.backend:AzureBackend",
    sdk_modules=("azure.storage.blob",),
    extra="azure",
    keys={
        "azure_connection_string": ConfigKey(env="AZURE_STORAGE_CONNECTION_STRING", secret=True, group="credentials"),
        "azure_storage_account": ConfigKey(env="AZURE_STORAGE_ACCOUNT"),
        "azure_account_key": ConfigKey(env="AZURE_STORAGE_KEY", secret=True, group="credentials"),
        "azure_sas_token": ConfigKey(env="AZURE_STORAGE_SAS_TOKEN", secret=True, group="credentials"),
        "azure_credential": ConfigKey(kind=object, secret=True, group="credentials"),
        "azure_blob_endpoint": ConfigKey(url=True),
    },
)
