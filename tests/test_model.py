import asyncio

import pytest

from inferlab import InvalidRequestError, SimulatedModel, simulate
from inferlab.engine._streams import StopMatcher
from inferlab.engine.clock import ScaledClock, VirtualClock

pytestmark = pytest.mark.anyio


async def _run(model, prompt, **options):
    return [token async for token in model.generate(prompt, **options)]


@pytest.mark.parametrize("batching", ["none", "static", "continuous"])
async def test_engine_matches_the_offline_simulation_exactly(batching):
    """The asyncio engine and simulate() share one scheduler, so their timelines agree."""
    model = SimulatedModel(batching=batching, max_num_seqs=3, clock=VirtualClock())
    outputs = [3, 9, 5, 2, 7]
    results = await asyncio.gather(
        *(_run(model, f"prompt {i}", max_tokens=n, ignore_eos=True) for i, n in enumerate(outputs))
    )
    prompt_tokens = 2  # "prompt 0" is two tokens
    expected = simulate(
        [(0.0, prompt_tokens, n) for n in outputs], model.profile, batching=batching, max_num_seqs=3
    )
    assert [len(tokens) for tokens in results] == outputs
    assert [tokens[-1].time_s for tokens in results] == pytest.approx(
        [seq.finished_s for seq in expected]
    )
    assert [tokens[0].time_s for tokens in results] == pytest.approx(
        [seq.first_token_s for seq in expected]
    )


async def test_length_finish_reason_on_the_last_token_only(virtual_model):
    tokens = await _run(virtual_model, "Hi", max_tokens=4, ignore_eos=True)
    assert [t.finish_reason for t in tokens] == [None, None, None, "length"]


async def test_end_of_sequence_stops_before_max_tokens(virtual_model):
    tokens = await _run(virtual_model, "Hi", max_tokens=1000)
    assert tokens[-1].finish_reason == "stop" and len(tokens) < 1000
    assert "".join(t.text for t in tokens).endswith(".")


async def test_stop_string_cuts_the_text_and_is_not_included(virtual_model):
    full = "".join(t.text for t in await _run(virtual_model, "Hi", max_tokens=30, ignore_eos=True))
    stop = full.split()[3]  # a word from the middle of the answer
    tokens = await _run(virtual_model, "Hi", max_tokens=30, ignore_eos=True, stop=[stop])
    text = "".join(t.text for t in tokens)
    assert tokens[-1].finish_reason == "stop"
    assert text == full[: full.index(stop)]


def test_stop_matcher_holds_back_a_possible_start_of_a_stop_string():
    """ "ab" arrives as "a" then "b": nothing of it may be emitted before we know."""
    matcher = StopMatcher(["ab"])
    assert matcher.feed("xa") == ("x", False)
    assert matcher.feed("c") == ("ac", False)
    assert matcher.feed("a") == ("", False)
    assert matcher.feed("b") == ("", True)


async def test_a_caller_that_stops_listening_frees_its_place(virtual_model):
    stream = virtual_model.generate("Hi", max_tokens=500, ignore_eos=True)
    await stream.__anext__()
    assert virtual_model.num_running == 1
    await stream.aclose()
    assert virtual_model.num_running == 0 and virtual_model.num_waiting == 0


async def test_requests_that_cannot_fit_raise_before_any_work(virtual_model):
    with pytest.raises(InvalidRequestError, match="maximum context length"):
        await _run(virtual_model, "Hi", max_tokens=9000)
    assert virtual_model.num_waiting == 0


async def test_policy_can_change_while_the_model_runs(virtual_model):
    virtual_model.configure(batching="none", max_num_seqs=4)
    assert (virtual_model.scheduler.batching.value, virtual_model.scheduler.max_num_seqs) == (
        "none",
        4,
    )
    with pytest.raises(ValueError, match="max_num_seqs must be >= 1, got 0"):
        virtual_model.configure(max_num_seqs=0)


def test_the_model_rebinds_to_a_new_event_loop():
    """A notebook that restarts its server runs the same model on a new loop."""
    model = SimulatedModel(clock=VirtualClock())
    for _ in range(2):
        tokens = asyncio.run(_run(model, "Hi", max_tokens=3, ignore_eos=True))
        assert len(tokens) == 3


async def test_a_crashed_step_loop_answers_every_waiting_caller():
    class BrokenClock(VirtualClock):
        async def sleep_until(self, when_s):
            raise OSError("the accelerator fell off the bus")

    model = SimulatedModel(clock=BrokenClock())
    with pytest.raises(RuntimeError, match="fell off the bus"):
        await _run(model, "Hi", max_tokens=3)


async def test_one_failing_sequence_fails_alone_and_the_batch_runs_on(virtual_model):
    """A lone surrogate makes the text generator raise inside the step loop: that sequence
    fails, the 20 sharing its batch all finish, and the loop has not crashed."""
    innocent = [_run(virtual_model, f"q{i}", max_tokens=5, ignore_eos=True) for i in range(20)]
    results = await asyncio.gather(
        _run(virtual_model, "\ud800", max_tokens=5), *innocent, return_exceptions=True
    )
    poisoned, *others = results
    # it fails when its prompt is read (the prefix cache hashes its tokens) or in the step loop
    assert isinstance(poisoned, (RuntimeError, UnicodeError))
    assert "surrogates not allowed" in str(poisoned) or "UnicodeEncodeError" in str(poisoned)
    assert [len(tokens) for tokens in others] == [5] * 20
    assert virtual_model.last_error is None
    assert virtual_model.num_running == 0 and virtual_model.num_waiting == 0


async def test_each_caller_of_a_crashed_loop_gets_its_own_error():
    """One shared exception raised in every reader would collect every reader's frames."""
    crash = OSError("the accelerator fell off the bus")

    class BrokenClock(VirtualClock):
        async def sleep_until(self, when_s):
            raise crash

    model = SimulatedModel(clock=BrokenClock())
    errors = await asyncio.gather(
        *(_run(model, f"q{i}", max_tokens=3) for i in range(5)), return_exceptions=True
    )
    assert len({id(error) for error in errors}) == 5
    assert all(error.__cause__ is crash for error in errors)


async def test_a_scaled_clock_changes_speed_without_a_jump_in_simulated_time():
    clock = ScaledClock(time_scale=1000.0)
    before = clock.now()
    clock.rescale(0.001)  # a million times faster: a jump would show as seconds at once
    assert before <= clock.now() < before + 1.0
    with pytest.raises(ValueError, match="time_scale must be > 0"):
        clock.rescale(0)


async def test_the_time_scale_changes_only_while_the_model_is_idle():
    model = SimulatedModel("h100-llama3-8b", time_scale=0.01)
    stream = model.generate("Hi", max_tokens=500, ignore_eos=True)
    await stream.__anext__()
    with pytest.raises(ValueError, match="only while the model is idle"):
        model.configure(time_scale=0.02)
    await stream.aclose()
    model.configure(time_scale=0.02)
    assert model.time_scale == 0.02
    await model.aclose()
    with pytest.raises(ValueError, match="only on a scaled clock"):
        SimulatedModel("h100-llama3-8b", clock=VirtualClock()).configure(time_scale=0.5)


async def test_scaled_clock_deadlines_are_absolute():
    """Sleeping until a deadline already past returns at once instead of waiting again."""
    clock = ScaledClock(time_scale=1000.0)  # one simulated second = 1000 wall seconds
    await clock.sleep_until(-1.0)
    assert clock.now() < 0.001
    with pytest.raises(ValueError, match="time_scale must be > 0"):
        ScaledClock(0)
