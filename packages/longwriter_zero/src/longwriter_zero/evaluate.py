"""``longwriter-zero eval``: length adherence, format validity, repetition rate, and Arena-style Elo."""

from __future__ import annotations

from typing import Any

from rlcore.io import DataError, read_jsonl, write_json

from .format_reward import FormatReward, check_format
from .length_reward import compute_length_reward, count_words, parse_length_range
from .prompts import extract_answer

__all__ = ["length_format_metrics", "load_baselines", "evaluate"]


def length_format_metrics(records: list[dict[str, Any]], cfg: Any, where: str = "input") -> dict[str, Any]:
    """Per-set metrics of ``{question, completion, length_range?}`` records.

    - ``in_range``: share of answers whose word count lies in ``length_range`` (rows with a ``[0, 0]`` or no
      range are left out and counted in ``n_without_range``);
    - ``length_error``: mean distance from the range relative to its midpoint, ``|l - clip(l, lo, hi)| / mid``;
    - ``format_valid``, ``repetition_rate``, ``no_answer``: shares / means over all rows.
    """
    n = len(records)
    in_range = err = lr = 0.0
    n_range = valid = no_answer = 0
    rep = 0.0
    fmt = FormatReward(cfg.think, cfg.format_ngram, cfg.format_threshold, cfg.format_penalty, cfg.format_unit_words,
                       cfg.format_repetition, cfg.format_minhash_threshold)
    for i, rec in enumerate(records, 1):
        text = rec.get("completion")
        if not isinstance(text, str):
            raise DataError(f"{where}: record {i}: field 'completion' must be a string")
        answer = extract_answer(text, cfg.untagged)
        no_answer += answer is None
        words = count_words(answer or "")
        valid += check_format(text, cfg.think)
        rep += fmt.repetition_rate(answer or "")
        if cfg.length_column in rec:
            try:
                lo, hi = parse_length_range(rec[cfg.length_column], cfg.length_column)
            except ValueError as e:
                raise DataError(f"{where}: record {i}: {e}") from None
            if hi > 0:
                n_range += 1
                in_range += lo <= words <= hi
                err += abs(words - min(max(words, lo), hi)) / ((lo + hi) / 2)
                lr += compute_length_reward(words, lo, hi, cfg.l_max)
    out: dict[str, Any] = {"n": n, "format_valid": valid / n, "repetition_rate": rep / n, "no_answer": no_answer / n,
                           "n_with_range": n_range, "n_without_range": n - n_range}
    if n_range:
        out.update(in_range=in_range / n_range, length_error=err / n_range, length_reward=lr / n_range)
    return out


def load_baselines(path: str) -> dict[str, dict[str, str]]:
    """``{question: {model: response}}`` from a JSONL of ``question`` + ``baseline_response``.

    ``baseline_response`` may be a ``{model: text}`` mapping or a list of ``{model, response}`` objects (Arena-Write).

    Raises:
        DataError: a record with a missing/ill-typed field (record named).
    """
    out: dict[str, dict[str, str]] = {}
    for i, rec in enumerate(read_jsonl(path, required=("question", "baseline_response")), 1):
        br = rec["baseline_response"]
        if isinstance(br, list):
            try:
                br = {str(x["model"]): x["response"] for x in br}
            except (KeyError, TypeError):
                raise DataError(f"{path}: record {i}: baseline_response list items need 'model' and 'response'") from None
        if not isinstance(br, dict) or not br or not all(isinstance(v, str) for v in br.values()):
            raise DataError(f"{path}: record {i}: baseline_response must map model names to response strings")
        out[rec["question"]] = br
    return out


def _make_judge(cfg: Any):
    from .arena import EndpointJudge, HFJudge

    if cfg.judge.startswith(("http://", "https://")):
        return EndpointJudge(cfg.judge, cfg.judge_model, cfg.judge_api_key_env, cfg.judge_max_new_tokens,
                             max_retries=cfg.judge_max_retries)
    return HFJudge(cfg.judge, cfg.judge_max_new_tokens, None if cfg.device == "auto" else cfg.device, cfg.backend,
                   cfg.tensor_parallel_size, cfg.gpu_memory_utilization)


def evaluate(cfg: Any, judge: Any = None) -> dict[str, Any]:
    """Run the metrics, and the Elo comparison when ``cfg.baselines`` is set (``judge`` overrides ``cfg.judge``)."""
    from .arena import bootstrap_elo, judge_pairs

    records = read_jsonl(cfg.input, required=("question", "completion"))
    report: dict[str, Any] = {"metrics": length_format_metrics(records, cfg, cfg.input)}
    if cfg.baselines:
        baselines = load_baselines(cfg.baselines)
        items = []
        for rec in records:
            answer = extract_answer(rec["completion"], cfg.untagged) or ""
            for model, resp in baselines.get(rec["question"], {}).items():
                items.append({"question": rec["question"], "answer": answer, "baseline_model": model,
                              "baseline_answer": resp})
        if not items:
            raise DataError(f"no question of {cfg.input} appears in {cfg.baselines}")
        cache = cfg.judgements or (f"{cfg.output}.judgements.jsonl" if cfg.output else None)
        matches, stats = judge_pairs(judge or _make_judge(cfg), items, cfg.policy_name, cache=cache)
        report["arena"] = {**stats, "elo": bootstrap_elo(matches, cfg.bootstrap, cfg.seed) if matches else {}}
    if cfg.output:
        write_json(cfg.output, report)
    return report
