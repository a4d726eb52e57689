"""The encoder chapter's experiments (BERT family), one module per part of the chapter:

* ``pretraining``  masked-LM (RoBERTa's recipe) and ELECTRA pre-training on the standard-library
                   docstrings and unlabelled task sentences, and the checkpoints trained ahead of
                   time (``python -m course_lib.recipes.encoder mlm|electra`` rebuilds them);
* ``tasks``        the sentiment and NER sentences: unlabelled for pre-training, labelled and
                   WordPiece-tokenised for fine-tuning;
* ``finetuning``   a task head on a pre-trained or a fresh encoder, trained on few labels, scored
                   by accuracy or entity F1 (seqeval), with context-free baselines;
* ``transfer``     the comparison of the three initialisations over seeds, and all-MiniLM-L6-v2
                   fine-tuned beside them, run ahead of time
                   (``python -m course_lib.recipes.encoder finetune``);
* ``minilm``       the real all-MiniLM-L6-v2 weights in ``Encoder``: sentence embeddings.

The chapter and its results test use them through this package
(``from course_lib.recipes import encoder as recipe``).
"""
from .finetuning import (INITS, bag_of_words_accuracy, classification_loss, classify, fine_tune,
                         most_frequent_tag_f1, new_classifier, score, task_data)
from .minilm import embed_sentences, load_minilm
from .pretraining import (CHECKPOINT_STEPS, CHECKPOINTS, SPECIALS, MaskingCollate, MLMCorpus, electra_metrics,
                          fill_masks, load_checkpoint, masked_accuracy, mlm_corpus, mlm_corpus_split, mlm_datasets,
                          mlm_loss, mlm_metrics, new_electra, new_mlm_model, roc_auc, save_checkpoint, summary,
                          tiny_config, train_electra, train_mlm)
from .tasks import TASKS, check_disjoint, task_texts, wordpiece_task
from .transfer import NUM_TRAIN, RESULTS, SETTINGS, load_transfer_results, minilm_sentiment, transfer_experiment

__all__ = [
    "CHECKPOINT_STEPS", "CHECKPOINTS", "INITS", "MLMCorpus", "MaskingCollate", "NUM_TRAIN", "RESULTS", "SETTINGS",
    "SPECIALS", "TASKS", "bag_of_words_accuracy", "check_disjoint", "classification_loss", "classify",
    "electra_metrics", "embed_sentences", "fill_masks", "fine_tune", "load_checkpoint", "load_minilm",
    "load_transfer_results", "masked_accuracy", "minilm_sentiment", "mlm_corpus", "mlm_corpus_split",
    "mlm_datasets", "mlm_loss", "mlm_metrics", "most_frequent_tag_f1", "new_classifier", "new_electra",
    "new_mlm_model", "roc_auc", "save_checkpoint", "score", "summary", "task_data", "task_texts", "tiny_config",
    "train_electra", "train_mlm", "transfer_experiment", "wordpiece_task",
]
