"""Type stubs of the native module (crates/python/src); the public API is in the package's
Python files, which are typed too."""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

class AttendError(Exception):
    """An error of the engine, with the message the command line prints."""

def set_threads(threads: int) -> None: ...
def threads() -> int: ...

RawTranslation = Tuple[List[str], str, float, float, bytes, List[str], List[str]]

class Engine:
    def __init__(self, model_dir: str, checkpoint: str = "best") -> None: ...
    @property
    def beam(self) -> int: ...
    @property
    def alpha(self) -> float: ...
    @property
    def source_limit(self) -> int: ...
    def translate(
        self,
        sources: Sequence[Union[str, Sequence[str]]],
        beam: int,
        alpha: float,
        max_length: Optional[int] = None,
        attention: bool = False,
    ) -> List[RawTranslation]: ...
    def tokenize(self, text: str) -> List[str]: ...
    def explain(self, sentence: str) -> str: ...

def train(
    out: str,
    config: Optional[str] = None,
    config_json: Optional[str] = None,
    sets: Sequence[str] = ...,
    resume: bool = False,
    progress: Optional[Callable[[str, Any, Any], None]] = None,
) -> str: ...
def heat_map(
    title: str,
    rows: Sequence[str],
    columns: Sequence[str],
    weights: Sequence[float],
    format: str,
    scale: Optional[Tuple[float, float]] = None,
) -> Union[bytes, str]: ...
def save_heat_map(
    path: str,
    title: str,
    rows: Sequence[str],
    columns: Sequence[str],
    weights: Sequence[float],
    scale: Optional[Tuple[float, float]] = None,
) -> None: ...
def score(hyps: Sequence[str], refs: Sequence[str]) -> Dict[str, Any]: ...
