from cog import BasePredictor, Input


class Predictor(BasePredictor):
    def setup(self) -> None:
        self.greeting = "hello"

    def predict(
        self,
        text: str = Input(description="Who or what to greet", default="world"),
    ) -> str:
        print(f"greeting {text!r}")
        return f"{self.greeting} {text}"
