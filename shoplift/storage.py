"""What a failing clips storage raises: the local folder OSError; S3/MinIO botocore's and boto3's
errors. Catch these around every read or write of the clips storage."""
from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError

STORAGE_ERRORS: tuple[type[BaseException], ...] = (OSError, BotoCoreError, ClientError, Boto3Error)
