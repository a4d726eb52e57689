"""The encoder-decoder chapter's experiments (``book/seq2seq.md``), one module per part of the chapter:

* ``from_scratch``  the English -> French/Korean number translator and the text-to-text model
                    (summaries and questions), trained from scratch, and their helpers: greedy and
                    beam decoding, exact match, cross-attention weights, a real docstring for demos;
* ``tasks``         one word tokenizer for everything below; the labelled translation and
                    summarization pairs; their unlabelled text for pre-training;
* ``pretraining``   span corruption (T5), text infilling (BART) and gap sentences (Pegasus) on the
                    standard-library docstrings and the unlabelled task text, each pre-training the
                    same small T5-style model; the shipped checkpoints
                    (``python -m course_lib.recipes.seq2seq pretrain t5|bart|pegasus``);
* ``finetuning``    one start (scratch or a checkpoint) fine-tuned on few labelled pairs, scored with
                    sacrebleu (BLEU, chrF), rouge-score (ROUGE-1/2/L) and exact match;
* ``transfer``      the comparison of the starts (scratch, T5's and BART's checkpoints): a learning
                    rate chosen per start on dev pairs, then three seeds; run ahead of time
                    (``python -m course_lib.recipes.seq2seq finetune``);
* ``trained_ahead`` the translator and the text-to-text run of ``from_scratch``, trained ahead of
                    time and loaded by the chapter
                    (``python -m course_lib.recipes.seq2seq translator``, ``... text-to-text``).

The chapter and its results test use them through this package
(``from course_lib.recipes import seq2seq as recipe``).
"""
from .finetuning import INITS, fine_tune, loss_by_position, new_model, score, task_data
from .from_scratch import (TRANSLATION_TARGETS, cross_attention_weights, decode_translation, demo_document, exact_match,
                           exact_match_by_group, generate_text, language_tag, qa_ambiguity, seq2seq_loss,
                           small_config, text_to_text_data, train_text_to_text, train_translation,
                           translation_data)
from .pretraining import (CHECKPOINT_STEPS, CHECKPOINTS, OBJECTIVES, SENTINELS, Seq2SeqCorpus, checkpoint_vocab,
                          denoising_data, docstring_sentences, fill_sentinels, held_out_document, load_pretrained,
                          pack, pretrain, pretraining_corpus, read_checkpoint, save_checkpoint, t5_config)
from .tasks import NUM_DEV, PREFIXES, TASKS, check_disjoint, task_pairs, task_texts, tokenize
from .trained_ahead import (TEXT_TO_TEXT, TRANSLATOR, load_text_to_text, load_translator, save_text_to_text,
                            save_translator)
from .transfer import (COMPARED, LR_GRID, NUM_TRAIN, RESULTS, SELECT_BY, SETTINGS, choose_lr, load_transfer_results,
                       transfer_experiment)

__all__ = [
    "CHECKPOINTS", "CHECKPOINT_STEPS", "COMPARED", "INITS", "LR_GRID", "NUM_DEV", "NUM_TRAIN", "OBJECTIVES",
    "PREFIXES", "RESULTS", "SELECT_BY", "SENTINELS", "SETTINGS", "Seq2SeqCorpus", "TASKS", "TEXT_TO_TEXT",
    "TRANSLATION_TARGETS", "TRANSLATOR", "check_disjoint", "checkpoint_vocab", "choose_lr",
    "cross_attention_weights", "decode_translation", "demo_document", "denoising_data", "docstring_sentences",
    "exact_match", "exact_match_by_group", "fill_sentinels", "fine_tune", "generate_text", "held_out_document",
    "language_tag", "load_pretrained", "load_text_to_text", "load_transfer_results", "load_translator",
    "loss_by_position", "new_model", "pack", "pretrain", "pretraining_corpus", "qa_ambiguity",
    "read_checkpoint", "save_checkpoint", "save_text_to_text", "save_translator", "score", "seq2seq_loss",
    "small_config", "task_data", "task_pairs", "task_texts", "text_to_text_data", "tokenize",
    "train_text_to_text", "train_translation", "transfer_experiment", "translation_data",
]
