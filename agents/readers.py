"""`HFReader`: a transformers text model as the VEPA reader of `EvidenceDescription-v0`.

The reader answers a question from the policy's description alone (it never sees the image);
`grounding_gym.readers.Reader` is the protocol, `RuleReader` the model-free default. This one
wraps any causal LM with a chat template (e.g. Qwen2.5-1.5B-Instruct):

* Multiple choice: ONE forward pass; the answer is the option letter whose first token has the
  highest next-token logit after the prompt (no sampling, deterministic). With
  `abstain_margin > 0`, a top-two gap below the margin (in nats of log-probability) returns
  `"?"` ("cannot tell"), which the env scores as wrong.
* Free form (`options=None`): greedy generation of at most `max_new_tokens` tokens.

    from agents.readers import HFReader
    env = gym.make("EvidenceDescription-v0", reader=HFReader("Qwen/Qwen2.5-1.5B-Instruct",
    device="cuda"))
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

try:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
except ImportError as exc:  # pragma: no cover - exercised only without the agents extra
    raise ImportError(
        f"agents.readers needs torch and transformers ({exc}); `pip install "
        "'grounding-gym[agents]'`"
    ) from exc

from grounding_gym.readers import UNKNOWN

__all__ = ["HFReader", "READER_SYSTEM_PROMPT"]

READER_SYSTEM_PROMPT = (
    "You cannot see the image. Answer the question using only the description you are given. "
    "If the description does not settle it, guess."
)


class HFReader:
    """A causal LM answering from a description (see the module docstring).

    Args:
        model_name_or_path: checkpoint for `AutoModelForCausalLM` / `AutoTokenizer`.
        device: "cpu", "cuda", ... (default: CUDA when available).
        dtype: weights dtype ("float32", "bfloat16", "float16" or a torch.dtype).
        max_new_tokens: budget of free-form answers.
        abstain_margin: multiple choice: answer "?" when the best letter beats the second by
            less than this (log-prob, nats); 0 never abstains.
        system_prompt: the reader's instructions.
        model: an already-built model (skips loading).
        tokenizer: an already-built tokenizer (skips loading).
    """

    def __init__(
        self,
        model_name_or_path: str | None = None,
        *,
        device: str | None = None,
        dtype: str | torch.dtype = "float32",
        max_new_tokens: int = 16,
        abstain_margin: float = 0.0,
        system_prompt: str = READER_SYSTEM_PROMPT,
        model: Any = None,
        tokenizer: Any = None,
    ):
        if model is None and model_name_or_path is None:
            raise ValueError("HFReader needs model_name_or_path or model=")
        if abstain_margin < 0:
            raise ValueError(f"abstain_margin must be >= 0, got {abstain_margin}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        torch_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        self.tokenizer = (
            tokenizer
            if tokenizer is not None
            else AutoTokenizer.from_pretrained(model_name_or_path)
        )
        if model is None:
            model = AutoModelForCausalLM.from_pretrained(model_name_or_path, dtype=torch_dtype).to(
                self.device
            )
        self.model = model.eval()
        self.max_new_tokens = int(max_new_tokens)
        self.abstain_margin = float(abstain_margin)
        self.system_prompt = system_prompt

    def prompt(self, question: str, options: Sequence[str] | None, description: str) -> str:
        """The reader's chat prompt, generation prompt included."""
        lines = [f"Description: {description.strip()}", f"Question: {question.strip()}"]
        if options:
            lines.append("Options:")
            lines += [f"({string.ascii_uppercase[i]}) {text}" for i, text in enumerate(options)]
            lines.append("Answer with the option's letter only.")
        else:
            lines.append("Answer in a few words.")
        messages = [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": "\n".join(lines)},
        ]
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        return f"{self.system_prompt}\n\n" + "\n".join(lines) + "\nAnswer:"

    def letter_scores(
        self, question: str, options: Sequence[str], description: str
    ) -> torch.Tensor:
        """(n_options,) log-probs of each letter's first token as the next token."""
        ids = self.tokenizer(
            self.prompt(question, options, description),
            add_special_tokens=False,
            return_tensors="pt",
        )
        with torch.no_grad():
            logits = self.model(**ids.to(self.device)).logits[0, -1].float()
        logp = torch.log_softmax(logits, dim=-1)
        letters = [
            self.tokenizer(string.ascii_uppercase[i], add_special_tokens=False)["input_ids"][0]
            for i in range(len(options))
        ]
        return logp[torch.tensor(letters, device=logp.device)].cpu()

    def answer(self, question: str, options: Sequence[str] | None, description: str) -> str:
        """An option letter, `"?"` (abstained), or a short free-form answer."""
        if options:
            scores = self.letter_scores(question, options, description)
            top = torch.topk(scores, k=min(2, len(options)))
            if (
                self.abstain_margin
                and len(options) > 1
                and float(top.values[0] - top.values[1]) < self.abstain_margin
            ):
                return UNKNOWN
            return string.ascii_uppercase[int(top.indices[0])]
        ids = self.tokenizer(
            self.prompt(question, options, description),
            add_special_tokens=False,
            return_tensors="pt",
        )
        ids = ids.to(self.device)
        with torch.no_grad():
            out = self.model.generate(
                **ids,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            )
        text = self.tokenizer.decode(
            out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True
        ).strip()
        return text or UNKNOWN
