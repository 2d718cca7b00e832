import pytest
from emotionthinker.synth import f0_track, harmonic_voice

SR = 16000


@pytest.fixture(scope="session")
def glide_features():
    """Prosody of 1.2 s glides (computed once per session: pYIN is the slow part)."""
    from emotionthinker.prosody import extract_prosody

    out = {}
    for kind in ("rising", "falling", "rising-falling"):
        n = int(1.2 * SR)
        y = harmonic_voice(f0_track(kind, n, 150.0, span_st=8.0), 1.2, syllable_hz=4.0)
        out[kind] = extract_prosody(y)
    return out

