"""The engine loop lets commands gather for BOURSE_ENGINE_LINGER_MS after a wake-up or a
partial batch (a batch's commit costs the same for one order as for hundreds), and not
after a full batch, when more are already waiting."""
import types

from trading import runner as runner_module


def test_linger_after_a_wake_up_and_a_partial_batch_only(settings, monkeypatch, engine_process):
    settings.BOURSE_ENGINE_LINGER_MS = 2
    settings.BOURSE_ENGINE_BATCH = 10
    steps = iter([0, 3, 10, 0])  # idle (then woken), a partial batch, a full batch, idle (not woken)
    process = engine_process
    slept = []

    def step():
        done = next(steps, None)
        if done is None:
            process.stopping = True
            return 0
        return done

    process.runners = {1: types.SimpleNamespace(step=step, seconds_to_expiry=lambda: None, seconds_to_settlement=lambda: None,
                                                flush_settlement=lambda force=False: None)}
    process.listener = types.SimpleNamespace(wait=lambda timeout: next(wakes), close=lambda: None)
    wakes = iter([{1}, set(), set()])
    monkeypatch.setattr(process, "acquire", lambda: None)
    monkeypatch.setattr(process, "close", lambda: None)
    monkeypatch.setattr(process, "fire_dead_man", lambda: None)  # no database here
    process._last_acquire = float("inf")
    monkeypatch.setattr(runner_module.time, "sleep", slept.append)
    monkeypatch.setattr(runner_module.time, "monotonic", lambda: 0.0)
    process.run()
    # woken after the idle step: linger; partial batch of 3: linger; full batch: none; idle, not woken: none
    assert slept == [0.002, 0.002]
