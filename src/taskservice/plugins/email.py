"""The `send_email` task type: one message, over SMTP or into the local outbox directory."""

from __future__ import annotations

import hashlib
import os
import smtplib
import ssl
import tempfile
import time
import uuid
from collections.abc import Callable
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import ClassVar

from email_validator import EmailNotValidError, validate_email

from taskservice.config import Settings
from taskservice.plugins import PermanentFailure, context, simulated
from taskservice.plugins.context import TaskContext
from taskservice.plugins.declare import ParameterSpec, TaskTypeSpec

SMTP_TIMEOUT = 30.0


class SMTPTimedOut(smtplib.SMTPException):
    """The SMTP server did not answer in time; retried.

    Not a TimeoutError: the worker reads that as the whole attempt running out of time.
    """


def _text(parameters: dict[str, str], name: str) -> str:
    value: object = parameters.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PermanentFailure(f"{name} must be a string, got {value!r}")
    return value


def _one_line(name: str, value: str) -> str:
    """`value` unless it, or its RFC 2047 decoded form, holds a line break (header injection)."""
    try:
        decoded = str(make_header(decode_header(value)))
    except (HeaderParseError, UnicodeDecodeError, LookupError, ValueError):
        decoded = value  # not valid encoded words: the value is taken literally
    if any(c in text for text in (value, decoded) for c in "\r\n"):
        raise PermanentFailure(
            f"{name} must not contain line breaks (CR or LF), also not as RFC 2047 encoded words (=?...?=)"
        )
    return value


def _recipient(parameters: dict[str, str]) -> str:
    """The validated, normalized address from `recipient` (or its alias `to`)."""
    recipient = _one_line("recipient", _text(parameters, "recipient")).strip()
    to = _one_line("to", _text(parameters, "to")).strip()
    if recipient and to and recipient != to:
        raise PermanentFailure(f"give recipient or to, not both (recipient {recipient!r}, to {to!r})")
    name = "recipient" if recipient or not to else "to"
    address = recipient or to
    if not address:
        raise PermanentFailure("recipient is required (the address to send to; `to` is an alias)")
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise PermanentFailure(f"{name} {address!r} is not a valid email address: {error}") from None


def message_id(idempotency_key: str, domain: str) -> str:
    """The Message-ID of the task with this key: the same for every attempt, so that a message sent
    twice (an attempt that sent, then lost its lease) can be dropped downstream as a duplicate."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
    return f"<{digest}.taskservice@{domain}>"


def _always_current() -> None:
    """Outside a worker (the plugin called directly) there is no attempt to be stale."""


class SendEmail:
    """Sends `subject` and `body` to `recipient`: by SMTP when SMTP_HOST is set, else into the outbox.

    Its settings are those given here, else the worker's (from the attempt's context).
    """

    spec: ClassVar[TaskTypeSpec] = TaskTypeSpec(
        description="Send one email: over SMTP when SMTP_HOST is set, else into the outbox directory.",
        parameters=(
            ParameterSpec(
                name="recipient",
                required=True,
                aliases=("to",),
                format="email",
                description="The address to send to.",
            ),
            ParameterSpec(name="subject", description="The subject line (one line)."),
            ParameterSpec(name="body", description="The message's text."),
        ),
    )

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings

    def run(self, parameters: dict[str, str], ctx: TaskContext | None = None) -> dict[str, str]:
        ctx = ctx or context.current_or_none()
        settings = context.settings_for("send_email", self.settings, ctx)
        simulated.check_real_parameters(self.spec, "send_email", parameters)
        recipient = _recipient(parameters)
        subject = _one_line("subject", _text(parameters, "subject"))
        key = ctx.idempotency_key if ctx is not None else None
        message = self._message(settings, recipient, subject, _text(parameters, "body"), key)
        result = {"recipient": recipient, "message_id": str(message["Message-ID"])}
        # Right before the message leaves: an attempt whose lease ran out (its worker was paused, and
        # the task may be sending elsewhere now) or that was given up on sends nothing.
        ensure_current = ctx.ensure_current if ctx is not None else _always_current
        if settings.smtp_host:
            self._send(settings, message, recipient, ensure_current)
            return {"backend": "smtp", **result}
        ensure_current()
        path = self._write_outbox(settings, message)
        return {"backend": "outbox", **result, "path": str(path)}

    def _message(
        self, settings: Settings, recipient: str, subject: str, body: str, key: str | None
    ) -> EmailMessage:
        sender = settings.email_from
        message = EmailMessage()
        try:
            message["From"] = sender
            message["To"] = recipient
            message["Subject"] = subject
        except ValueError as error:  # e.g. a line break in the subject (header injection)
            raise PermanentFailure(f"cannot build the message: {error}") from None
        message["Date"] = formatdate(localtime=True)
        # An explicit domain: make_msgid's default asks the resolver for this host's FQDN.
        domain = sender.rpartition("@")[2] or "localhost"
        message["Message-ID"] = message_id(key, domain) if key else make_msgid(domain=domain)
        message.set_content(body)
        return message

    def _send(
        self, settings: Settings, message: EmailMessage, recipient: str, ensure_current: Callable[[], None]
    ) -> None:
        try:
            self._converse(settings, message, recipient, ensure_current)
        except TimeoutError as error:
            raise SMTPTimedOut(
                f"the SMTP server {settings.smtp_host}:{settings.smtp_port} "
                f"did not answer within {SMTP_TIMEOUT:g}s"
            ) from error

    def _converse(
        self, settings: Settings, message: EmailMessage, recipient: str, ensure_current: Callable[[], None]
    ) -> None:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password)
            ensure_current()  # after connecting and logging in, which may take a while
            try:
                smtp.send_message(message)
            except smtplib.SMTPRecipientsRefused as error:
                codes = [code for code, _ in error.recipients.values()]
                if all(500 <= code < 600 for code in codes):  # 4xx (e.g. greylisting) is worth a retry
                    reply = "; ".join(
                        f"{code} {text.decode(errors='replace')}" for code, text in error.recipients.values()
                    )
                    raise PermanentFailure(f"the SMTP server refused {recipient}: {reply}") from None
                raise

    def _write_outbox(self, settings: Settings, message: EmailMessage) -> Path:
        """Write the message as `<time>-<uuid>.eml`, atomically: readers never see half a file."""
        outbox = settings.email_outbox_dir.expanduser()
        outbox.mkdir(parents=True, exist_ok=True)
        path = outbox / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex}.eml"
        fd, temporary = tempfile.mkstemp(dir=outbox, prefix=".", suffix=".eml.tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(message.as_bytes())
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path
