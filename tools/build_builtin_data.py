"""Build the small built-in datasets under ``shared/src/rlcore/assets/data/`` (seeded, offline, a few hundred KB).

Every dataset is synthetic and generated here from one seed, so the files are reproducible byte for byte:

- ``multihop_qa``    two-hop questions with supporting and distractor documents (HotpotQA-like; KeyChain / LoongRL)
- ``babilong``       bAbI qa1/qa2/qa3-like fact stories hidden among filler sentences (BabiLong-like; Q-RAG)
- ``personal_prefs`` preference pairs from synthetic users with a few style archetypes (PersonalRewardBench-like;
  P-GenRM)
- ``preference_pairs`` correct vs corrupted tiny-reasoner completions (prompt, chosen, rejected; TI-DPO)
- ``speech_prosody`` 16 kHz speech-like WAVs with known pitch, energy, rate and an emotion label (EmotionThinker)

The arithmetic data for ``builtin:tiny-reasoner`` is written by ``tools/train_tiny_reasoner.py``.

Usage: ``uv run --no-sync python tools/build_builtin_data.py [--seed 0] [--only NAME]``
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "shared" / "src" / "rlcore" / "assets" / "data"
sys.path.insert(0, str(Path(__file__).resolve().parent))

FIRST = ["Mira", "Oren", "Talia", "Bram", "Selka", "Juno", "Perrin", "Ilsa", "Dovan", "Quill", "Anouk", "Fenna",
         "Calder", "Ysolde", "Tamsin", "Rurik", "Elowen", "Kestrel", "Lucan", "Marit"]
LAST = ["Vey", "Holm", "Tarrow", "Quist", "Lindqvist", "Amsel", "Corran", "Deverel", "Ostrand", "Pell", "Renwick",
        "Sallow", "Thorne", "Umber", "Wystan", "Yarrow"]
CITIES = ["Quenford", "Larkspire", "Brannock", "Oxhollow", "Veldmark", "Saltmere", "Corriveen", "Ashgrove",
          "Dunmere", "Fallowby", "Highwold", "Marrowgate", "Pennick", "Rookhaven", "Tillbrook", "Wendale"]
COUNTRIES = ["Arvenia", "Belmora", "Calvany", "Dostria", "Elgaria", "Fennland", "Gorvia", "Halvoria"]
ORGS = ["Zorblax Corp", "Nimbus Works", "Keldor Foundry", "Orrin Labs", "Pellucid Press", "Quarry & Vane",
        "Sable Dynamics", "Tessellate Inc", "Umbral Records", "Vantage Mills", "Wicker Observatory", "Yew Street Bank"]
INSTRUMENTS = ["cello", "oboe", "harp", "lute", "viola", "bassoon", "zither", "flute"]


def _write(name: str, rows: list[dict], split: str) -> None:
    from rlcore.io import write_jsonl

    (DATA / name).mkdir(parents=True, exist_ok=True)
    write_jsonl(DATA / name / f"{split}.jsonl", rows)


# ------------------------------------------------------------------------------------------------ multihop_qa
def build_multihop_qa(rng: random.Random, n: int = 160) -> list[dict]:
    """Two-hop bridge questions over a synthetic world; each item has 2 supporting and 4 distractor documents.

    Row: ``{id, question, answer, answers, type, supporting_docs: [{title, text}], distractor_docs: [{title, text}],
    docs: [{title, text}] (shuffled union), supporting_idx: [int] (indices into docs)}``.
    """
    people = [f"{f} {last}" for f in FIRST for last in LAST]
    rng.shuffle(people)
    birth = {p: rng.choice(CITIES) for p in people}
    country = {c: rng.choice(COUNTRIES) for c in CITIES}
    plays = {p: rng.choice(INSTRUMENTS) for p in people}
    founder = {o: people[i] for i, o in enumerate(ORGS)}
    year = {o: rng.randint(1890, 2015) for o in ORGS}
    river = {c: rng.choice(LAST) for c in CITIES}

    def person_doc(p):
        return {"title": p, "text": f"{p} was born in {birth[p]}. {p.split()[0]} is known for playing the {plays[p]}."}

    def org_doc(o):
        return {"title": o, "text": f"{o} was founded in {year[o]} by {founder[o]}."}

    def city_doc(c):
        return {"title": c, "text": f"{c} is a town in {country[c]}, on the river {river[c]}."}

    rows = []
    for i in range(n):
        kind = rng.choice(["org_birthplace", "org_instrument", "person_country"])
        if kind == "person_country":
            p = rng.choice(people[len(ORGS):])
            q, a = f"In which country was {p} born?", country[birth[p]]
            sup = [person_doc(p), city_doc(birth[p])]
            pool = [person_doc(x) for x in rng.sample(people, 3) if x != p] + [city_doc(rng.choice(CITIES))]
        else:
            o = rng.choice(ORGS)
            p = founder[o]
            if kind == "org_birthplace":
                q, a = f"Where was the founder of {o} born?", birth[p]
            else:
                q, a = f"Which instrument does the founder of {o} play?", plays[p]
            sup = [org_doc(o), person_doc(p)]
            others = [x for x in ORGS if x != o]
            pool = [org_doc(x) for x in rng.sample(others, 2)] + [person_doc(founder[x]) for x in rng.sample(others, 2)]
        distract = [d for d in pool if d["title"] not in {s["title"] for s in sup}][:4]
        docs = sup + distract
        rng.shuffle(docs)
        rows.append({"id": f"mhqa-{i:04d}", "question": q, "answer": a, "answers": [a], "type": kind,
                     "supporting_docs": sup, "distractor_docs": distract, "docs": docs,
                     "supporting_idx": sorted(docs.index(s) for s in sup)})
    return rows


# ------------------------------------------------------------------------------------------------ babilong
PEOPLE_B = ["Mary", "John", "Sandra", "Daniel"]
PLACES_B = ["kitchen", "garden", "office", "bathroom", "hallway", "bedroom"]
OBJECTS_B = ["football", "apple", "milk"]
MOVES = ["went to the", "journeyed to the", "travelled to the", "moved to the"]
FILLER_SUBJ = ["The old mill", "A grey heron", "The evening wind", "The ferryman", "A quiet lamp", "The north road",
               "The harbour bell", "A pale moon", "The village clock", "An autumn fog"]
FILLER_VERB = ["stood beside", "drifted over", "waited near", "shone upon", "rolled across", "echoed through"]
FILLER_OBJ = ["the frozen marsh.", "the sleeping town.", "the long valley.", "the empty square.", "the dark pines.",
              "the distant hills."]


def _story(rng: random.Random, task: str):
    """bAbI-like facts: people move; for qa2/qa3 they also pick up and drop objects.

    Returns (facts as (text, event)), where (person -> place), holder (object -> person), trail (object -> list of
    (place, fact index) for each move its current holder made since picking it up).
    """
    facts, where, holder, trail = [], {}, {}, {}
    for _ in range(rng.randint(6, 10)):
        p = rng.choice(PEOPLE_B)
        held = [o for o, h in holder.items() if h == p]
        if task != "qa1" and rng.random() < 0.35:
            if held and rng.random() < 0.3:
                o = held[0]
                facts.append((f"{p} dropped the {o}.", ("drop", p, o)))
                holder.pop(o)
                trail.pop(o, None)
                continue
            free = [o for o in OBJECTS_B if o not in holder]
            if free and p in where:
                o = rng.choice(free)
                facts.append((f"{p} picked up the {o}.", ("take", p, o)))
                holder[o], trail[o] = p, []
                continue
        place = rng.choice([x for x in PLACES_B if x != where.get(p)])
        where[p] = place
        facts.append((f"{p} {rng.choice(MOVES)} {place}.", ("move", p, place)))
        for o, h in holder.items():
            if h == p:
                trail[o].append((place, len(facts) - 1))
    return facts, where, holder, trail


def _babi_item(rng: random.Random, task: str):
    """(facts, question, answer, supporting fact indices) or None when the story cannot pose the question."""
    facts, where, holder, trail = _story(rng, task)
    texts = [f[0] for f in facts]
    if task == "qa1":
        p = rng.choice(list(where))
        last = max(i for i, f in enumerate(facts) if f[1][0] == "move" and f[1][1] == p)
        return texts, f"Where is {p}?", where[p], [last]
    cands = list(holder) if task == "qa2" else [o for o in trail if len(trail[o]) >= 2]
    if not cands:
        return None
    o = rng.choice(cands)
    p = holder[o]
    take = max(i for i, f in enumerate(facts) if f[1] == ("take", p, o))
    if task == "qa2":  # object location = its holder's last move; SF: the pick-up and that move
        move = max(i for i, f in enumerate(facts) if f[1][0] == "move" and f[1][1] == p)
        return texts, f"Where is the {o}?", where[p], sorted({take, move})
    (prev_place, prev_i), (cur_place, cur_i) = trail[o][-2], trail[o][-1]
    return texts, f"Where was the {o} before the {cur_place}?", prev_place, [take, prev_i, cur_i]


def build_babilong(rng: random.Random, n_per_task: int = 40) -> list[dict]:
    """BabiLong-style items: the story's facts inserted, in order, among filler sentences.

    Row: ``{id, task, question, answer, facts, supporting_facts (indices into facts), chunks (one sentence each),
    sf_idx (indices into chunks), facts_idx (where each fact landed in chunks)}``.
    """
    rows = []
    for task in ("qa1", "qa2", "qa3"):
        k = 0
        while k < n_per_task:
            item = _babi_item(rng, task)
            if item is None:
                continue
            facts, q, a, sf = item
            n_fill = rng.randint(10, 30)
            filler = [f"{rng.choice(FILLER_SUBJ)} {rng.choice(FILLER_VERB)} {rng.choice(FILLER_OBJ)}" for _ in range(n_fill)]
            slots = sorted(rng.sample(range(n_fill + len(facts)), len(facts)))
            chunks, it_f, it_x = [], iter(facts), iter(filler)
            for j in range(n_fill + len(facts)):
                chunks.append(next(it_f) if j in slots else next(it_x))
            rows.append({"id": f"{task}-{k:03d}", "task": task, "question": q, "answer": a, "facts": facts,
                         "supporting_facts": sf, "chunks": chunks, "facts_idx": slots,
                         "sf_idx": [slots[i] for i in sf]})
            k += 1
    return rows


# ------------------------------------------------------------------------------------------------ personal_prefs
TOPICS = ["how to keep basil alive indoors", "what a hash table is", "how to start running", "why the sky is blue",
          "how to write a cover letter", "what compound interest is", "how to brew green tea", "how vaccines work",
          "how to learn a new language", "what a black hole is", "how to save for a holiday", "how rainbows form",
          "how to fix a squeaky door", "what inflation is", "how to sleep better", "how bees make honey"]
STYLES = {
    "concise": lambda t, k: f"In short: {k}.",
    "detailed": lambda t, k: (f"Here is a full explanation of {t}. The key idea is that {k}. It helps to understand the "
                              f"background first, then the main steps, and finally the common mistakes people make."),
    "bullets": lambda t, k: f"About {t}:\n- Key point: {k}.\n- Start small.\n- Check your progress.",
    "casual": lambda t, k: f"Oh, {t}? Easy! Basically {k}. You've got this :)",
    "formal": lambda t, k: f"Regarding {t}: it should be noted that {k}. This concludes the summary.",
    "example": lambda t, k: f"{k[0].upper() + k[1:]}. For example, imagine a friend asking you about {t} over coffee.",
}
KEYS = ["the details matter less than the main principle", "a simple routine beats a complicated plan",
        "the underlying cause is easy to state", "small consistent steps add up"]
ARCHETYPES = {  # each user archetype ranks the styles; its users prefer higher-ranked styles
    "minimalist": ["concise", "bullets", "formal", "example", "casual", "detailed"],
    "thorough": ["detailed", "example", "formal", "bullets", "concise", "casual"],
    "friendly": ["casual", "example", "concise", "bullets", "detailed", "formal"],
    "structured": ["bullets", "formal", "detailed", "concise", "example", "casual"],
}


def build_personal_prefs(rng: random.Random, users_per_archetype: int = 3, rows_per_user: int = 16) -> list[dict]:
    """Per-user preference pairs; a user's choices follow its archetype's style ranking with 10 % label noise.

    Row: ``{user_id, archetype, split (train/val/test per user), conversation_id, context: [{role, content}], prompt,
    chosen, rejected, chosen_style, rejected_style}``. ``archetype`` is ground truth for analysis, not model input.
    """
    rows = []
    for arch, ranking in ARCHETYPES.items():
        for u in range(users_per_archetype):
            user_id = f"user-{arch}-{u}"
            for r in range(rows_per_user):
                topic, key = rng.choice(TOPICS), rng.choice(KEYS)
                a, b = rng.sample(list(STYLES), 2)
                good, bad = (a, b) if ranking.index(a) < ranking.index(b) else (b, a)
                if rng.random() < 0.1:
                    good, bad = bad, good
                prompt = f"Can you explain {topic}?"
                split = "train" if r < rows_per_user * 5 // 8 else ("val" if r < rows_per_user * 6 // 8 else "test")
                rows.append({"user_id": user_id, "archetype": arch, "split": split,
                             "conversation_id": f"{user_id}-{r:02d}", "context": [{"role": "user", "content": prompt}],
                             "prompt": prompt, "chosen": STYLES[good](topic, key), "rejected": STYLES[bad](topic, key),
                             "chosen_style": good, "rejected_style": bad})
    return rows


# ------------------------------------------------------------------------------------------------ preference_pairs
def build_preference_pairs(seed: int, n_train: int = 400, n_test: int = 100) -> tuple[list[dict], list[dict]]:
    """Correct vs corrupted tiny-reasoner completions: the rejected one has one wrong intermediate result.

    Row: ``{prompt, chosen, rejected, question, answer, wrong_answer}``, prompts in tiny-reasoner's format, so a
    token-level method can find that the preference hinges on a few number tokens.
    """
    import train_tiny_reasoner as ttr
    from rlcore.io import read_jsonl

    rng = random.Random(seed)
    test_file = DATA / "arithmetic" / "test.jsonl"  # written by train_tiny_reasoner.py; its questions stay unseen
    held_out = {r["question"] for r in read_jsonl(test_file, required=("question",))}
    problems = ttr.make_split(seed + 11, n_train + n_test, exclude=held_out)
    rows = []
    for p in problems:
        steps = p["reasoning"].split(" ")
        last_eq = max(i for i, s in enumerate(steps) if s.count("=") >= 1 and s.rstrip(".").split("=")[-1].isdigit()
                      and any(op in s for op in "+-*"))
        head, value = steps[last_eq].rstrip(".").rsplit("=", 1)
        wrong = str(int(value) + rng.choice([-3, -2, -1, 1, 2, 3]))
        if int(wrong) < 0:
            wrong = str(int(value) + 1)
        bad = steps[:last_eq] + [f"{head}={wrong}."] + steps[last_eq + 1:]
        rows.append({"prompt": ttr.build_prompt(p["question"]), "chosen": ttr.completion_text(p),
                     "rejected": f"{' '.join(bad)}</think> \\boxed{{{wrong}}}", "question": p["question"],
                     "answer": p["answer"], "wrong_answer": wrong})
    return rows[:n_train], rows[n_train:]


# ------------------------------------------------------------------------------------------------ speech_prosody
EMOTIONS = {  # emotion -> (F0 range Hz, dBFS range, syllables/s range, glide in semitones)
    "angry": ((200, 260), (-12, -8), (5.5, 7.0), (-2, 2)),
    "happy": ((220, 300), (-18, -13), (4.5, 6.0), (3, 6)),
    "sad": ((100, 140), (-32, -26), (2.0, 3.0), (-5, -3)),
    "neutral": ((130, 180), (-24, -19), (3.5, 4.5), (-1, 1)),
}
SR = 16000


def _tone(f0_start, f0_end, dur, rate):
    """Harmonic tone (5 partials, 1/k amplitudes) with a linear-in-semitones glide and syllable-rate modulation."""
    import numpy as np

    t = np.arange(int(dur * SR)) / SR
    st = 12 * np.log2(f0_end / f0_start) * t / dur
    f0 = f0_start * 2 ** (st / 12)  # (T,) Hz
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 6))
    env = np.abs(np.sin(np.pi * rate * t)) ** 0.6  # (T,) one bump per syllable: |sin| has period 1/rate
    return x * env, f0


def build_speech_prosody(rng: random.Random, clips_per_emotion: int = 5) -> list[dict]:
    """Speech-like clips (silence, voiced span, silence) with known F0, glide, loudness and syllable rate.

    Row: ``{id, audio_path (relative to the dataset folder), emotion, duration_s, speech_start_s, speech_end_s,
    f0_start_hz, f0_end_hz, f0_median_hz, glide_semitones, intonation, energy_dbfs, syllable_rate_hz, n_syllables,
    transcription, pitch_level, energy_level, speed_level}``; levels are absolute thresholds (low/normal/high).
    """
    import numpy as np
    import soundfile as sf

    out = DATA / "speech_prosody"
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rows, i = [], 0
    for emotion, ((f_lo, f_hi), (db_lo, db_hi), (r_lo, r_hi), (g_lo, g_hi)) in EMOTIONS.items():
        for _ in range(clips_per_emotion):
            f0s, rate, glide = rng.uniform(f_lo, f_hi), rng.uniform(r_lo, r_hi), rng.uniform(g_lo, g_hi)
            n_syl = rng.randint(5, 8)
            speech = n_syl / rate
            voiced, f0 = _tone(f0s, f0s * 2 ** (glide / 12), speech, rate)
            target_db = rng.uniform(db_lo, db_hi)
            voiced *= 10 ** (target_db / 20) / np.sqrt(np.mean(voiced**2))
            lead, tail = rng.uniform(0.15, 0.3), rng.uniform(0.15, 0.3)
            noise = np.random.default_rng(rng.randrange(2**32)).normal(0, 10 ** (-60 / 20), int((lead + speech + tail) * SR))
            x = noise.copy()
            x[int(lead * SR): int(lead * SR) + len(voiced)] += voiced
            path = f"audio/clip_{i:03d}_{emotion}.wav"
            sf.write(out / path, x.astype(np.float32), SR, subtype="PCM_16")
            energy = 20 * np.log10(np.sqrt(np.mean(voiced**2)))
            med = float(np.median(f0))
            rows.append({
                "id": f"clip_{i:03d}", "audio_path": path, "emotion": emotion, "sample_rate": SR,
                "duration_s": round(len(x) / SR, 3), "speech_start_s": round(lead, 3),
                "speech_end_s": round(lead + speech, 3), "f0_start_hz": round(f0s, 1),
                "f0_end_hz": round(float(f0[-1]), 1), "f0_median_hz": round(med, 1),
                "glide_semitones": round(glide, 2),
                "intonation": "rising" if glide >= 2 else ("falling" if glide <= -2 else "level"),
                "energy_dbfs": round(float(energy), 2), "syllable_rate_hz": round(rate, 2), "n_syllables": n_syl,
                "transcription": " ".join(rng.choice(["la", "na", "ma", "ta", "da"]) for _ in range(n_syl)),
                "pitch_level": "low" if med < 150 else ("normal" if med < 210 else "high"),
                "energy_level": "low" if energy < -22 else ("normal" if energy < -14 else "high"),
                "speed_level": "slow" if rate < 3.2 else ("normal" if rate < 5.0 else "fast"),
            })
            i += 1
    _write("speech_prosody", rows, "clips")
    return rows


# ------------------------------------------------------------------------------------------------ main
def split_rows(rows: list[dict], n_test: int, rng: random.Random) -> tuple[list[dict], list[dict]]:
    idx = list(range(len(rows)))
    rng.shuffle(idx)
    test = set(idx[:n_test])
    return [r for i, r in enumerate(rows) if i not in test], [r for i, r in enumerate(rows) if i in test]


BUILDERS = ["multihop_qa", "babilong", "personal_prefs", "preference_pairs", "speech_prosody"]


def build(name: str, seed: int) -> None:
    rng = random.Random(f"{seed}-{name}")  # one stream per dataset: rebuilding one never changes another
    if name == "multihop_qa":
        train, test = split_rows(build_multihop_qa(rng), 40, rng)
        _write(name, train, "train"), _write(name, test, "test")
    elif name == "babilong":
        train, test = split_rows(build_babilong(rng), 30, rng)
        _write(name, train, "train"), _write(name, test, "test")
    elif name == "personal_prefs":
        _write(name, build_personal_prefs(rng), "pairs")
    elif name == "preference_pairs":
        train, test = build_preference_pairs(seed)
        _write(name, train, "train"), _write(name, test, "test")
    elif name == "speech_prosody":
        build_speech_prosody(rng)
    else:
        raise ValueError(f"--only: unknown dataset {name!r}; choose from {BUILDERS}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", action="append", default=None, help=f"build only these (repeatable): {BUILDERS}")
    args = ap.parse_args(argv)
    for name in args.only or BUILDERS:
        build(name, args.seed)
        size = sum(p.stat().st_size for p in (DATA / name).rglob("*") if p.is_file())
        print(f"{name}: {size / 1e3:.0f} KB in {DATA / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
