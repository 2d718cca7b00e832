"""P-GenRM: personalised generative reward model with test-time user-based scaling (ICLR 2026)."""

from .chain_parser import parse_chain, try_parse_chain
from .evaluation_chain import ChainParseError, HistoryPair, ParsedChain, ScoreRequest, build_messages
from .prototypes import PrototypeIndex, SentenceEmbedder
from .scaling import PRESETS, TestTimeScaler
from .scoring import GenRMScorer

__version__ = "0.1.0"
__all__ = ["ChainParseError", "HistoryPair", "ParsedChain", "ScoreRequest", "build_messages", "parse_chain",
           "try_parse_chain",
           "PrototypeIndex", "SentenceEmbedder", "PRESETS", "TestTimeScaler", "GenRMScorer"]
