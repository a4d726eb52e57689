"""The encoder chapter's experiments (BERT family), one module per part of the chapter:

* ``pretraining``  masked-LM (RoBERTa's recipe) and ELECTRA pre-training on the standard-library
                   docstrings, and the checkpoints trained ahead of time
                   (``python -m course_lib.recipes.encoder mlm|electra`` rebuilds them);
* ``finetuning``   sentence classification (sentiment) and token classification (NER) with
                   their context-free baselines;
* ``minilm``       the real all-MiniLM-L6-v2 weights in ``Encoder``: sentence embeddings.

The chapter and its results test use them through this package
(``from course_lib.recipes import encoder as recipe``).
"""
from .finetuning import (bag_of_words_accuracy, classify, most_frequent_tag_f1, token_classification_loss,
                         train_ner, train_sentiment)
from .minilm import embed_sentences, load_minilm
from .pretraining import (CHECKPOINT_STEPS, CHECKPOINTS, SPECIALS, MaskingCollate, MLMCorpus, electra_metrics,
                          fill_masks, load_checkpoint, masked_accuracy, mlm_corpus, mlm_corpus_split, mlm_datasets,
                          mlm_loss, mlm_metrics, new_electra, new_mlm_model, roc_auc, save_checkpoint, summary,
                          tiny_config, train_electra, train_mlm)

__all__ = [
    "CHECKPOINT_STEPS", "CHECKPOINTS", "SPECIALS", "MLMCorpus", "MaskingCollate", "bag_of_words_accuracy", "classify",
    "electra_metrics", "embed_sentences", "fill_masks", "load_checkpoint", "load_minilm", "masked_accuracy",
    "mlm_corpus", "mlm_corpus_split", "mlm_datasets", "mlm_loss", "mlm_metrics", "most_frequent_tag_f1",
    "new_electra", "new_mlm_model", "roc_auc", "save_checkpoint", "summary", "tiny_config",
    "token_classification_loss", "train_electra", "train_mlm", "train_ner", "train_sentiment",
]
