"""Amazon SES: each recipient's finished MIME message through the SES v2 API.

API: https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html
(``SendEmail`` with ``Content.Raw.Data``: our bytes go out unchanged, with our own
Message-ID and List-Unsubscribe headers; SES adds its DKIM signature).
Errors: https://docs.aws.amazon.com/ses/latest/APIReference-V2/CommonErrors.html

Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
AWS_PROFILE or ``profile``, an instance role), never from the config file.  boto3 is
imported when the mailer is made (extra ``ses``), so ``distrib --help`` stays fast;
without it the run and ``distrib check`` say ``pip install 'distrib[ses]'``.

Throttling (the account's sending rate or daily quota) defers: the recipient waits
for the next run, and the send stops pulling new recipients; ``rate`` keeps under
the account's maximum send rate so that this rarely happens.

``MessageRejected`` is what SES answers for a From address or domain that is not
verified in the region (or a sandbox account's unverified recipient): every message
would get it, so it stops the send, leaves the readers pending, and names the fix.

botocore's own retries are off (``total_max_attempts = 1``): its standard mode resends a
``SendEmail`` whose answer timed out, which SES may already have accepted (SES takes
no idempotency key).  distrib retries itself only what never reached SES (a refused
connection, a throttling answer); a read timeout leaves that one message in doubt
(at most ``connections`` messages per timeout or kill).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

from ..model import Outcome, Recipient
from ..render.message import ascii_address
from ..schema import Opt, k_count, k_number, k_positive, k_str, k_url
from ._http import FixNamed, ParallelMailer

if TYPE_CHECKING:
    from ..render.message import PreparedMessage

NAME = "ses"

#: Error codes that mean "not now": throttled, over quota, unavailable (SES did not
#: take the message).  A 500 (InternalFailure) is not here: SES may have sent it.
_DEFER = {
    "TooManyRequestsException",
    "Throttling",
    "ThrottlingException",
    "LimitExceededException",  # the daily sending quota
    "ServiceUnavailable",
    "ServiceUnavailableException",
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
    "SendingPausedException": "sending is paused for the SES account or its configuration set: "
    "see the SES console",
    "MessageRejected": "SES rejected the message",
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
        "retries": Opt(
            k_count, 2, "quick retries of a request that was throttled or never reached SES"
        ),
    }

    #: How a retry waits (tests make it instant).
    sleep = staticmethod(time.sleep)

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
                # No automatic retry: botocore would resend a SendEmail whose answer timed
                # out, which SES may have accepted.  send_one retries what is safe.
                retries={"total_max_attempts": 1, "mode": "standard"},
            ),
        )

    def close_client(self, client: Any) -> None:
        pass  # dropped, not closed: botocore frees its connection pool with the client

    def describe(self) -> str:
        return f"through Amazon SES ({self.opts.get('region') or 'default region'})"

    def setup_fix(self) -> str:
        return "check the AWS credentials, region and [email.ses]"

    def region(self) -> str:
        if self.client is None:  # not opened yet
            return ""
        # botocore's clients are untyped; every one has meta.region_name
        return str(self.client.meta.region_name or "")

    def rejected_fix(self, text: str, sender: str) -> FixNamed:
        """What SES's MessageRejected says is wrong, and the fix, on one line."""
        region = self.region() or "the configured region"
        low = text.lower()
        if sender.lower() in low or "authority to send from" in low:
            return FixNamed(
                f"SES refused the From address {sender} (MessageRejected: {text}); verify it or "
                f"its domain in SES in {region}, or set [email.ses] region to where it is verified"
            )
        if "not verified" in low:
            return FixNamed(
                f"SES refused a recipient that is not verified (MessageRejected: {text}): the "
                f"account is in the SES sandbox in {region}; request production access for it"
            )
        return FixNamed(
            f"SES rejected the message (MessageRejected: {text}); fix [email] from or the "
            "template, then run again"
        )

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
        attempts = 1 + int(self.opts.get("retries", 2))
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                answer = self.client.send_email(**params)
            except ClientError as e:
                error = e.response.get("Error", {})
                code = error.get("Code", "")
                said = str(error.get("Message", ""))
                text = f"{NAME} {code}: {said}".strip()
                if code in _DEFER:
                    # Throttled or refused for now: SES did not take it.
                    if not last:
                        self.sleep(min(2.0**attempt, 4.0))
                        continue
                    return Outcome.deferred(text), ""
                if code == "MessageRejected":
                    sender = str(params["FromEmailAddress"])
                    return Outcome.deferred(text), self.rejected_fix(said, sender)
                if code in _SETUP:
                    return Outcome.deferred(text), _SETUP[code]
                status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if isinstance(status, int) and status >= 500:
                    # A server fault after SES had the request: it may have sent it.
                    return self.unanswered(text), ""
                # BadRequestException (an address SES cannot use) ...: this message, for good.
                return Outcome.failed(text), ""
            except NoCredentialsError:
                return Outcome.deferred(f"{NAME}: no AWS credentials"), (
                    "no AWS credentials found: export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or set profile"
                )
            except ConnectionError as e:
                # Could not connect (refused, DNS, connect timeout): SES never had it.
                if not last:
                    self.sleep(min(2.0**attempt, 4.0))
                    continue
                return Outcome.deferred(f"{NAME}: could not connect ({type(e).__name__})"), ""
            except HTTPClientError as e:
                # A read timeout or a dropped connection after the request went out.
                return self.unanswered(f"{NAME}: no answer ({type(e).__name__})"), ""
            except BotoCoreError as e:
                return Outcome.deferred(f"{NAME}: {type(e).__name__}"), ""
            return Outcome.sent(str(answer.get("MessageId", ""))), ""
        raise AssertionError("unreachable")
