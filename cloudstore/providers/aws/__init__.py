"""AWS S3 and S3-compatible servers (SeaweedFS, MinIO, Ceph) through boto3."""

from cloudstore.config import ConfigKey, ProviderList, ProviderSpec

SPEC = ProviderSpec(
    id=ProviderList.AWS,
    backend="cloudstore.providers.aws.backend:S3Backend",
    sdk_modules=("boto3",),
    extra="aws",
    keys={
        "aws_access_key": ConfigKey(env="AWS_ACCESS_KEY_ID", group="credentials"),
        "aws_secret_key": ConfigKey(env="AWS_SECRET_ACCESS_KEY", secret=True, group="credentials"),
        "aws_session_token": ConfigKey(env="AWS_SESSION_TOKEN", secret=True, group="credentials"),
        "aws_region_name": ConfigKey(env="AWS_DEFAULT_REGION"),
        "s3_endpoint_url": ConfigKey(env="AWS_ENDPOINT_URL", url=True),
        "s3_addressing_style": ConfigKey(),
        "s3_verify": ConfigKey(kind=bool),
        "s3_kms_key_id": ConfigKey(),
        # "when_required" (default: safe for S3-compatible servers) or "when_supported".
        "s3_checksums": ConfigKey(),
        # Send Content-MD5 with every PutObject and UploadPart (default true); off for servers
        # that refuse or mishandle it.
        "s3_content_md5": ConfigKey(kind=bool),
    },
)
