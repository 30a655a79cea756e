"""Plausible wrong answers to the labs, as mutants of the solutions: the grader must reject each.

Each mutant replaces one exact snippet of a solution module (so a solution edit that removes the
snippet fails loudly rather than silently testing nothing), names the check that must fail, and
a phrase its message must contain: the words a learner with this bug will read.
tests/test_lab_mutants.py grades them all in one run, beside the solutions, which must pass.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str  # also its folder's name in the graded run: letters, digits, underscores
    module: str  # the solution module it changes, e.g. "queue_proxy"
    old: str  # an exact snippet of solutions/<module>.py, found once
    new: str
    check: str  # the test function that must fail
    message: str  # a phrase that check's message must contain


_FLUSH_WAIT = """\
            oldest_arrival = self.queue[0][2]
            time_left = oldest_arrival + self.flush_interval_s - loop.time()
            if len(self.queue) < self.batch_size and time_left > 0:
                try:  # wait for a full batch, but not past the oldest request's deadline
                    await asyncio.wait_for(self._full_batch(), time_left)
                except asyncio.TimeoutError:
                    pass
"""

QUEUE_PROXY = [
    Mutant(
        "choices_by_position",
        "queue_proxy",
        'texts = {c["index"]: c["text"] for c in choices}',
        'texts = {i: c["text"] for i, c in enumerate(choices)}',
        "test_each_caller_gets_the_answer_to_its_own_prompt",
        "give each caller the choice whose choice['index']",
    ),
    Mutant(
        "joined_prompt",
        "queue_proxy",
        'json={"prompt": [prompt for prompt, _, _ in batch], "max_tokens": self.max_tokens},',
        'json={"prompt": "\\n".join(p for p, _, _ in batch), "max_tokens": self.max_tokens},',
        "test_each_caller_gets_the_answer_to_its_own_prompt",
        "one string for five callers",
    ),
    Mutant(
        "polls_every_ms",
        "queue_proxy",
        "await self._wake.wait()  # idle: sleep until a request arrives, no polling",
        "await asyncio.sleep(0.001)  # idle: check again in a millisecond",
        "test_the_flusher_sleeps_while_idle",
        "your flusher woke up",
    ),
    Mutant(
        "deadline_restarts_at_each_wakeup",
        "queue_proxy",
        _FLUSH_WAIT,
        """\
            if len(self.queue) < self.batch_size:
                try:  # wait for the next request, or the flush interval, whichever is first
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
                    self._wake.clear()
                    continue
                except asyncio.TimeoutError:
                    pass
""",
        "test_the_deadline_counts_from_the_oldest_arrival",
        "the deadline is the oldest request's arrival time plus",
    ),
    Mutant(
        "deadline_from_when_the_flusher_looks",
        "queue_proxy",
        "time_left = oldest_arrival + self.flush_interval_s - loop.time()",
        "time_left = self.flush_interval_s",
        "test_a_request_arriving_during_a_send_keeps_its_own_deadline",
        "the proxy waited again before sending it",
    ),
    Mutant(
        "never_flushes_a_partial_batch",
        "queue_proxy",
        "await asyncio.wait_for(self._full_batch(), time_left)",
        "await self._full_batch()",
        "test_a_lone_request_goes_once_its_flush_interval_has_passed",
        "callers still had no answer after",
    ),
    Mutant(
        "full_batch_waits_for_the_interval",
        "queue_proxy",
        "await asyncio.wait_for(self._full_batch(), time_left)",
        "await asyncio.sleep(time_left)  # let the batch fill up until the deadline",
        "test_a_full_batch_goes_at_once_as_one_request",
        "callers still had no answer after",
    ),
    Mutant(
        "error_reaches_nobody",
        "queue_proxy",
        """\
        except Exception as exc:  # whatever went wrong, every caller must hear about it
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(exc)
""",
        """\
        except Exception:  # a failed batch is logged and dropped
            pass
""",
        "test_an_upstream_failure_reaches_every_caller",
        "callers still had no answer after",
    ),
    Mutant(
        "no_count_check",
        "queue_proxy",
        "if len(choices) != len(batch):  # then no answer can be trusted to be whose it says",
        "if len(choices) != len(batch) and False:",
        "test_a_wrong_number_of_choices_fails_every_caller",
        "yet callers [0] got answers",
    ),
    Mutant(
        "error_crashes_the_flusher",
        "queue_proxy",
        "except Exception as exc:  # whatever went wrong, every caller must hear about it",
        "except KeyError as exc:  # a choice missing from the answer",
        "test_an_upstream_failure_reaches_every_caller",
        "your flusher stopped while 3 of 3 callers were still waiting",
    ),
    Mutant(
        "sets_a_cancelled_future",
        "queue_proxy",
        """\
            for index, (_, future, _) in enumerate(batch):
                if not future.done():
                    future.set_result(texts[index])
        except Exception as exc:  # whatever went wrong, every caller must hear about it
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(exc)
""",
        """\
            for index, (_, future, _) in enumerate(batch):
                future.set_result(texts[index])
        except Exception as exc:  # whatever went wrong, every caller must hear about it
            for _, future, _ in batch:
                future.set_exception(exc)
""",
        "test_a_caller_that_gives_up_does_not_break_its_batch",
        "InvalidStateError",
    ),
    Mutant(
        "cancelled_caller_keeps_its_place",
        "queue_proxy",
        """\
        try:
            return await future
        except asyncio.CancelledError:  # the caller gave up: free its place in the queue
            if entry in self.queue:
                self.queue.remove(entry)
            raise
""",
        """\
        return await future
""",
        "test_a_caller_that_gives_up_frees_its_place",
        "they make a full batch",
    ),
]


EXERCISES = [
    Mutant(
        "latency_one_decode_too_many",
        "exercises_00",
        "for generated in range(1, output_tokens):",
        "for generated in range(output_tokens):",
        "test_predicted_latency_matches_the_simulator",
        "how many decode steps follow the prefill",
    ),
    Mutant(
        "latency_context_never_grows",
        "exercises_00",
        "total += profile.decode_ms([prompt_tokens + generated])",
        "total += profile.decode_ms([prompt_tokens])",
        "test_predicted_latency_matches_the_simulator",
        "how long the context is",
    ),
    Mutant(
        "tpot_over_every_token",
        "exercises_00",
        "gaps = len(token_times_s) - 1",
        "gaps = len(token_times_s)",
        "test_ttft_and_tpot",
        "expected (0.1, 0.15)",
    ),
    Mutant(
        "budget_one_token_over",
        "exercises_00",
        "while predicted_latency_ms(profile, prompt_tokens, tokens + 1) <= budget_ms:",
        "while predicted_latency_ms(profile, prompt_tokens, max(tokens, 1)) <= budget_ms:",
        "test_max_output_tokens_meets_the_budget",
        "one more token must go over it",
    ),
    Mutant(
        "percentile_nearest_rank",
        "exercises_01",
        "return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)",
        "return ordered[round(rank)]",
        "test_percentile_interpolates_like_numpy",
        "p50 of [1, 2, 3, 4]: expected 2.5",
    ),
    Mutant(
        "threads_rounded_down",
        "exercises_01",
        "return math.ceil(round(request_rate * latency_s, 9))",
        "return int(request_rate * latency_s)",
        "test_threads_needed_is_littles_law_rounded_up",
        "2 cannot keep up",
    ),
    Mutant(
        "backoff_doubles_too_soon",
        "exercises_02",
        "return min(cap_s, base_s * 2 ** (attempt - 1))",
        "return min(cap_s, base_s * 2**attempt)",
        "test_backoff_doubles_up_to_the_cap",
        "expected [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]",
    ),
    Mutant(
        "retries_only_5xx",
        "exercises_02",
        "return status >= 500 or status in (408, 409, 429)",
        "return status >= 500",
        "test_retry_server_trouble_not_bad_requests",
        "status 429: expected True",
    ),
    Mutant(
        "signature_without_age_check",
        "exercises_02",
        "return abs(now - timestamp) <= 300 and hmac.compare_digest(expected.hexdigest(), given)",
        "return hmac.compare_digest(expected.hexdigest(), given)",
        "test_signature_check",
        "(a replay): expected False",
    ),
    Mutant(
        "signature_compared_with_equals",
        "exercises_02",
        "return abs(now - timestamp) <= 300 and hmac.compare_digest(expected.hexdigest(), given)",
        "return abs(now - timestamp) <= 300 and expected.hexdigest() == given",
        "test_signature_is_compared_in_constant_time",
        "without calling hmac.compare_digest",
    ),
    Mutant(
        "signature_crashes_on_a_bad_header",
        "exercises_02",
        "except (KeyError, ValueError):",
        "except KeyError:",
        "test_signature_check",
        "your check raised ValueError",
    ),
    Mutant(
        "sse_reads_past_done",
        "exercises_03",
        """        if data == "[DONE]":
            break
""",
        """        if data == "[DONE]":
            continue
""",
        "test_texts_from_sse",
        "where the stream ends",
    ),
    Mutant(
        "sse_trusts_every_chunk",
        "exercises_03",
        "if isinstance(payload, dict):",
        "if True:",
        "test_texts_from_sse",
        "Your code raised AttributeError",
    ),
    Mutant(
        "gap_index_of_the_earlier_token",
        "exercises_03",
        "return widest + 1, gaps[widest]",
        "return widest, gaps[widest]",
        "test_longest_gap",
        "expected (2, 0.3)",
    ),
    Mutant(
        "stall_prefills_one_by_one",
        "exercises_03",
        "+ profile.prefill_ms([prompt_tokens] * newcomers)",
        "+ newcomers * profile.prefill_ms([prompt_tokens])",
        "test_predicted_stall",
        "prefilled together, in one call",
    ),
    Mutant(
        "stall_without_the_streams_decode",
        "exercises_03",
        "+ profile.decode_ms([stream_context_tokens])",
        "+ 0.0",
        "test_predicted_stall",
        "the stream's own decode happens in the same step",
    ),
    Mutant(
        "roofline_adds_the_two_times",
        "exercises_04",
        "memory_s = params * bytes_per_param / bandwidth_bps\n"
        "    compute_s = 2 * params * batch / flops_per_s\n"
        "    return max(memory_s, compute_s) * 1000",
        "memory_s = params * bytes_per_param / bandwidth_bps\n"
        "    compute_s = 2 * params * batch / flops_per_s\n"
        "    return (memory_s + compute_s) * 1000",
        "test_roofline_is_the_slower_of_memory_and_arithmetic",
        "the slower one sets it",
    ),
    Mutant(
        "crossover_forgets_two_flops",
        "exercises_04",
        "return bytes_per_param * flops_per_s / (2 * bandwidth_bps)",
        "return bytes_per_param * flops_per_s / bandwidth_bps",
        "test_crossover_batch",
        "expected 250",
    ),
    Mutant(
        "best_setting_ignores_ties",
        "exercises_06",
        "return max(meeting, key=lambda s: (s.throughput, -s.p99_s), default=None)",
        "return max(meeting, key=lambda s: s.throughput, default=None) if meeting else None",
        "test_best_setting_meets_the_target_with_the_most_throughput",
        "a tie goes to the lower p99",
    ),
    Mutant(
        "pareto_keeps_everything_faster",
        "exercises_06",
        "and t.p99_s <= s.p99_s\n",
        "\n",
        "test_pareto_front",
        "a setting is beaten if another",
    ),
    Mutant(
        "static_steps_as_if_continuous",
        "exercises_07",
        "return sum(max(output_lengths[i : i + slots]) "
        "for i in range(0, len(output_lengths), slots))",
        "return -(-sum(output_lengths) // slots)",
        "test_static_steps",
        "each lasts as long as its longest",
    ),
    Mutant(
        "continuous_admits_after_the_step",
        "exercises_07",
        """        while waiting and len(running) < slots:
            running.append(waiting.pop(0))
        running = [left - 1 for left in running]
""",
        """        running = [left - 1 for left in running]
        while waiting and len(running) < slots:
            running.append(waiting.pop(0))
""",
        "test_continuous_steps",
        "expected 5",
    ),
    Mutant(
        "plot_read_the_other_way_round",
        "exercises_07",
        "return 0, 1  # request 0",
        "return 1, 0  # request 0",
        "test_read_the_plot",
        "expected (0, 1)",
    ),
    Mutant(
        "md1_uses_mm1",
        "exercises_08",
        "return service_s + utilisation * service_s / (2 * (1 - utilisation))",
        "return service_s / (1 - utilisation)",
        "test_md1_mean_latency",
        "expected 0.15",
    ),
    Mutant(
        "md1_accepts_overload",
        "exercises_08",
        "if not 0 <= utilisation < 1:",
        "if utilisation < 0:",
        "test_md1_mean_latency",
        "the queue grows forever",
    ),
    Mutant(
        "retry_without_jitter",
        "exercises_02",
        "await sleep(rng.uniform(0, backoff_bound_s(attempt, base_s, cap_s)))",
        "await sleep(backoff_bound_s(attempt, base_s, cap_s))",
        "test_retries_with_jitter_until_it_succeeds",
        "draw each wait with rng.uniform",
    ),
    Mutant(
        "retry_sleeps_after_the_last_attempt",
        "exercises_02",
        """\
        if status < 400 or not is_retryable(status) or attempt == max_attempts:
            return status
        await sleep(rng.uniform(0, backoff_bound_s(attempt, base_s, cap_s)))
    raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
""",
        """\
        if status < 400 or not is_retryable(status):
            return status
        await sleep(rng.uniform(0, backoff_bound_s(attempt, base_s, cap_s)))
    return status
""",
        "test_gives_up_after_max_attempts",
        "after the last attempt nobody waits",
    ),
    Mutant(
        "retry_never_gives_up",
        "exercises_02",
        """\
    for attempt in range(1, max_attempts + 1):
        status = await send()
        if status < 400 or not is_retryable(status) or attempt == max_attempts:
""",
        """\
    for attempt in range(1, 1_000_000):  # until it works
        status = await send()
        if status < 400 or not is_retryable(status):
""",
        "test_gives_up_after_max_attempts",
        "Your code raised RuntimeError: send() called",
    ),
    Mutant(
        "webhook_processes_every_delivery",
        "exercises_02",
        'if event["event_id"] not in self._seen:',
        "if True:",
        "test_webhook_receiver_processes_each_event_once",
        "remember which event_ids you processed",
    ),
    Mutant(
        "webhook_marks_seen_before_verifying",
        "exercises_02",
        """\
        if not signature_is_valid(self.secret, body, header, now=self.clock()):
            return 401
        event = json.loads(body)
        if event["event_id"] not in self._seen:
            self._seen.add(event["event_id"])
            self.processed.append(event)
        return 200
""",
        """\
        event = json.loads(body)
        if event["event_id"] in self._seen:
            return 200
        self._seen.add(event["event_id"])
        if not signature_is_valid(self.secret, body, header, now=self.clock()):
            return 401
        self.processed.append(event)
        return 200
""",
        "test_webhook_receiver_is_not_fooled_by_a_forgery",
        "check the signature before anything else",
    ),
    Mutant(
        "kv_roofline_without_the_cache",
        "exercises_04",
        "memory_s = (params * bytes_per_param + batch * context_tokens * kv_bytes_per_token) / (",
        "memory_s = (params * bytes_per_param) / (",
        "test_kv_roofline_reads_the_cache_too",
        "every sequence's keys and values",
    ),
    Mutant(
        "kv_cache_read_once_per_step",
        "exercises_04",
        "memory_s = (params * bytes_per_param + batch * context_tokens * kv_bytes_per_token) / (",
        "memory_s = (params * bytes_per_param + context_tokens * kv_bytes_per_token) / (",
        "test_kv_roofline_reads_the_cache_too",
        "every sequence's keys and values",
    ),
    Mutant(
        "max_rate_is_a_utilisation",
        "exercises_08",
        "return utilisation / service_s",
        "return utilisation",
        "test_max_rate_for_a_mean_latency_target",
        "a rate is a utilisation divided by the service time",
    ),
    Mutant(
        "burn_rate_over_the_objective",
        "exercises_08",
        "return (missed / total) / (1 - objective)",
        "return (missed / total) / objective",
        "test_burn_rate",
        "a 99% objective allows 1% to miss",
    ),
    Mutant(
        "async_whenever_long",
        "exercises_09",
        "if long_or_bursty and not person_waiting:",
        "if long_or_bursty:",
        "test_choose_mode",
        "expected 'stream'",
    ),
    Mutant(
        "throughput_times_latency",
        "exercises_09",
        "return in_flight / latency_s",
        "return in_flight * latency_s",
        "test_max_throughput",
        "Little's law relates",
    ),
    Mutant(
        "cost_ignores_the_batch",
        "exercises_09",
        "return price_per_s * step_ms / 1000 / batch * 1_000_000",
        "return price_per_s * step_ms / 1000 * 1_000_000",
        "test_cost_per_million_tokens",
        "makes `batch` tokens",
    ),
    Mutant(
        "predicts_batching_is_free",
        "exercises_09",
        "return 64 * 8.4 / 10.3",
        "return 64.0",
        "test_predicted_cost_ratio",
        "you predicted 64.0",
    ),
]

# --- issue 17 (lessons 02 and 03): polling intervals, a failed stream, one WebSocket ----------
MODES = [
    Mutant(
        "polling_forgets_the_first_poll",
        "exercises_02",
        "return later_polls + 1, later_polls * interval_s - job_s",
        "return later_polls, later_polls * interval_s - job_s",
        "test_polling_cost",
        "the first poll goes at once",
    ),
    Mutant(
        "polling_rounds_down",
        "exercises_02",
        "later_polls = math.ceil(job_s / interval_s)",
        "later_polls = int(job_s / interval_s)",
        "test_polling_cost",
        "the first at or after the job's end",
    ),
    Mutant(
        "interval_that_learns_soonest",
        "exercises_02",
        "return min(meeting)[1] if meeting else None",
        "return min(interval_s for _, interval_s in meeting) if meeting else None",
        "test_choose_interval_meets_the_target_with_the_fewest_polls",
        "0.02 s meets the target too, with 215 polls",
    ),
    Mutant(
        "interval_by_half_an_interval",
        "exercises_02",
        "if mean_extra_s <= max_mean_extra_s:",
        "if interval_s / 2 <= max_mean_extra_s:",
        "test_choose_interval_meets_the_target_with_the_fewest_polls",
        "half an interval is only a rule of thumb",
    ),
    Mutant(
        "interval_least_bad_when_none_meets",
        "exercises_02",
        "return min(meeting)[1] if meeting else None",
        "return min(meeting)[1] if meeting else min(intervals_s)",
        "test_choose_interval_meets_the_target_with_the_fewest_polls",
        "say None rather than the least bad",
    ),
    Mutant(
        "front_door_ignores_the_key",
        "exercises_02",
        "if key is not None and key in self._by_key:",
        "if False:  # every submission is a new job",
        "test_a_resubmission_with_its_key_returns_the_same_job",
        "look the key up before making a job",
    ),
    Mutant(
        "front_door_ignores_the_request",
        "exercises_02",
        "if self.jobs[earlier] != request:",
        "if False:  # the key alone says which job",
        "test_a_key_reused_for_another_request_is_refused",
        "another request's result",
    ),
    Mutant(
        "front_door_takes_no_key_for_a_key",
        "exercises_02",
        """\
        if key is not None and key in self._by_key:
            earlier = self._by_key[key]
            if self.jobs[earlier] != request:
                raise KeyReused(f"key {key!r} was used for job {earlier}, another request")
            return earlier, True
        job_id = self.new_id()
        self.jobs[job_id] = request
        if key is not None:
            self._by_key[key] = job_id
""",
        """\
        if key in self._by_key:  # no key is a key like any other
            earlier = self._by_key[key]
            if self.jobs[earlier] != request:
                raise KeyReused(f"key {key!r} was used for job {earlier}, another request")
            return earlier, True
        job_id = self.new_id()
        self.jobs[job_id] = request
        self._by_key[key] = job_id
""",
        "test_submissions_without_a_key_are_each_their_own_job",
        "only a key makes a submission a repeat",
    ),
    Mutant(
        "outcome_done_means_success",
        "exercises_03",
        """        if data == "[DONE]":
            return "".join(texts), error
""",
        """        if data == "[DONE]":
            return "".join(texts), None
""",
        "test_stream_outcome",
        "An error event can come before [DONE]",
    ),
    Mutant(
        "outcome_trusts_a_cut_stream",
        "exercises_03",
        'return "".join(texts), error or CUT',
        'return "".join(texts), error',
        "test_stream_outcome",
        "a stream that just stops never sends",
    ),
    Mutant(
        "socket_stops_at_the_first_end",
        "exercises_03",
        """    while len(ended) < len(ids):
""",
        """    while not ended:
""",
        "test_each_request_on_one_socket_gets_its_own_answer",
        "Your code raised KeyError",
    ),
    Mutant(
        "socket_answers_one_after_another",
        "exercises_03",
        'texts[request_id] += "".join(c.get("text", "") for c in frame["chunk"]["choices"])',
        'texts[ids[len(ended)]] += "".join(\n'
        '                c.get("text", "") for c in frame["chunk"]["choices"])',
        "test_each_request_on_one_socket_gets_its_own_answer",
        "file each chunk under its frame's",
    ),
    Mutant(
        "socket_reads_after_the_first_send",
        "exercises_03",
        """    for request_id, prompt in zip(ids, prompts, strict=True):
        body = {"prompt": prompt, "max_tokens": max_tokens}
        await send({"type": "completions", "id": request_id, "body": body})
    texts, chunks, ended = dict.fromkeys(ids, ""), dict.fromkeys(ids, 0), {}
    while len(ended) < len(ids):
        frame = await receive()
""",
        """    unsent = list(zip(ids, prompts, strict=True))
    texts, chunks, ended = dict.fromkeys(ids, ""), dict.fromkeys(ids, 0), {}
    while len(ended) < len(ids):
        if unsent:  # one request, then its first frame, then the next request
            request_id, prompt = unsent.pop(0)
            body = {"prompt": prompt, "max_tokens": max_tokens}
            await send({"type": "completions", "id": request_id, "body": body})
        frame = await receive()
""",
        "test_each_request_on_one_socket_gets_its_own_answer",
        "send every request first",
    ),
    Mutant(
        "socket_cancels_at_every_chunk",
        "exercises_03",
        "if request_id == ids[cancel] and chunks[request_id] == cancel_after_chunks:",
        "if request_id == ids[cancel] and chunks[request_id] >= cancel_after_chunks:",
        "test_a_cancelled_request_ends_when_the_server_says_so",
        "send one cancel frame",
    ),
    Mutant(
        "socket_ends_a_request_at_its_cancel",
        "exercises_03",
        """                await send({"type": "cancel", "id": request_id})  # once: more may come
""",
        """                await send({"type": "cancel", "id": request_id})
                ended[request_id] = "cancelled"  # done with it
""",
        "test_a_cancelled_request_ends_when_the_server_says_so",
        "not when you send the cancel",
    ),
]


# --- issue 18, lessons 01 and 06: a thread pool, predictions, a plot, a live knob, checked
# free-text answers (h18b) -----------------------------------------------------------------------
_POOL = """\
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, range(num_requests)))
"""

CHECKED_ANSWERS_01_06 = [
    Mutant(
        "waited_in_the_server",
        "exercises_01",
        'return "in the client", (',
        'return "in the server", (',
        "test_where_they_waited",
        "you chose 'in the server'",
    ),
    Mutant(
        "waited_without_saying_what_it_costs",
        "exercises_01",
        """\
        "requests were in flight and the rest queued for a free thread; throughput fell to "
        "threads / latency, while the server could have batched more."
""",
        """\
        "requests were in flight and the rest queued for a free thread."
""",
        "test_where_they_waited",
        "it does not yet say what that does to the requests per second",
    ),
    Mutant(
        "waited_with_no_reason",
        "exercises_01",
        'return "in the client", (',
        'return "in the client", "threads" or (',
        "test_where_they_waited",
        "is not a reason yet",
    ),
    Mutant(
        "pool_sends_one_at_a_time",
        "exercises_01",
        _POOL,
        "    return [one(index) for index in range(num_requests)]\n",
        "test_send_all_keeps_threads_requests_in_flight",
        "fewer than 3 requests were ever in flight",
    ),
    Mutant(
        "pool_ignores_its_size",
        "exercises_01",
        "with ThreadPoolExecutor(max_workers=threads) as pool:",
        "with ThreadPoolExecutor(max_workers=num_requests) as pool:",
        "test_send_all_keeps_threads_requests_in_flight",
        "requests were in flight at once",
    ),
    Mutant(
        "wait_counted_from_when_a_thread_takes_it",
        "exercises_01",
        "return Sent(index, answer, taken - started, clock() - taken)",
        "return Sent(index, answer, 0.0, clock() - started)",
        "test_send_all_answers_in_order_and_times_the_wait",
        "read the clock when the run starts",
    ),
    Mutant(
        "throughput_as_if_alone",
        "exercises_01",
        """\
    batch_ms = profile.prefill_ms([prompt_tokens] * users)
    for generated in range(1, output_tokens):
        batch_ms += profile.decode_ms([prompt_tokens + generated] * users)
""",
        """\
    batch_ms = profile.prefill_ms([prompt_tokens])  # one request's latency: users change nothing
    for generated in range(1, output_tokens):
        batch_ms += profile.decode_ms([prompt_tokens + generated])
""",
        "test_predicted_throughput_matches_the_simulator",
        "64 users sending 64-token prompts",
    ),
    Mutant(
        "throughput_without_the_prefill",
        "exercises_01",
        "batch_ms = profile.prefill_ms([prompt_tokens] * users)",
        "batch_ms = 0.0",
        "test_predicted_throughput_matches_the_simulator",
        "a prefill of every prompt together",
    ),
    Mutant(
        "throughput_upside_down",
        "exercises_01",
        "return users / (batch_ms / 1000)",
        "return (batch_ms / 1000) / users",
        "test_predicted_throughput_matches_the_simulator",
        "1 users sending",
    ),
    Mutant(
        "blocked_by_the_thread_before",
        "exercises_01",
        "return 5, 0  # request 5",
        "return 4, 3  # request 5",
        "test_who_was_blocked",
        "expected (5, 0)",
    ),
    Mutant(
        "eight_slots_about_the_same",
        "exercises_06",
        'return "many times higher", (',
        'return "a little higher", (',
        "test_predicted_p99_with_8_slots",
        "you chose 'a little higher'",
    ),
    Mutant(
        "eight_slots_without_the_queue",
        "exercises_06",
        """\
        "second, fewer than the 20 arriving: the queue grows for the whole run, and p99 is "
        "the wait of the last ones in it."
""",
        """\
        "second, fewer than the 20 arriving, so p99 latency is much higher."
""",
        "test_predicted_p99_with_8_slots",
        "where the extra requests go",
    ),
    Mutant(
        "knob_by_littles_law_alone",
        "exercises_06",
        "return 12  # the sweep",
        "return 10  # the sweep",
        "test_chosen_max_num_seqs_meets_the_target_without_waste",
        "over the 1 s target (tolerance 10%)",
    ),
    Mutant(
        "knob_turned_all_the_way",
        "exercises_06",
        "return 12  # the sweep",
        "return 64  # the sweep",
        "test_chosen_max_num_seqs_meets_the_target_without_waste",
        "the question asks for the fewest",
    ),
    Mutant(
        "knob_answered_as_a_p99",
        "exercises_06",
        "return 12  # the sweep",
        "return 0.8  # the sweep",
        "test_chosen_max_num_seqs_meets_the_target_without_waste",
        "a whole number of sequences",
    ),
]

# --- issue 18: one checked free-text answer in every other lesson (h18b) -------------------
CHECKED_ANSWERS_EVERY_LESSON = [
    Mutant(
        "why_long_prompts_are_cheap_wrong_choice",
        "exercises_00",
        'return "the weights, read once", (',
        'return "a cached prompt", (',
        "test_why_long_prompts_are_cheap",
        "you chose 'a cached prompt'",
    ),
    Mutant(
        "why_long_prompts_are_cheap_half_a_reason",
        "exercises_00",
        """\
    return "the weights, read once", (
        "A prefill handles every prompt token in one pass, so reading the 16 GB of weights is "
        "paid once for all of them; only the arithmetic grows with the tokens, a few hundredths "
        "of a millisecond each."
    )
""",
        """\
    return "the weights, read once", (
        "A prefill handles every prompt token in one pass over the weights."
    )
""",
        "test_why_long_prompts_are_cheap",
        "it does not yet say what does grow with the number of tokens",
    ),
    Mutant(
        "why_jitter_wrong_choice",
        "exercises_02",
        'return "a thundering herd", (',
        'return "lost jobs", (',
        "test_why_jitter",
        "you chose 'lost jobs'",
    ),
    Mutant(
        "why_jitter_half_a_reason",
        "exercises_02",
        """\
    return "a thundering herd", (
        "Every job that failed together would retry at the same instants, so the server that just "
        "came back is hit by a thousand requests at once and may be knocked over again."
    )
""",
        """\
    return "a thundering herd", (
        "Every job that failed together would retry at the same instants after the failure."
    )
""",
        "test_why_jitter",
        "it does not yet say what that does to the server that just came back",
    ),
    Mutant(
        "why_the_stream_stuttered_wrong_choice",
        "exercises_03",
        'return "prefilling the newcomers", (',
        'return "the network", (',
        "test_why_the_stream_stuttered",
        "you chose 'the network'",
    ),
    Mutant(
        "why_the_stream_stuttered_half_a_reason",
        "exercises_03",
        """\
    return "prefilling the newcomers", (
        "The newcomers' prompts were prefilled in one step, and every running sequence, our "
        "stream included, waited through that step for its next token."
    )
""",
        """\
    return "prefilling the newcomers", (
        "The newcomers' prompts were long, about two hundred tokens each."
    )
""",
        "test_why_the_stream_stuttered",
        "it does not yet say that the running streams wait through that step",
    ),
    Mutant(
        "where_quantisation_helps_wrong_choice",
        "exercises_04",
        'return "batch 1", (',
        'return "batch 256", (',
        "test_where_quantisation_helps",
        "you chose 'batch 256'",
    ),
    Mutant(
        "where_quantisation_helps_half_a_reason",
        "exercises_04",
        """\
    return "batch 1", (
        "At batch 1 a decode step is memory-bound, so reading a quarter of the bytes makes it up "
        "to four times faster; at batch 256 it is past the crossover, compute-bound, and fewer "
        "bytes barely help."
    )
""",
        """\
    return "batch 1", (
        "At batch 1 a decode step is memory-bound, so a quarter of the bytes is faster."
    )
""",
        "test_where_quantisation_helps",
        "it does not yet say what limits it at batch 256",
    ),
    Mutant(
        "very_short_flush_interval_wrong_choice",
        "queue_proxy",
        'return "more upstream requests", (',
        'return "higher latency", (',
        "test_very_short_flush_interval",
        "you chose 'higher latency'",
    ),
    Mutant(
        "very_short_flush_interval_half_a_reason",
        "queue_proxy",
        """\
    return "more upstream requests", (
        "The proxy no longer waits for company, so batches shrink to one or two and the same "
        "answers cost about three times the upstream requests, each a forward pass; in exchange "
        "latency drops, since nobody waits for a batch to fill."
    )
""",
        """\
    return "more upstream requests", (
        "The proxy sends at once, so batches shrink to one or two and the same answers cost about "
        "three times the upstream requests."
    )
""",
        "test_very_short_flush_interval",
        "it does not yet say what it buys in exchange",
    ),
    Mutant(
        "why_steps_overstate_the_gain_wrong_choice",
        "exercises_07",
        'return "steps differ in cost", (',
        'return "static steps run faster", (',
        "test_why_steps_overstate_the_gain",
        "you chose 'static steps run faster'",
    ),
    Mutant(
        "why_steps_overstate_the_gain_half_a_reason",
        "exercises_07",
        """\
    return "steps differ in cost", (
        "Both policies pay for every prompt's prefill, the dearest steps, and static batching's "
        "extra steps are cheap ones, with few sequences left running."
    )
""",
        """\
    return "steps differ in cost", (
        "Both policies pay for every prompt's prefill, the dearest steps of all."
    )
""",
        "test_why_steps_overstate_the_gain",
        "it does not yet say what static batching's extra steps are like",
    ),
    Mutant(
        "relaxing_the_target_wrong_choice",
        "exercises_08",
        'return "very little", (',
        'return "about twice", (',
        "test_relaxing_the_target",
        "you chose 'about twice'",
    ),
    Mutant(
        "relaxing_the_target_half_a_reason",
        "exercises_08",
        """\
    return "very little", (
        "Very little, 44 to 47 requests a second: the server is already 89% busy, near "
        "saturation, where each extra request a second costs more waiting than the last."
    )
""",
        """\
    return "very little", (
        "Very little, 44 to 47 requests a second, for twice the mean latency."
    )
""",
        "test_relaxing_the_target",
        "it does not yet say how busy the server already is",
    ),
    Mutant(
        "why_batch_64_is_cheap_wrong_choice",
        "exercises_09",
        'return "the step barely grows", (',
        'return "the accelerator runs faster", (',
        "test_why_batch_64_is_cheap",
        "you chose 'the accelerator runs faster'",
    ),
    Mutant(
        "why_batch_64_is_cheap_half_a_reason",
        "exercises_09",
        """\
    return "the step barely grows", (
        "A decode step reads all the weights once whatever the batch, so it grows only from 8.4 "
        "to 10.3 ms while making one token for each of 64 sequences instead of one."
    )
""",
        """\
    return "the step barely grows", (
        "The step grows only from 8.4 to 10.3 ms while making 64 tokens instead of one."
    )
""",
        "test_why_batch_64_is_cheap",
        "it does not yet say what a decode step spends its time on",
    ),
    Mutant(
        "where_varying_text_goes_wrong_choice",
        "exercises_10",
        'return "last", (',
        'return "first", (',
        "test_where_varying_text_goes",
        "you chose 'first'",
    ),
    Mutant(
        "where_varying_text_goes_half_a_reason",
        "exercises_10",
        """\
    return "last", (
        "Only whole blocks are cached, and a block matches only if everything before it matches "
        "too: text that varies, put first, breaks every block after it."
    )
""",
        """\
    return "last", (
        "Text that varies, put first, breaks every block of the prompt that follows it."
    )
""",
        "test_where_varying_text_goes",
        "it does not yet say what the cache keeps",
    ),
]

ALL = QUEUE_PROXY + EXERCISES + MODES + CHECKED_ANSWERS_01_06 + CHECKED_ANSWERS_EVERY_LESSON
