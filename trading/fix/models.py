"""The FIX session store: sequence numbers per API key (kept across reconnects) and the
application messages sent, so a ResendRequest can replay them."""
from django.db import models


class FixSession(models.Model):
    """One per API key that ever logged on over FIX."""

    key = models.OneToOneField("apikeys.ApiKey", on_delete=models.CASCADE, related_name="fix_session")
    next_out_seq = models.BigIntegerField(default=1, help_text="MsgSeqNum of the next message Bourse sends.")
    next_in_seq = models.BigIntegerField(default=1, help_text="MsgSeqNum Bourse expects next from the client.")
    next_out_reserved = models.BigIntegerField(
        default=0,
        help_text="Outgoing MsgSeqNums below this may have been sent by a live session (0 after a clean end); "
                  "a session taking over after a crash starts here.",
    )
    cancel_on_disconnect = models.BooleanField(
        default=False, help_text="Cancel the account's open orders when this key's session ends (FIX tag 8013 overrides per logon)."
    )
    # One live session per key across gateway processes: the owner renews its lease while
    # the session lives; a lease left behind by a crashed process expires.
    owner = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "FIX session"

    def __str__(self):
        return f"FIX session of {self.key_id}"


class FixMessage(models.Model):
    """An application message Bourse sent, for replay on ResendRequest."""

    session = models.ForeignKey(FixSession, on_delete=models.CASCADE, related_name="messages")
    seq = models.BigIntegerField()
    msg_type = models.CharField(max_length=4)
    sending_time = models.CharField(max_length=32)
    body = models.TextField(help_text="The fields after the standard header, SOH-separated.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "seq"], name="fixmessage_session_seq")]
        # Retention deletes by age (``store.messages_prune``).
        indexes = [models.Index(fields=["sending_time"], name="fixmessage_sending_time")]
