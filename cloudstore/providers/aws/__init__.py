"""AWS S3 and S3-compatible servers (SeaweedFS, MinIO, Ceph) through boto3."""

from cloudstore.config import ConfigKey
from cloudstore.registry import ProviderSpec

SPEC = ProviderSpec(
    id="aws",
    backend="cloudstore.providers.aws.backend:S3Backend",
    sdk_modules=("boto3",),
    extra="aws",
    schemes=("s3",),
    description="AWS S3 and S3-compatible servers (MinIO, Ceph, SeaweedFS), through boto3",
    keys={
        "aws_access_key": ConfigKey(
            env="AWS_ACCESS_KEY_ID", group="credentials", help="Access key id (else boto3's credential chain)."
        ),
        "aws_secret_key": ConfigKey(
            env="AWS_SECRET_ACCESS_KEY", secret=True, group="credentials", help="Secret access key."
        ),
        "aws_session_token": ConfigKey(
            env="AWS_SESSION_TOKEN", secret=True, group="credentials", help="Session token of temporary credentials."
        ),
        "aws_region_name": ConfigKey(env="AWS_DEFAULT_REGION", help="Region (default us-east-1)."),
        "s3_endpoint_url": ConfigKey(env="AWS_ENDPOINT_URL", url=True, help="Endpoint of an S3-compatible server."),
        "s3_addressing_style": ConfigKey(help="auto, virtual or path (path when s3_endpoint_url is set)."),
        "s3_verify": ConfigKey(kind=bool, help="TLS certificate verification: true, false or a CA bundle path."),
        "s3_kms_key_id": ConfigKey(help="KMS key for server-side encryption of uploads."),
        # "when_required" (default: safe for S3-compatible servers) or "when_supported".
        "s3_checksums": ConfigKey(help="when_required (default) or when_supported: boto3's flexible checksums."),
        # Off for servers that refuse or mishandle Content-MD5.
        "s3_content_md5": ConfigKey(kind=bool, help="Send Content-MD5 with every upload request (default true)."),
    },
)
