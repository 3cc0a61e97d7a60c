"""``audit_verify [--anchor SEQ:HASH ...] [--json]``: check the audit hash chain.

Exit status 0 when the chain is intact, 1 at the first broken link (reported with its
position and event id). Prints the head (``SEQ:HASH``): keep it somewhere the database's
users cannot write, and pass it back later as ``--anchor`` to prove nothing before it was
rewritten and the trail was not cut short.
"""
import json

from django.core.management.base import BaseCommand, CommandError

from audit.selectors import audit_event_count, audit_verify

PROGRESS_EVERY = 10_000


def _anchor(text: str) -> tuple[int, str]:
    seq, sep, digest = text.partition(":")
    if not sep or not (seq.isascii() and seq.isdigit()) or len(digest) != 64:
        raise CommandError(f"--anchor takes SEQ:HASH (a position and a 64-hex-digit hash), not {text!r}")
    return int(seq), digest.lower()


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain; report the first broken link and unsealed events."

    def add_arguments(self, parser):
        parser.add_argument("--anchor", action="append", default=[], metavar="SEQ:HASH",
                            help="a head printed by an earlier run; must still match (repeatable)")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, **opts):
        anchors = dict(_anchor(text) for text in opts["anchor"])
        total = audit_event_count()
        shown = [0]

        def progress(checked: int) -> None:  # on stderr, so --json output stays one document
            if checked - shown[0] >= PROGRESS_EVERY:
                shown[0] = checked
                self.stderr.write(f"audit_verify: {checked:,} of {total:,} sealed event(s) checked")
                self.stderr.flush()

        report = audit_verify(anchors=anchors, progress=progress)
        if opts["json"]:
            self.stdout.write(json.dumps(report.as_dict()))
        else:
            self.stdout.write(f"Checked {report.checked} sealed event(s); head {report.head_seq}:{report.head_hash}")
            if report.unsealed:
                self.stdout.write(
                    f"{report.unsealed} event(s) not sealed yet (oldest id {report.oldest_unsealed_id}); "
                    "`manage.py audit_seal` seals them."
                )
        if report.broken is not None:
            where = f"position {report.broken.seq}" + (
                f" (event id {report.broken.event_id})" if report.broken.event_id is not None else ""
            )
            raise CommandError(f"audit chain BROKEN at {where}: {report.broken.problem}")
        if report.stranded:
            raise CommandError(
                f"{report.stranded} unsealed event(s) are missing from the sealer's queue (audit_auditpending): "
                "they will never be sealed; a queue row was deleted by hand"
            )
        if not opts["json"]:
            self.stdout.write("Audit chain intact.")
