import time

from cog import BasePredictor, ConcatenateIterator, Input


class Predictor(BasePredictor):
    def predict(
        self,
        text: str = Input(
            description="Text to stream back",
            default="Vendo streams each token to the client as soon as the model yields it.",
        ),
        delay: float = Input(description="Seconds between tokens", default=0.05, ge=0, le=2),
    ) -> ConcatenateIterator[str]:
        """Yields the input back one word at a time, like a language model would."""
        for i, word in enumerate(text.split(" ")):
            if delay:
                time.sleep(delay)
            yield word if i == 0 else " " + word
