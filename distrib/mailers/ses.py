"""Amazon SES: each recipient's finished MIME message through the SES v2 API.

API: https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html
(``SendEmail`` with ``Content.Raw.Data``: our bytes go out unchanged, with our own
Message-ID and List-Unsubscribe headers; SES adds its DKIM signature).
Errors: https://docs.aws.amazon.com/ses/latest/APIReference-V2/CommonErrors.html

Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
AWS_PROFILE or ``profile``, an instance role), never from the config file.  boto3 is
imported when the mailer opens (extra ``ses``), so ``distrib --help`` stays fast.

Throttling (the account's sending rate or daily quota) defers: the recipient waits
for the next run, and the send stops pulling new recipients; ``rate`` keeps under
the account's maximum send rate so that this rarely happens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..config import Opt, k_count, k_number, k_positive, k_str, k_url
from ..model import Outcome, Recipient
from ..render.message import ascii_address
from ._http import ParallelMailer

if TYPE_CHECKING:
    from ..render.message import PreparedMessage

NAME = "ses"

#: Error codes that mean "not now": throttled, over quota, or sending paused.
_DEFER = {
    "TooManyRequestsException",
    "Throttling",
    "ThrottlingException",
    "LimitExceededException",  # the daily sending quota
    "SendingPausedException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalServerError",
    "RequestTimeout",
    "RequestTimeoutException",
}
#: Error codes that mean the account, credentials or config are wrong: every message
#: would fail the same way, so the recipient is deferred and the send stops with the fix.
_SETUP = {
    "AccessDeniedException": "access denied: the credentials may not call ses:SendEmail",
    "AccessDenied": "access denied: the credentials may not call ses:SendEmail",
    "UnrecognizedClientException": "the AWS access key was refused",
    "InvalidClientTokenId": "the AWS access key was refused",
    "SignatureDoesNotMatch": "the AWS secret key was refused",
    "ExpiredTokenException": "the AWS session token has expired",
    "ExpiredToken": "the AWS session token has expired",
    "MailFromDomainNotVerifiedException": "the MAIL FROM domain is not verified in SES",
    "AccountSuspendedException": "the SES account is suspended",
    "NotFoundException": "the configuration set was not found",
}


class SesMailer(ParallelMailer):
    """Sends each recipient's raw message with SES v2 ``SendEmail``."""

    name = NAME
    requires: ClassVar[tuple[str, ...]] = ("boto3",)
    options: ClassVar[dict[str, Opt]] = {
        "region": Opt(
            k_str,
            None,
            "the AWS region of the SES account, such as 'eu-west-1' (default: AWS_DEFAULT_REGION)",
        ),
        "profile": Opt(
            k_str, None, "an AWS profile name from ~/.aws/config (default: the environment's)"
        ),
        "configuration_set": Opt(k_str, None, "an SES configuration set for the messages"),
        "endpoint_url": Opt(
            k_url, None, "another endpoint for the SES API (a VPC endpoint, a test server)"
        ),
        "connections": Opt(k_positive, 4, "requests in parallel"),
        "rate": Opt(
            k_number,
            10.0,
            "at most this many messages per second (the account's max send rate; 0: no limit)",
        ),
        "timeout": Opt(k_positive, 30, "seconds to wait for one API request"),
        "retries": Opt(k_count, 2, "botocore's own quick retries of a throttled or failed request"),
    }

    def open_client(self) -> Any:
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(profile_name=self.opts.get("profile") or None)
        region = self.opts.get("region") or session.region_name
        if not region:
            from ..errors import ConfigError

            raise ConfigError(
                "email.ses.region: missing; set it (such as 'eu-west-1') or export AWS_DEFAULT_REGION"
            )
        timeout = float(self.opts.get("timeout") or 30)
        return session.client(
            "sesv2",
            region_name=region,
            endpoint_url=self.opts.get("endpoint_url") or None,
            config=Config(
                max_pool_connections=self.connections,
                connect_timeout=min(timeout, 10),
                read_timeout=timeout,
                # botocore's own retries wait briefly on throttling; after them we defer.
                retries={"max_attempts": 1 + int(self.opts.get("retries", 2)), "mode": "standard"},
            ),
        )

    def close_client(self, client: Any) -> None:
        pass  # dropped, not closed: botocore frees its connection pool with the client

    def describe(self) -> str:
        return f"through Amazon SES ({self.opts.get('region') or 'default region'})"

    def setup_fix(self) -> str:
        return "check the AWS credentials, region and [email.ses]"

    def send_one(self, message: PreparedMessage, recipient: Recipient) -> tuple[Outcome, str]:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionError,
            HTTPClientError,
            NoCredentialsError,
        )

        params: dict[str, Any] = {
            "FromEmailAddress": message.envelope_from,
            "Destination": {"ToAddresses": [ascii_address(recipient.email)]},
            "Content": {"Raw": {"Data": message.for_recipient(recipient)}},
            "EmailTags": [{"Name": "distrib-edition", "Value": str(message.edition_id)}],
        }
        if self.opts.get("configuration_set"):
            params["ConfigurationSetName"] = self.opts["configuration_set"]
        try:
            answer = self.client.send_email(**params)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            text = f"{NAME} {code}: {e.response.get('Error', {}).get('Message', '')}".strip()
            if code in _DEFER:
                return Outcome.deferred(text), ""
            if code in _SETUP:
                return Outcome.deferred(text), _SETUP[code]
            # MessageRejected (the sandbox's unverified recipient, a virus, a bad
            # header), BadRequestException ...: this message, for good.
            return Outcome.failed(text), ""
        except NoCredentialsError:
            return Outcome.deferred(f"{NAME}: no AWS credentials"), (
                "no AWS credentials found: export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or set profile"
            )
        except (ConnectionError, HTTPClientError) as e:
            return Outcome.deferred(f"{NAME}: network error ({type(e).__name__})"), ""
        except BotoCoreError as e:
            return Outcome.deferred(f"{NAME}: {type(e).__name__}"), ""
        return Outcome.sent(str(answer.get("MessageId", ""))), ""
