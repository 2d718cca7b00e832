r"""KeyChain: hide the true question behind chains of id:value pairs scattered through a long context (spec step 3).

``num_chains = chains_per_1k * L // 1024`` chains of ``num_uuids`` ids each; chain ``k``'s pairs are
``{"id_j": "id_{j+1}"}`` for consecutive ids plus ``{"id_last": "<question>"}``. Chain 0 ends in the true question,
chain ``i >= 1`` in ``distract_questions[i]`` (other items' questions, as the official code indexes them). All
pairs are shuffled and each is inserted, followed by ".", right after a distinct stopper character (``\n``, ``.``
or ``?``) of the filled context, prefixed by a space unless the stopper is a newline.
"""

from __future__ import annotations

import dataclasses
import random
import re
import uuid
from collections.abc import Sequence

__all__ = [
    "make_id",
    "make_chains",
    "format_pair",
    "chain_pairs",
    "find_stoppers",
    "insert_pairs",
    "remove_pairs",
    "follow_chain",
    "KeyChain",
    "compute_num_chains",
]

STOPPERS = re.compile(r"[\n.?]")


def compute_num_chains(max_seq_length: int, chains_per_1k: int = 4) -> int:
    """Number of chains, :math:`4 L / 1024` (integer division, as the code): 64 at 16K, 512 at 128K.

    Example:
        >>> compute_num_chains(16384), compute_num_chains(131072)
        (64, 512)
    """
    return chains_per_1k * max_seq_length // 1024


def make_id(rng: random.Random, id_format: str = "hex8") -> str:
    """A uuid4-shaped id drawn from ``rng`` (reproducible): ``full36`` canonical, ``hex32``, or ``hex8`` prefix.

    Example:
        >>> len(make_id(random.Random(0), "full36")), len(make_id(random.Random(0), "hex32"))
        (36, 32)
    """
    u = uuid.UUID(int=rng.getrandbits(128), version=4)
    if id_format == "full36":
        return str(u)
    if id_format == "hex32":
        return u.hex
    if id_format == "hex8":
        return u.hex[:8]
    raise ValueError(f"id_format must be one of ['full36', 'hex32', 'hex8'], got {id_format!r}")


def make_chains(num_chains: int, num_uuids: int, rng: random.Random, id_format: str = "hex8") -> list[list[str]]:
    """``num_chains`` chains of ``num_uuids`` ids, all ids distinct (a colliding draw is redrawn)."""
    if num_chains < 1 or num_uuids < 1:
        raise ValueError(f"num_chains and num_uuids must be >= 1, got {num_chains}, {num_uuids}")
    seen: set[str] = set()
    chains = []
    for _ in range(num_chains):
        chain = []
        while len(chain) < num_uuids:
            i = make_id(rng, id_format)
            if i not in seen:
                seen.add(i)
                chain.append(i)
        chains.append(chain)
    return chains


def format_pair(key: str, value: str) -> str:
    """The pair text exactly as the official generator writes it: ``{"key": "value"}`` (no JSON escaping)."""
    return f'{{"{key}": "{value}"}}'


def chain_pairs(chain: Sequence[str], end_with: str) -> list[str]:
    """The ``len(chain)`` pair strings of one chain: consecutive links, then last id -> ``end_with``."""
    pairs = [format_pair(chain[j], chain[j + 1]) for j in range(len(chain) - 1)]
    pairs.append(format_pair(chain[-1], end_with))
    return pairs


def find_stoppers(context: str) -> list[int]:
    r"""Offsets of every ``\n``, ``.`` and ``?`` in ``context``."""
    return [m.start() for m in STOPPERS.finditer(context)]


def insert_pairs(context: str, pairs: Sequence[str], rng: random.Random, where: str = "context") -> tuple[str, list[int]]:
    """Insert each pair (plus ".") after its own randomly chosen stopper; returns the text and the stopper offsets.

    Offsets are sampled without replacement; insertion goes from the largest offset down so earlier ones stay valid.

    Raises:
        ValueError: fewer stoppers than pairs (the message names ``where``).
    """
    stoppers = find_stoppers(context)
    if len(stoppers) < len(pairs):
        raise ValueError(f"{where}: not enough stoppers ('\\n', '.', '?') to insert the KeyChain: found "
                         f"{len(stoppers)}, need {len(pairs)}; use a longer context or fewer chains")
    positions = [stoppers[i] for i in rng.sample(range(len(stoppers)), len(pairs))]
    pieces = []
    prev = len(context)
    for pos, pair in sorted(zip(positions, pairs), reverse=True):
        sep = "" if context[pos] == "\n" else " "
        pieces.append(context[pos + 1: prev])
        pieces.append(f"{sep}{pair}.")
        prev = pos + 1
    pieces.append(context[:prev])
    return "".join(reversed(pieces)), positions


def remove_pairs(text: str, pairs: Sequence[str]) -> str:
    """Undo :func:`insert_pairs`: drop each ``pair + "."`` and its leading space (the stopper is never a space).

    Raises:
        ValueError: a pair is not found exactly once.
    """
    for pair in pairs:
        piece = pair + "."
        at = text.find(piece)
        if at < 0 or text.find(piece, at + 1) >= 0:
            raise ValueError(f"pair {pair!r} occurs {text.count(piece)} times, expected once")
        start = at - 1 if at > 0 and text[at - 1] == " " else at
        text = text[:start] + text[at + len(piece):]
    return text


def follow_chain(text: str, head: str, max_hops: int = 64) -> list[str]:
    """Follow ``{"a": "b"}`` links in ``text`` from ``head``; returns the visited values (the last is the end).

    This is the reasoning the model must do; tests use it to check the true question is reachable.
    """
    links = dict(re.findall(r'\{"([^"]+)": "([^"]*)"\}', text))
    out, cur = [], head
    for _ in range(max_hops):
        if cur not in links:
            break
        cur = links[cur]
        out.append(cur)
    return out


@dataclasses.dataclass
class KeyChain:
    """The chains for one item and their insertion into its filled context."""

    chains: list[list[str]]
    pairs: list[str]  # shuffled, in insertion-draw order
    positions: list[int]  # stopper offsets in the filled context, aligned with ``pairs``
    text: str

    @property
    def head(self) -> str:
        """Chain 0's first id: the prompt names it as the start."""
        return self.chains[0][0]

    @classmethod
    def build(cls, context: str, question: str, distract_questions: Sequence[str], num_chains: int, num_uuids: int,
              rng: random.Random, id_format: str = "hex8", where: str = "context") -> KeyChain:
        """Make the chains, shuffle all pairs and insert them into ``context``.

        Raises:
            ValueError: fewer than ``num_chains`` distractor questions, or too few stoppers.
        """
        if len(distract_questions) < num_chains:
            raise ValueError(f"{where}: {num_chains} chains need at least {num_chains} distractor questions, got "
                             f"{len(distract_questions)} (the QA set has too few other items)")
        chains = make_chains(num_chains, num_uuids, rng, id_format)
        pairs: list[str] = []
        for k, chain in enumerate(chains):
            pairs += chain_pairs(chain, question if k == 0 else distract_questions[k])
        rng.shuffle(pairs)
        text, positions = insert_pairs(context, pairs, rng, where)
        return cls(chains, pairs, positions, text)
