from typing import Optional

from cog import BasePredictor, Input, Path

from classifier import DEFAULT_EXAMPLES, NaiveBayes


class Predictor(BasePredictor):
    def setup(self, weights: Optional[Path] = None) -> None:
        # A trained version gets its training's weights here (COG_WEIGHTS); the
        # untrained one knows a little sentiment.
        if weights is not None:
            self.model = NaiveBayes.load(weights)
            print(f"loaded weights: labels {sorted(self.model.docs)}")
        else:
            self.model = NaiveBayes.fit(DEFAULT_EXAMPLES)

    def predict(self, text: str = Input(description="The text to classify")) -> str:
        return self.model.classify(text)
