import pytest

from inferlab import PROFILES, Profile, get_profile
from inferlab.engine.profiles import H100_LLAMA3_8B

EIGHT_B = H100_LLAMA3_8B


def test_decode_step_textbook_numbers():
    """One sequence at 512 tokens of context, 8B on an H100:

    a + b·1 + c·512 = 8.4149 + 0.008186 + 4.154e-5·512 = 8.4444 ms (measured: 8.11 ms)
    """
    assert EIGHT_B.decode_ms([512]) == pytest.approx(8.4444, abs=1e-4)


def test_a_batch_of_64_costs_little_more_than_one():
    """The lesson of the cost model: 64x the tokens for about 1.3x the time."""
    one, sixty_four = EIGHT_B.decode_ms([512]), EIGHT_B.decode_ms([512] * 64)
    assert 1.2 < sixty_four / one < 1.4


def test_decode_becomes_compute_bound_above_256_sequences():
    """At B = 512: a + b·B = 12.61 ms < k·B = 0.032·512 = 16.384 ms, so k·B wins."""
    assert EIGHT_B.decode_ms([0] * 512) == pytest.approx(16.384)


def test_prefill_never_costs_less_than_reading_the_weights():
    assert EIGHT_B.prefill_ms([4]) == EIGHT_B.prefill_floor_ms


def test_prefill_attention_grows_with_the_square_of_each_prompt():
    """Same 4,096 tokens: one long prompt pays f·4096² = 8.75 ms more than 8 prompts of 512."""
    one_long, eight_short = EIGHT_B.prefill_ms([4096]), EIGHT_B.prefill_ms([512] * 8)
    assert one_long - eight_short == pytest.approx(5.214e-7 * (4096**2 - 8 * 512**2))


def test_empty_batches_cost_nothing():
    assert EIGHT_B.decode_ms([]) == 0.0 and EIGHT_B.prefill_ms([]) == 0.0


def test_profiles_are_plain_data_a_user_can_extend():
    mine = EIGHT_B.with_overrides(name="my-gpu", decode_fixed_ms=20.0)
    assert get_profile(mine) is mine
    assert mine.decode_ms([0]) == pytest.approx(20.0 + EIGHT_B.decode_per_seq_ms)
    assert isinstance(PROFILES["h100-llama3-1b"], Profile)


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(ValueError, match="h100-llama3-8b"):
        get_profile("a100-gpt5")


def test_a_mixed_step_is_one_pass_over_chunks_and_decodes():
    """A 512-token chunk after 1,024 cached tokens, beside 8 decodes at 1,000 tokens of context:

    linear = 2.6114 + 0.025444 x (512 + 8) + 5.214e-7 x (512² + 2 x 512 x 1024)
             + 4.154e-5 x 8,000 = 2.6114 + 13.2309 + 0.6833 + 0.3323 = 16.858 ms,
    above both the floor (8.4149) and the decode step alone (8.4149 + 0.0655 + 0.3323).
    """
    assert H100_LLAMA3_8B.mixed_ms([(512, 1024)], [1000] * 8) == pytest.approx(16.858, abs=1e-3)
    assert H100_LLAMA3_8B.mixed_ms([], [1000] * 8) == H100_LLAMA3_8B.decode_ms([1000] * 8)
