from rlcore.chat import fit_messages, fold_system, render_chat, template_supports_system
from rlcore.testing import tiny_tokenizer

MSGS = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]


class NoSystemTokenizer:
    """A template that raises on a system turn (like builtin:tiny-reasoner's)."""

    chat_template = "x"

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        if any(m["role"] == "system" for m in messages):
            raise ValueError("System role not supported")
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"


def test_fold_system_hand_cases():
    assert fold_system(MSGS) == [{"role": "user", "content": "S\n\nU"}]
    two = [{"role": "system", "content": "A"}, {"role": "system", "content": "B"}, {"role": "user", "content": "U"}]
    assert fold_system(two) == [{"role": "user", "content": "A\n\nB\n\nU"}]
    assert fold_system([{"role": "user", "content": "U"}]) == [{"role": "user", "content": "U"}]
    assert MSGS[1]["content"] == "U"  # inputs are never mutated


def test_probe_and_fit():
    tok = tiny_tokenizer()
    assert template_supports_system(tok) and not template_supports_system(NoSystemTokenizer())
    assert not template_supports_system(None)
    assert fit_messages(MSGS, tok) == MSGS
    assert fit_messages(MSGS, NoSystemTokenizer()) == [{"role": "user", "content": "S\n\nU"}]


def test_render_chat_reports_folding():
    assert render_chat(NoSystemTokenizer(), MSGS) == ("<user>S\n\nU<assistant>", True)
    text, folded = render_chat(tiny_tokenizer(), MSGS)
    assert not folded and text.startswith("<|im_start|>system\nS")
    assert render_chat(None, MSGS) == ("S\n\nU", True)


def test_encode_prompts_folds_for_templates_without_system():
    from rlcore.rollout import encode_prompts

    class Tok(NoSystemTokenizer):
        def __call__(self, text, add_special_tokens=True):
            return type("E", (), {"input_ids": [ord(c) for c in text]})()

    (ids,) = encode_prompts(Tok(), None, None, messages=[MSGS])
    assert "".join(map(chr, ids)) == "<user>S\n\nU<assistant>"
