"""The decoder chapter's experiments (GPT family), one module per part of the chapter:

* ``tokenizer``    the course's byte-level BPE trained on the docstrings, its merges shipped
                   (``python -m course_lib.recipes.decoder bpe`` relearns them);
* ``pretraining``  the chapter's GPT pre-trained on BPE ids of the docstrings with few-shot
                   documents mixed in, its loss per token and per byte against count baselines,
                   and the checkpoint trained ahead (``python -m course_lib.recipes.decoder gpt``);
* ``icl``          the few-shot documents and the held-out maps that score in-context learning;
* ``lookup``       a small GPT trained on those documents, which does learn the map from the
                   prompt (``python -m course_lib.recipes.decoder lookup``);
* ``ctrl``         CTRL-style control codes, and rough measures of generated text;
* ``chat``         a chat template with the loss on the assistant's turns, fine-tuned from the
                   checkpoint and from scratch (``python -m course_lib.recipes.decoder chat``).

The chapter and its results test use them through this package
(``from course_lib.recipes import decoder as recipe``).
"""
from .chat import (CHAT_MAX_NUMBER, CHAT_RESULTS, CHAT_STEPS, QUESTIONS, ChatDataset, answer, chat_accuracy,
                   chat_example, chat_experiment, chat_prompt, load_chat_results, train_chat)
from .ctrl import (MAX_NUMBER, ControlCodeDataset, known_word_share, number_text, number_word_share,
                   time_generation, train_ctrl)
from .icl import (HELD_OUT_LABELS, INPUTS, SHOTS, TRAIN_LABELS, WORDS_PER_MAP, few_shot_accuracy, few_shot_answers,
                  few_shot_documents, few_shot_prompts, pair_line, random_map, shots_curve)
from .lookup import (LOOKUP_BLOCK_SIZE, LOOKUP_CHECKPOINT, LOOKUP_DOC_SHARE, LOOKUP_STEPS, accuracy_by_seen,
                     load_lookup_checkpoint, lookup_config, new_lookup_gpt, save_lookup_checkpoint,
                     train_lookup_gpt)
from .pretraining import (BLOCK_SIZE, CHECKPOINT, CHECKPOINT_STEPS, FEW_SHOT_SHARE, MixedWindows, docs_ids,
                          gpt_config, lm_metrics, load_checkpoint, new_gpt, next_token_loss, save_checkpoint,
                          train_gpt)
from .tokenizer import BPE_FILE, SPECIAL_TOKENS, VOCAB_SIZE, bytes_per_token, load_bpe, save_bpe, train_docs_bpe

__all__ = [
    "BLOCK_SIZE", "BPE_FILE", "CHAT_MAX_NUMBER", "CHAT_RESULTS", "CHAT_STEPS", "CHECKPOINT", "CHECKPOINT_STEPS",
    "ChatDataset", "ControlCodeDataset", "FEW_SHOT_SHARE", "HELD_OUT_LABELS", "INPUTS", "LOOKUP_BLOCK_SIZE",
    "LOOKUP_CHECKPOINT", "LOOKUP_DOC_SHARE", "LOOKUP_STEPS", "MAX_NUMBER", "MixedWindows", "QUESTIONS", "SHOTS",
    "SPECIAL_TOKENS", "TRAIN_LABELS", "VOCAB_SIZE", "WORDS_PER_MAP", "accuracy_by_seen", "answer",
    "bytes_per_token", "chat_accuracy", "chat_example", "chat_experiment", "chat_prompt", "docs_ids",
    "few_shot_accuracy", "few_shot_answers", "few_shot_documents", "few_shot_prompts", "gpt_config",
    "known_word_share", "lm_metrics", "load_bpe", "load_chat_results", "load_checkpoint", "load_lookup_checkpoint",
    "lookup_config", "new_gpt", "new_lookup_gpt", "next_token_loss", "number_text", "number_word_share",
    "pair_line", "random_map", "save_bpe", "save_checkpoint", "save_lookup_checkpoint", "shots_curve",
    "time_generation", "train_chat", "train_ctrl", "train_docs_bpe", "train_gpt", "train_lookup_gpt",
]
