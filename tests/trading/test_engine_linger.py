"""The engine loop lets commands gather for BOURSE_ENGINE_LINGER_MS after a wake-up or a
partial batch (a batch's commit costs the same for one order as for hundreds), and not
after a full batch, when more are already waiting."""
import types

from trading import runner as runner_module


def test_linger_after_a_wake_up_and_a_partial_batch_only(settings, monkeypatch, engine_process):
    settings.BOURSE_ENGINE_LINGER_MS = 2
    settings.BOURSE_ENGINE_BATCH = 10
    process = engine_process
    slept = []

    class Runner:
        steps = iter([0, 3, 10, 0])  # idle (then woken), a partial batch, a full batch, idle (not woken)
        more_pending = True

        def step(self):
            done = next(self.steps)
            self.more_pending = done >= settings.BOURSE_ENGINE_BATCH
            return done

        def expiry_due(self):
            return False

        def seconds_to_expiry(self):
            return None

        def seconds_to_settlement(self):
            return None

        def flush_settlement(self, force=False):
            pass

    # What each look at the listener finds: before each read (timeout 0) and in idle waits.
    wakes = iter([set(), {1}, set(), {1}, set(), set()])

    def wait(timeout):
        woken = next(wakes, None)
        if woken is None:
            process.stopping = True
            return set()
        return woken

    process.runners = {1: Runner()}
    process.listener = types.SimpleNamespace(wait=wait, close=lambda: None)
    monkeypatch.setattr(process, "acquire", lambda: None)
    monkeypatch.setattr(process, "close", lambda: None)
    monkeypatch.setattr(process, "fire_dead_man", lambda: None)  # no database here
    process._last_acquire = float("inf")
    monkeypatch.setattr(runner_module.time, "sleep", slept.append)
    monkeypatch.setattr(runner_module.time, "monotonic", lambda: 0.0)
    process.run()
    # woken after the idle step: linger; partial batch of 3: linger; full batch (read again
    # at once): none; idle, not woken: none
    assert slept == [0.002, 0.002]
    assert next(Runner.steps, None) is None  # every step ran
